"""Code quality: `ruff check` and `mypy` pass, so the suite (what CI runs) fails when either fails.

mypy cannot follow the editable install's folder mapping (config/ installed as lonja.config, ...), so it
checks a tree of links laid out as the installed package: `lonja/` holds the files of the lonja folder
plus links `config`, `clients`, `services` and `nameserver` to the repository's folders. Its settings are
in pyproject.toml, `[tool.mypy]`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

BIN = Path(sys.executable).parent
SUBPACKAGES = ("config", "clients", "services", "nameserver")


def _tool(name: str) -> list[str]:
    """The tool installed next to this Python, else run as a module of it."""
    script = BIN / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", name]


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


@pytest.mark.timeout(300)
def test_ruff_check_passes():
    result = subprocess.run([*_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                            text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, _output(result)


@pytest.mark.timeout(300)
def test_mypy_passes(tmp_path):
    package = tmp_path / "lonja"
    package.mkdir()
    for path in sorted((ROOT / "lonja").iterdir()):
        if path.name != "__pycache__":
            (package / path.name).symlink_to(path)
    for name in SUBPACKAGES:
        (package / name).symlink_to(ROOT / name, target_is_directory=True)
    result = subprocess.run([*_tool("mypy"), "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "lonja"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, _output(result)
