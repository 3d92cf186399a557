"""Packaging: the wheel holds one import name, `lonja`; no module imports a bare top-level folder name;
`lonja --version`; and a clear line when the optional `tls` extra is missing."""

from __future__ import annotations

import ast
import email.parser
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import lonja
from harness import ROOT, clean_env

SOURCE_FOLDERS = ("lonja", "config", "clients", "services", "nameserver", "benchmarks", "tests")
BARE_NAMES = {"config", "clients", "services", "nameserver"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    """The wheel built from a copy of the working tree, offline (the build backend comes from the `test` extra)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".lonja", "build", "dist", "*.egg-info", "__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "--wheel-dir", str(tmp / "dist"), str(source)],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    [path] = (tmp / "dist").glob("lonja-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_has_one_import_name(wheel):
    names = wheel.namelist()
    dist_info = f"lonja-{lonja.__version__}.dist-info/"
    assert {name.split("/")[0] for name in names} == {"lonja", dist_info.rstrip("/")}
    assert all(name.startswith("lonja/") for name in names if name.endswith(".py"))
    for required in ("lonja/config/defaults.py", "lonja/py.typed", "lonja/cli.py", "lonja/clients/__init__.py",
                     "lonja/services/builtin/echo.py", "lonja/nameserver/__init__.py", dist_info + "licenses/LICENSE"):
        assert required in names, required
    if dist_info + "top_level.txt" in names:
        assert wheel.read(dist_info + "top_level.txt").decode().split() == ["lonja"]
    assert "lonja = lonja.cli:main" in wheel.read(dist_info + "entry_points.txt").decode()


def test_wheel_metadata(wheel):
    metadata = email.parser.Parser().parsestr(wheel.read(f"lonja-{lonja.__version__}.dist-info/METADATA").decode())
    assert metadata["Version"] == lonja.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT"
    requirements = metadata.get_all("Requires-Dist")
    cryptography = [r for r in requirements if r.startswith("cryptography")]
    assert cryptography and all('extra == "tls"' in r for r in cryptography), requirements
    assert any(r.startswith("ipython") and 'extra == "shell"' in r for r in requirements), requirements
    assert {"tls", "shell", "test"} <= set(metadata.get_all("Provides-Extra"))


def bare_imports(path: Path) -> list[str]:
    """`file:line: import X` for every absolute import of a bare config/clients/services/nameserver in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: import {m}" for m in modules
                  if m.partition(".")[0] in BARE_NAMES]
    return found


def test_no_module_imports_a_bare_folder_name():
    files = [path for folder in SOURCE_FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 40
    assert [line for path in files for line in bare_imports(path)] == []


def test_version(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lonja", "--version"], env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"lonja {lonja.__version__}\n")
    assert lonja.__version__ == "0.1.0"


WITHOUT_CRYPTOGRAPHY = """
import sys

class NoCryptography:
    '''As if the `tls` extra were not installed.'''
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "cryptography":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoCryptography())
from lonja.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_certs_init_without_cryptography_names_the_extra(tmp_path):
    result = subprocess.run([sys.executable, "-c", WITHOUT_CRYPTOGRAPHY, "certs", "init", str(tmp_path / "certs")],
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "pip install 'lonja[tls]'" in result.stderr
    assert not (tmp_path / "certs").exists()
