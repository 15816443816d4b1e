"""Runs the JS snippet's own tests (sdk/js/*.test.js) with Node's built-in test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SNIPPET_DIR = REPO_ROOT / "sdk" / "js"


def test_js_snippet_passes_its_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the machine is specified to have Node.js (>= 18) for the JS snippet tests")
    # Files, not the directory: from Node 21 on, `node --test DIR` treats DIR as a glob matching only itself.
    test_files = sorted(str(path.relative_to(REPO_ROOT)) for path in SNIPPET_DIR.glob("*.test.js"))
    assert test_files, f"no *.test.js files in {SNIPPET_DIR}"
    result = subprocess.run(
        [node, "--test", *test_files], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"node --test failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
