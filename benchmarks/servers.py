"""The servers a benchmark run starts: lonja's name server and hosts, and a plain Pyro5 server.

Each is a subprocess on a free 127.0.0.1 port, stopped by pid (SIGTERM, then SIGKILL) when the run ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONJA_SERVERTYPES = ["adaptive", "thread", "multiplex"]
SERVER_CPU, CLIENT_CPU = 1, 0


def pin(pid: int, cpus: set[int] | None) -> None:
    """Run every thread of process `pid` on `cpus` (None: on every CPU).

    On a VM, a round trip between two processes costs 2-3x more when they wake each other across
    vCPUs than when the scheduler happens to put them on one: pinning the client and the servers to
    different CPUs makes every single-client row pay the same, instead of whatever the scheduler chose.
    """
    cpus = cpus or set(range(os.cpu_count() or 1))
    if len(cpus) < 2 and (os.cpu_count() or 1) < 2:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: none of our own PYRO_*/LONJA_* variables, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Servers:
    """Starts what a run needs and remembers every pid, so that `stop()` leaves nothing behind."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.data_dir = tempfile.mkdtemp(prefix="lonja-bench-")
        self.ns = ""
        self.plain_uri = ""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def start_all(self, servertypes: list[str]) -> None:
        port = free_port()
        self._start([sys.executable, "-m", "lonja", "ns", "--port", str(port), "--storage", "memory"],
                     "name server listening")
        self.ns = f"127.0.0.1:{port}"
        for servertype in servertypes:
            self._start([sys.executable, "-m", "lonja", "serve", "echo", "--name", f"echo.{servertype}",
                         "--ns", self.ns], "press Ctrl-C to stop", LONJA_SERVICE_SERVERTYPE=servertype)
        plain_port = free_port()
        self._start([sys.executable, str(Path(__file__).with_name("plain_server.py")), str(plain_port)], "ready")
        self.plain_uri = f"PYRO:echo@127.0.0.1:{plain_port}"

    def pin(self, separate: bool) -> None:
        """Servers on one CPU and this client on another (`separate`), or everything anywhere."""
        for pid in self.pids:
            pin(pid, {SERVER_CPU} if separate else None)
        pin(os.getpid(), {CLIENT_CPU} if separate else None)

    def _start(self, command: list[str], ready: str, **env: str) -> None:
        process = subprocess.Popen(command, env=child_env(LONJA_DATA_DIR=self.data_dir, **env), cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        self.processes.append(process)
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if ready in line:
                return
        raise RuntimeError(f"{' '.join(command)} did not start")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
