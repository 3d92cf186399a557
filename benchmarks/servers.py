"""Starting and stopping the processes a benchmark run needs, pinning them to CPUs, and a clean environment.

Every process is started on 127.0.0.1 with a clean environment (no PYRO_*/LONJA_* variables of the caller;
lonja's data folder and an empty config file in a temporary folder), and stopped by pid: SIGTERM, then
SIGKILL after a grace period. A server prints its address when it is ready; `Processes.start` waits for
that line and returns it.

This module imports neither Pyro5 nor lonja: `clean_environment()` must run before they are imported.
"""

from __future__ import annotations

import compileall
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER_CPU, CLIENT_CPU = 1, 0
START_TIMEOUT = 30.0
STOP_GRACE = 10.0


def clean_environment() -> Path:
    """Strip PYRO_*/LONJA_* from this process's environment, point lonja at a fresh temporary folder, and
    compile lonja's bytecode (as `pip install` does; a shell may have turned writing it off).

    The children inherit the result, so that they see lonja's and Pyro5's defaults, not whatever the
    caller's shell or ./lonja.toml sets. Returns the temporary folder; `remove_workdir()` deletes it.
    """
    for name in [n for n in os.environ if n.startswith(("PYRO_", "LONJA_"))]:
        del os.environ[name]
    # An installed package comes with its bytecode: so must lonja here, or cold rows time the compiler.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for package in ("lonja", "config", "clients", "services", "nameserver", "benchmarks"):
        compileall.compile_dir(ROOT / package, quiet=2)
    workdir = Path(tempfile.mkdtemp(prefix="lonja-bench-"))
    (workdir / "empty.toml").write_text("")
    os.environ["LONJA_DATA_DIR"] = str(workdir / "data")
    os.environ["LONJA_CONFIG"] = str(workdir / "empty.toml")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    os.environ["PYTHONUNBUFFERED"] = "1"
    return workdir


def remove_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)


def child_env(lonja: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a child: this (cleaned) one; without any LONJA_* for a process that is not lonja's."""
    env = {k: v for k, v in os.environ.items() if lonja or not k.startswith(("PYRO_", "LONJA_"))}
    env.update(extra)
    return env


def pin(pid: int, cpus: set[int] | None) -> None:
    """Run every thread of process `pid` on `cpus` (None: on every CPU). Threads made later inherit it.

    Pinned, a client on CPU 0 and its server on CPU 1 always wake each other across CPUs, so every system
    pays the same; unpinned (as users run them), the scheduler decides, and the figures move with it.
    """
    every = set(range(os.cpu_count() or 1))
    if len(every) < 2:
        return
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return
    for task in tasks:
        try:
            os.sched_setaffinity(int(task.name), cpus or every)
        except (OSError, ValueError):
            pass


def stop_pids(processes: list[subprocess.Popen], grace: float = STOP_GRACE) -> None:
    """SIGTERM each process, then SIGKILL any still running after `grace` seconds; reap them all."""
    for process in processes:
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Started:
    """One started process, with the first lines and the tail of what it printed."""

    label: str
    process: subprocess.Popen
    ready: str = ""
    head: list[str] = field(default_factory=list)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    matched: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.process.pid


class Processes:
    """Starts server processes and remembers every pid, so that `stop()` leaves nothing behind.

    `stop()` stops them in the reverse order of starting (a host before its name server).
    """

    def __init__(self) -> None:
        self.started: list[Started] = []
        self.all_pids: list[int] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.started]

    def start(self, label: str, command: list[str], ready: str, lonja: bool = True) -> str:
        """Start `command`, collect its output in a thread, wait for a line containing `ready`; return it."""
        process = subprocess.Popen(command, env=child_env(lonja), cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)  # a Ctrl-C in the terminal reaches us, not them
        started = Started(label, process, ready=ready)
        self.started.append(started)
        self.all_pids.append(process.pid)
        threading.Thread(target=_drain, args=(started,), daemon=True, name=f"drain {label}").start()
        deadline = time.monotonic() + START_TIMEOUT
        while not started.matched.wait(0.02):
            if process.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.1)  # the last lines
                why = f"exited with {process.returncode}" if process.poll() is not None else \
                    f"not ready within {START_TIMEOUT:.0f} s"
                raise RuntimeError(f"{label} {why}; its output:\n" + "\n".join(started.lines))
        return next(line for line in list(started.head) + list(started.lines) if ready in line)

    def pin(self, cpus: set[int] | None) -> None:
        for pid in self.pids:
            pin(pid, cpus)

    def stop(self) -> None:
        for started in reversed(self.started):
            stop_pids([started.process])
        self.started.clear()


def run_child(command: list[str], timeout: float, pids: list[int], lonja: bool = True) -> str:
    """Run a client child process to its end and return its stdout; its pid goes into `pids`.

    A child that fails raises RuntimeError with the end of its stderr; on a timeout or an interrupt it is
    stopped by pid (SIGTERM, then SIGKILL).
    """
    process = subprocess.Popen(command, cwd=ROOT, env=child_env(lonja), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    pids.append(process.pid)
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        stop_pids([process], grace=5)
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} failed ({process.returncode}):\n{err[-3000:]}")
    return out


def python(*args: str) -> list[str]:
    """A command line running this Python."""
    return [sys.executable, *args]


def _drain(started: Started) -> None:
    """Read a process's output to its end, so that a chatty server never blocks on a full pipe."""
    assert started.process.stdout is not None
    for line in started.process.stdout:
        line = line.rstrip("\n")
        started.lines.append(line)
        if len(started.head) < 100:
            started.head.append(line)
        if started.ready and started.ready in line:
            started.matched.set()
