"""Benchmark tools that come from Debian packages, installed on first use when we are root."""

from __future__ import annotations

import os
import shutil
import subprocess


def debian_binary(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` when it is missing and we are root."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"{binary} is missing: install it with `sudo apt-get install -y {package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, capture_output=True, env=env, check=False).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
        subprocess.run(install, capture_output=True, env=env, check=True)
    found = shutil.which(binary)
    if not found:
        raise SystemExit(f"the {package} package is installed but {binary} is not on PATH")
    return found
