import dataclasses
import stat
from pathlib import Path

import pytest

from devstack.api_keys import KEY_VARIABLES, keys_file, load_or_create
from devstack.config import StackConfig, dev_config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackConfig:
    for variable in KEY_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    return dataclasses.replace(dev_config(), run_dir=tmp_path)


def test_keys_are_generated_once_and_kept_private(config: StackConfig) -> None:
    first = load_or_create(config)
    assert set(first) == set(KEY_VARIABLES.values())
    assert len(set(first.values())) == 3
    assert load_or_create(config) == first
    assert stat.S_IMODE(keys_file(config).stat().st_mode) == 0o600


def test_the_environment_wins(config: StackConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSTREAM_READ_KEY", "from-env")
    keys = load_or_create(config)
    assert keys["SPLITSTREAM_READ_KEY"] == "from-env"
    assert "SPLITSTREAM_READ_KEY=from-env" in keys_file(config).read_text()
