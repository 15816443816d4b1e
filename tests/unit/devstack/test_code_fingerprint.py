from pathlib import Path

import pytest

from devstack import services


def test_the_fingerprint_follows_the_services_code_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "PROJECT_ROOT", tmp_path)
    for root in services.CODE_ROOTS:
        (tmp_path / root / "pkg").mkdir(parents=True)
        (tmp_path / root / "pkg" / "module.py").write_text("x = 1\n")
    (tmp_path / "services" / "fold.lua").write_text("return 1\n")
    first = services.code_fingerprint()

    assert services.code_fingerprint() == first
    (tmp_path / "services" / "notes.txt").write_text("not code")
    assert services.code_fingerprint() == first
    (tmp_path / "services" / "fold.lua").write_text("return 2\n")
    assert services.code_fingerprint() != first
