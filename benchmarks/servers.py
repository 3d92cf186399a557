"""The processes a benchmark run starts and stops: lonja's name server and hosts, and a plain Pyro5 server.

Every server is a subprocess on a free 127.0.0.1 port (each picks its own: port 0, and we read the address
it prints), started with a clean environment (no PYRO_*/LONJA_* variables of ours; lonja's data folder and
an empty config file in a temporary folder), and stopped by pid (SIGTERM, SIGKILL after a grace period).

This module imports neither Pyro5 nor lonja: `clean_environment()` must run before they are imported.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every lonja server type gets its own host and its own rows in the client-process section.
LONJA_SERVERTYPES = ["adaptive", "thread", "multiplex"]

SERVER_CPU, CLIENT_CPU = 1, 0
START_TIMEOUT = 30.0
STOP_GRACE = 10.0


def lonja_defaults() -> dict[str, str]:
    """lonja's built-in default serializer and server type, read from its defaults file."""
    try:
        defaults = tomllib.loads((ROOT / "config" / "defaults.toml").read_text())
        return {"serializer": defaults["client"]["serializer"], "servertype": defaults["service"]["servertype"]}
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {"serializer": "msgpack", "servertype": LONJA_SERVERTYPES[0]}


def clean_environment() -> Path:
    """Strip PYRO_*/LONJA_* from this process's environment and point lonja at a fresh temporary folder.

    The benchmark's own clients run in this process (and its children inherit the result), so they must
    see lonja's and Pyro5's defaults, not whatever the caller's shell or ./lonja.toml sets.
    Returns the temporary folder; `remove_workdir()` deletes it.
    """
    for name in [n for n in os.environ if n.startswith(("PYRO_", "LONJA_"))]:
        del os.environ[name]
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
    """The environment of a child: this (cleaned) one; without any LONJA_* for a plain Pyro5 process."""
    env = {k: v for k, v in os.environ.items() if lonja or not k.startswith(("PYRO_", "LONJA_"))}
    env.update(extra)
    return env


def pin(pid: int, cpus: set[int] | None) -> None:
    """Run every thread of process `pid` on `cpus` (None: on every CPU). Threads made later inherit it.

    On a VM, a round trip between two processes costs 2-3x more when they wake each other across vCPUs
    than when the scheduler happens to put them on one: pinning the client and the servers to different
    CPUs makes every single-client row pay the same, instead of whatever the scheduler chose.
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


@dataclass
class Server:
    """One started server process, with the tail of what it printed."""

    label: str
    process: subprocess.Popen
    match: str = ""
    head: list = field(default_factory=list)                       # the first lines, kept
    lines: deque = field(default_factory=lambda: deque(maxlen=50))  # the latest lines
    matched: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.process.pid


class Servers:
    """Starts what a run needs and remembers every pid, so that `stop()` leaves nothing behind."""

    def __init__(self) -> None:
        self.started: list[Server] = []
        self.ns = ""                       # "127.0.0.1:PORT" of lonja's name server
        self.lonja_uris: dict[str, str] = {}   # server type -> PYRO: URI of its echo host
        self.plain_uri = ""                # PYRO: URI of the plain Pyro5 echo server
        self.plain_name = "plain.echo"     # the plain server's name in lonja's name server

    @property
    def pids(self) -> list[int]:
        return [server.pid for server in self.started]

    @staticmethod
    def lonja_name(servertype: str) -> str:
        return f"echo.{servertype}"

    def start_all(self, servertypes: list[str], progress=lambda text: None) -> None:
        line = self._start("lonja ns", [sys.executable, "-m", "lonja", "ns", "--host", "127.0.0.1", "--port", "0",
                                        "--storage", "memory"], "name server listening")
        self.ns = line.split("PYRO:Pyro.NameServer@", 1)[1].split()[0]
        progress(f"name server at {self.ns}")
        for servertype in servertypes:
            name = self.lonja_name(servertype)
            self._start(f"lonja serve ({servertype})",
                        [sys.executable, "-m", "lonja", "serve", "echo", "--name", name, "--host", "127.0.0.1",
                         "--ns", self.ns], "press Ctrl-C to stop", env={"LONJA_SERVICE_SERVERTYPE": servertype})
            server = self.started[-1]
            self.lonja_uris[servertype] = next(line.split(" at ", 1)[1].strip() for line in server.head
                                               if line.startswith(f"serving {name} at "))
            progress(f"lonja {servertype} host at {self.lonja_uris[servertype]}")
        line = self._start("plain Pyro5", [sys.executable, str(Path(__file__).with_name("plain_server.py")),
                                           self.ns, self.plain_name], "plain server at", lonja=False)
        self.plain_uri = line.split("plain server at", 1)[1].strip()
        progress(f"plain Pyro5 server at {self.plain_uri}")

    def pin(self, separate: bool) -> None:
        """Servers on one CPU and this process on another (`separate`), or everything anywhere."""
        for pid in self.pids:
            pin(pid, {SERVER_CPU} if separate else None)
        pin(os.getpid(), {CLIENT_CPU} if separate else None)

    def _start(self, label: str, command: list[str], ready: str, env: dict[str, str] | None = None,
               lonja: bool = True) -> str:
        """Start `command`, collect its output in a thread, and wait for a line containing `ready`."""
        process = subprocess.Popen(command, env=child_env(lonja, **(env or {})), cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)  # a Ctrl-C in the terminal reaches us, not them
        server = Server(label, process, match=ready)
        self.started.append(server)
        threading.Thread(target=_drain, args=(server,), daemon=True, name=f"drain {label}").start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.matched.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.1)  # the last lines
                why = f"exited with {process.returncode}" if process.poll() is not None else \
                    f"not ready within {START_TIMEOUT:.0f} s"
                raise RuntimeError(f"{label} {why}; its output:\n" + "\n".join(server.lines))
        return next(line for line in server.head if ready in line)

    def stop(self) -> None:
        """Stop every server by pid: the hosts first (they unregister their names), the name server last.

        SIGTERM, then SIGKILL to any that has not exited after a grace period.
        """
        for wave in (self.started[1:], self.started[:1]):
            for server in wave:
                if server.process.poll() is None:
                    try:
                        os.kill(server.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + STOP_GRACE
            for server in wave:
                try:
                    server.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait(5)


def _drain(server: Server) -> None:
    """Read a server's output to its end, so that a chatty server never blocks on a full pipe."""
    assert server.process.stdout is not None
    for line in server.process.stdout:
        line = line.rstrip("\n")
        server.lines.append(line)
        if len(server.head) < 100:
            server.head.append(line)
        if server.match and server.match in line:
            server.matched.set()
