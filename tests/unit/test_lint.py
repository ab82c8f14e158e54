"""ruff (whole tree) and mypy --strict (the installed package: core, adapters and blueprints)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _tool(name: str) -> str:
    exe = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return exe


def test_ruff() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _package_tree(tmp: Path) -> Path:
    """The package as it is installed: cloudml/ with adapters/ and blueprints/ mapped inside it."""
    pkg = tmp / "cloudml"
    pkg.mkdir()
    for entry in (REPO / "cloudml").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    (pkg / "adapters").symlink_to(REPO / "adapters")
    (pkg / "blueprints").symlink_to(REPO / "blueprints")
    return pkg


def test_mypy_strict(tmp_path: Path) -> None:
    pkg = _package_tree(tmp_path)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
           "--cache-dir", str(REPO / ".mypy_cache"), "--exclude", "blueprints/.*/src/", str(pkg)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
