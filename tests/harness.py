"""The test harness: real lonja processes on 127.0.0.1, stopped by pid when the test ends.

Tests import these helpers from here (`from harness import Lonja, wait_until`); conftest.py only turns
them into fixtures.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a lonja child process: no stray PYRO_*/LONJA_* variables, data under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}
    env["LONJA_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class LonjaProcess:
    """A `python -m lonja ...` child process whose output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.proc = subprocess.Popen([PYTHON, "-m", "lonja", *args], env=env, cwd=cwd, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Block until a line containing `text` appears; fail with the output so far if it doesn't."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{self.args}: no line with {text!r} within {timeout}s; output:\n" +
                             "\n".join(self.lines))

    def output(self) -> str:
        """Everything printed so far (drains what has arrived)."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return "\n".join(self.lines)

    def final_output(self, timeout: float = 10.0) -> str:
        """Everything printed, once the process has exited and its output has been read to the end."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        return self.output()

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig` to this process (by pid) and wait; SIGKILL if it doesn't exit in time."""
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"{self.args} did not stop on signal {sig}; output:\n{self.output()}") from None


class Lonja:
    """Starts lonja processes for one test and stops every one of them afterwards."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = clean_env(tmp_path)
        self.processes: list[LonjaProcess] = []

    def start(self, *args: str, ready: str | None = "press Ctrl-C to stop", env: dict | None = None) -> LonjaProcess:
        process = LonjaProcess(list(args), {**self.env, **(env or {})}, self.tmp_path)
        self.processes.append(process)
        if ready:
            process.wait_for(ready)
        return process

    def run(self, *args: str, timeout: float = 30.0, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run `lonja ARGS` to completion and return its exit code and output."""
        return subprocess.run([PYTHON, "-m", "lonja", *args], env={**self.env, **(env or {})}, cwd=self.tmp_path,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def nameserver(self, storage: str = "memory", port: int = 0) -> tuple[LonjaProcess, str]:
        """A name server process; with port 0 it binds a free port itself and reports it (no probe race)."""
        process = self.start("ns", "--host", "127.0.0.1", "--port", str(port), "--storage", storage,
                             ready="name server listening")
        return process, ns_address(process)

    def cleanup(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.proc.kill()
                process.proc.wait(5)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` passes (a generous deadline, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def run_in_threads(work: Callable[[int], object], count: int, timeout: float = 60.0) -> list[BaseException]:
    """Run `work(0)` ... `work(count - 1)` on as many threads at once; the exceptions they raised."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # returned to the test, which asserts on them
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors


def ns_address(process: LonjaProcess) -> str:
    """"HOST:PORT" of the name server a `lonja ns` or `lonja up` process reported listening on."""
    uri = process.wait_for("name server listening").split(" on ", 1)[1].split()[0]
    return uri.split("@", 1)[1]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def host_stats(uri: str, token: str = "") -> dict[str, int]:
    """The counters of the lonja host serving `uri` (its daemon object's `stats()`), asked over TCP."""
    import Pyro5.api

    from lonja.config.wire import client_handshake

    with Pyro5.api.Proxy(f"PYRO:Pyro.Daemon@{Pyro5.api.URI(uri).location}") as daemon:
        daemon._pyroHandshake = client_handshake(token)
        return daemon.stats()


def calls_started(uri: str) -> int:
    """How many calls the lonja host serving `uri` has started."""
    return host_stats(uri)["calls"]
