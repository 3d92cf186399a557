"""What the standalone row scripts (`benchmarks.web_rows`, `benchmarks.reference_rows`) share: a clean
environment, and `lonja` processes started and stopped by the script itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def environment(data: Path) -> dict[str, str]:
    """This environment without PYRO_*/LONJA_* variables, lonja's data under `data`, the repository on the
    path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}
    env.update(LONJA_DATA_DIR=str(data), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def start(args: list[str], env: dict[str, str], ready: str) -> tuple[subprocess.Popen, str]:
    """A `lonja ARGS` process and the first line of its output that contains `ready`."""
    process = subprocess.Popen([PYTHON, "-m", "lonja", *args], env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    assert process.stdout is not None
    for line in process.stdout:
        if ready in line:
            return process, line.strip()
    raise RuntimeError(f"lonja {' '.join(args)} ended before saying {ready!r}")


def stop(process: subprocess.Popen) -> None:
    """Stop a process started by `start`: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
