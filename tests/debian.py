"""Debian packages the tests install when missing (as root), failing, never skipping, when they cannot."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def apt_install(package: str) -> None:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"could not install {package} ({' '.join(command)} exited {done.returncode}): "
                        f"{done.stderr[-2000:]}")


def debian_binary(binary: str, package: str) -> str:
    """The path of ``binary``, installing ``package`` with apt-get when it is missing and we are root."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(f"this test needs Debian's {package}: run `sudo apt-get install -y --no-install-recommends "
                    f"{package}` (this user cannot install it)")
    apt_install(package)
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"apt-get installed {package} but {binary} is not on PATH")
    return found
