"""API keys for the local stack: taken from the environment, otherwise generated once and kept in the run folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from devstack.config import StackConfig

KEY_VARIABLES = {
    "admin": "SPLITSTREAM_ADMIN_KEY",
    "ingest": "SPLITSTREAM_INGEST_KEY",
    "read": "SPLITSTREAM_READ_KEY",
}


def keys_file(config: StackConfig) -> Path:
    return config.run_dir / "api-keys.env"


def read_keys_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[name.strip()] = value.strip()
    return values


def load_or_create(config: StackConfig) -> dict[str, str]:
    """Map of env variable -> key. Environment wins; missing keys are generated and written (mode 0600)."""
    path = keys_file(config)
    stored = read_keys_file(path)
    keys: dict[str, str] = {}
    for scope, variable in KEY_VARIABLES.items():
        keys[variable] = os.environ.get(variable) or stored.get(variable) or f"ss_{scope}_{secrets.token_urlsafe(24)}"
    if keys != {v: stored.get(v) for v in KEY_VARIABLES.values()}:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "# SplitStream API keys of this local stack (Authorization: Bearer <key>)\n"
        body += "".join(f"{variable}={value}\n" for variable, value in keys.items())
        path.write_text(body)
        path.chmod(0o600)
    return keys
