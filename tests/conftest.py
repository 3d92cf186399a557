"""pytest fixtures over the harness (tests/harness.py): real lonja processes, stopped by pid."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Lonja, LonjaProcess


@pytest.fixture
def lonja(tmp_path: Path) -> Iterator[Lonja]:
    """Start real lonja processes; each is killed by pid at the end of the test if still running."""
    handle = Lonja(tmp_path)
    yield handle
    handle.cleanup()


@pytest.fixture
def ns(lonja: Lonja) -> str:
    """A name server process (memory storage) on a free port: its "127.0.0.1:PORT"."""
    return lonja.nameserver()[1]


@pytest.fixture
def echo(lonja: Lonja, ns: str) -> LonjaProcess:
    """The built-in echo service hosted by `lonja serve echo`, registered in `ns`."""
    return lonja.start("serve", "echo", "--ns", ns)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process code under test sees no stray PYRO_*/LONJA_* variables and a private data folder."""
    for name in list(os.environ):
        if name.startswith(("PYRO_", "LONJA_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LONJA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
