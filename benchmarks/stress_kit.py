"""The pieces of the adversarial suite: server processes, a bystander client, and each attack.

Everything talks to 127.0.0.1 only (attackers may bind other 127.x.y.z source addresses). Every loop
stops by itself after a bounded count or time, and every process started here is stopped by pid.
`benchmarks.stress` runs the attacks and prints the table; `tests/test_adversarial.py` asserts on them.
"""

from __future__ import annotations

import contextlib
import os
import random
import selectors
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import Pyro5.api
import Pyro5.errors
from Pyro5 import protocol, serializers

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
OTHER_PEER = "127.0.0.2"
NS_OBJECT = "Pyro.NameServer"
SERIALIZER_IDS = {"serpent": 1, "marshal": 2, "json": 3, "msgpack": 4}
LATENCY_BAR = 2.0
"""Seconds of worst bystander latency above which an attack counts as not survived under load."""
START_TIMEOUT = 30.0

Address = tuple[str, int]


# -- settings and processes -----------------------------------------------------------------------------

def known_settings() -> set[str]:
    """Every "section.key" lonja knows today (read now: others may be adding keys)."""
    from lonja.config.defaults import DEFAULTS

    return {f"{section}.{key}" for section, table in DEFAULTS.items() for key in table}


def settings_env(**values: Any) -> dict[str, str]:
    """LONJA_* variables for `limits_max_connections=64`-style keywords, only for settings lonja knows
    (an unknown LONJA_* variable stops a server from starting)."""
    known = known_settings()
    env = {}
    for name, value in values.items():
        section, _, key = name.partition("_")
        if f"{section}.{key}" in known:
            env[f"LONJA_{name.upper()}"] = str(value)
    return env


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A lonja child's environment: no PYRO_*/LONJA_* from ours, data in `data_dir`, `extra` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}
    env["LONJA_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Process:
    """A `python -m lonja ARGS` child whose output is drained in a thread (the last lines are kept)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.proc = subprocess.Popen([PYTHON, "-m", "lonja", *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: deque[str] = deque(maxlen=200)
        self._seen = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> str | None:
        """The first line containing `text`, or None if the process exits or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None or self.proc.poll() is not None or time.monotonic() > deadline:
                    return found
                self._seen.wait(0.1)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def stop(self) -> None:
        """SIGCONT (in case it was stopped), SIGTERM, then SIGKILL after a grace period."""
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Cluster:
    """A name server and `lonja serve echo` hosts on 127.0.0.1, all stopped by pid in `stop()`."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, storage: str = "memory") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = child_env(workdir / "data", **(env or {}))
        self.storage = storage
        self.port = free_port()
        self.ns_process: Process | None = None
        self.hosts: list[Process] = []
        self.started: list[Process] = []

    @property
    def ns(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ns_address(self) -> Address:
        return HOST, self.port

    def start(self, args: list[str], ready: str) -> Process:
        process = Process(args, self.env, self.workdir)
        self.started.append(process)
        if process.wait_for(ready) is None:
            process.stop()
            raise RuntimeError(f"lonja {' '.join(args)} did not start; its output:\n" + "\n".join(process.lines))
        return process

    def start_ns(self) -> Process:
        """The name server, on this cluster's port (the same one again after a restart)."""
        self.ns_process = self.start(["ns", "--host", HOST, "--port", str(self.port), "--storage", self.storage],
                                     "name server listening")
        return self.ns_process

    def start_echo(self) -> Process:
        host = self.start(["serve", "echo", "--ns", self.ns], "press Ctrl-C to stop")
        self.hosts.append(host)
        return host

    def echo_uri(self, host: Process | None = None) -> str:
        host = host or self.hosts[0]
        line = host.wait_for("serving echo at ", 1) or ""
        return line.split(" at ", 1)[1].strip()

    def echo_address(self, host: Process | None = None) -> Address:
        return uri_address(self.echo_uri(host))

    def stop(self) -> None:
        """Hosts first (they unregister), the name server last; every one by its pid."""
        for process in reversed(self.started):
            process.stop()


def uri_address(uri: str) -> Address:
    host, port = uri.split("@", 1)[1].rsplit(":", 1)
    return host, int(port)


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


# -- the bystander ----------------------------------------------------------------------------------------

@dataclass
class Bystander:
    """A legitimate client that keeps calling while an attack runs: its calls, failures and worst latency.

    Each round calls `echo.echo(i)` and looks `echo` up in the name server. `fresh` makes a new connection
    for every call (from 127.0.0.1: what a new client sees), otherwise the connections are kept.
    """

    ns: str
    echo_uri: str | None = None
    fresh: bool = False
    lookups: bool = True
    period: float = 0.02
    timeout: float = 5.0
    limit: float = 300.0
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    worst: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Bystander:
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout * 3 + 5)

    def _timed(self, call: Callable[[], Any]) -> None:
        start = time.perf_counter()
        try:
            call()
        except Exception as exc:  # every failure of a legitimate client is what the suite reports
            self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
        self.calls += 1
        self.worst = max(self.worst, time.perf_counter() - start)

    def _run(self) -> None:
        with contextlib.ExitStack() as stack:
            echo = None
            if not self.fresh:
                from lonja.clients import connect
                echo = stack.enter_context(connect(self.echo_uri or "echo", ns=self.ns, timeout=self.timeout))
            names: list[Pyro5.api.Proxy] = []
            stack.callback(lambda: [proxy._pyroRelease() for proxy in names])
            ns_uri = f"PYRO:{NS_OBJECT}@{self.ns}"
            deadline = time.monotonic() + self.limit
            i = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                i += 1
                if echo is not None:
                    self._timed(lambda: echo.echo(i))
                elif self.echo_uri:
                    self._timed(lambda: plain_call(self.echo_uri, "echo", i, timeout=self.timeout))
                if self.lookups and self.fresh:
                    self._timed(lambda: plain_call(ns_uri, "lookup", "echo", timeout=self.timeout))
                elif self.lookups:
                    if not names:
                        names.append(Pyro5.api.Proxy(ns_uri))
                        names[0]._pyroTimeout = self.timeout
                    before = len(self.failures)
                    self._timed(lambda: names[0].lookup("echo"))
                    if len(self.failures) > before:
                        names.pop()._pyroRelease()
                self._stop.wait(self.period)

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "failed": len(self.failures), "worst_latency": round(self.worst, 3),
                "first_failures": self.failures[:3]}


def plain_call(uri: str, method: str, *args: Any, timeout: float = 5.0) -> Any:
    """One call on a new plain Pyro5 connection, closed afterwards."""
    with Pyro5.api.Proxy(uri) as proxy:
        proxy._pyroTimeout = timeout
        return getattr(proxy, method)(*args)


def answers(ns: str, echo_uri: str | None = None, timeout: float = 5.0) -> bool:
    """True if a new client gets answers from the name server (and the echo host) right now."""
    try:
        plain_call(f"PYRO:{NS_OBJECT}@{ns}", "ping", timeout=timeout)
        if echo_uri:
            plain_call(echo_uri, "echo", 1, timeout=timeout)
        return True
    except Exception:
        return False


# -- the wire ---------------------------------------------------------------------------------------------

def frame(msgtype: int, payload: bytes, serializer_id: int = 4, flags: int = 0, seq: int = 1,
          declared: int | None = None) -> bytes:
    """A Pyro5 message as bytes; `declared` claims another payload size than the one attached."""
    size = len(payload) if declared is None else declared
    header = struct.pack(protocol._header_format, b"PYRO", protocol.PROTOCOL_VERSION, msgtype, serializer_id,
                         flags, seq, size, 0, bytes(16), 0, protocol._magic_number)
    return header + payload


def connect_payload(serializer: str, object_id: str) -> bytes:
    return serializers.serializers[serializer].dumps({"handshake": "hello", "object": object_id})


def connect_message(object_id: str, serializer: str = "msgpack") -> bytes:
    """A valid MSG_CONNECT, as Pyro5 builds it."""
    return protocol.SendingMessage(protocol.MSG_CONNECT, 0, 1, SERIALIZER_IDS[serializer],
                                   connect_payload(serializer, object_id)).data


def invoke_payload(serializer: str, object_id: str) -> bytes:
    method, args = ("lookup", ("echo",)) if object_id == NS_OBJECT else ("echo", (1,))
    return serializers.serializers[serializer].dumpsCall(object_id, method, args, {})


@lru_cache(maxsize=2)
def zlib_bomb(megabytes: int = 300) -> bytes:
    """`megabytes` MB of zeros, zlib-compressed (about 1/1000 of that), made without holding them."""
    packer = zlib.compressobj(9)
    chunk = bytes(1024 * 1024)
    return b"".join(packer.compress(chunk) for _ in range(megabytes)) + packer.flush()


def marshal_list_bomb() -> bytes:
    """A marshal payload that declares a list of 2**31-1 items and has none."""
    return b"[" + struct.pack("<i", 2 ** 31 - 1) + b"N" * 8


def malformed(serializer: str, valid: bytes, kind: str) -> dict[str, bytes]:
    """Broken payloads for one serializer: empty, truncated, garbage, wrong shape, and its own pitfalls."""
    dumps = serializers.serializers[serializer].dumps
    cases = {"empty": b"", "truncated": valid[: len(valid) // 2], "garbage": bytes(range(256)) * 4,
             "wrong shape": dumps(["not", "a", "dict"] if kind == "connect" else 42)}
    if serializer in ("serpent", "json"):
        cases["deep nesting"] = b"[" * 100_000
        cases["long number"] = b"9" * 100_000
    if serializer == "serpent":
        cases["not a literal"] = b"__import__('os').getpid()"
    if serializer == "msgpack":
        cases["array of 2**32"] = b"\xdd\xff\xff\xff\xff"
        cases["bin of 2**32"] = b"\xc6\xff\xff\xff\xff"
    if serializer == "marshal":
        cases["bad type"] = b"\xff" * 16
        cases["bytes of 2**31"] = b"s" + struct.pack("<i", 2 ** 31 - 1)
    return cases


def open_socket(address: Address, source: str = HOST, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.bind((source, 0))
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def read_answer(sock: socket.socket, timeout: float) -> tuple[str, str]:
    """("answer", what) for a Pyro5 message or other bytes, ("closed", why), or ("hang", "") on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while len(data) < protocol._header_size:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(protocol._header_size - len(data))
            if not chunk:
                return ("answer", f"{len(data)} bytes, then closed") if data else ("closed", "EOF")
            data += chunk
    except TimeoutError:
        return ("answer", f"{len(data)} bytes, then silence") if data else ("hang", "")
    except OSError as exc:
        return ("closed", type(exc).__name__)
    if not data.startswith(b"PYRO"):
        return "answer", f"non-Pyro bytes {data[:8]!r}"
    _, _, msgtype, serializer_id, _, _, size, ann_size, *_ = struct.unpack(protocol._header_format, data)
    body = b""
    try:
        while len(body) < min(size + ann_size, 1 << 20):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    names = {protocol.MSG_CONNECTOK: "CONNECTOK", protocol.MSG_CONNECTFAIL: "CONNECTFAIL",
             protocol.MSG_RESULT: "RESULT"}
    text = ""
    try:
        text = str(serializers.serializers_by_id[serializer_id].loads(body[ann_size:ann_size + size]))
    except Exception:
        pass
    return "answer", f"{names.get(msgtype, msgtype)} {text}".strip()


def session(address: Address, object_id: str, source: str = HOST, timeout: float = 5.0) -> socket.socket:
    """A raw connection past its handshake (CONNECTOK), ready for crafted requests."""
    sock = open_socket(address, source, timeout)
    sock.sendall(connect_message(object_id))
    outcome, what = read_answer(sock, timeout)
    if not what.startswith("CONNECTOK"):
        sock.close()
        raise ConnectionError(f"handshake refused: {outcome} {what}")
    return sock


# -- attack 1: wire fuzzing -------------------------------------------------------------------------------

@dataclass
class Probe:
    """One crafted input: its bytes, whether a handshake comes first, and how long an answer may take."""

    label: str
    data: bytes
    after_handshake: bool = False
    half_close: bool = True
    wait: float = 3.0


def fuzz_probes(object_id: str, random_inputs: int, header_flips: int, seed: int = 7,
                bomb_mb: int = 300, body_wait: float = 5.0, serializers_: tuple[str, ...] = tuple(SERIALIZER_IDS),
                bombs: bool = True) -> list[Probe]:
    """Every kind of bad input of attack 1, for the server whose object is `object_id`."""
    rng = random.Random(seed)
    probes = [Probe(f"random bytes #{i}", rng.randbytes(rng.randint(1, 2000))) for i in range(random_inputs)]
    valid = connect_message(object_id)
    for i in range(header_flips):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(protocol._header_size)] ^= 1 << rng.randrange(8)
        probes.append(Probe(f"corrupted header #{i}", bytes(data)))
    for name in serializers_:
        sid = SERIALIZER_IDS[name]
        for kind, msgtype, good in (("connect", protocol.MSG_CONNECT, connect_payload(name, object_id)),
                                    ("invoke", protocol.MSG_INVOKE, invoke_payload(name, object_id))):
            for label, payload in malformed(name, good, kind).items():
                probes.append(Probe(f"{name} {kind}: {label}", frame(msgtype, payload, sid),
                                    after_handshake=kind == "invoke"))
    if bombs:
        bomb = zlib_bomb(bomb_mb)
        probes += [Probe(f"zlib bomb ({bomb_mb} MB) in connect", frame(protocol.MSG_CONNECT, bomb, 4,
                                                                      protocol.FLAGS_COMPRESSED), wait=15.0),
                   Probe(f"zlib bomb ({bomb_mb} MB) in call", frame(protocol.MSG_INVOKE, bomb, 4,
                                                                   protocol.FLAGS_COMPRESSED),
                         after_handshake=True, wait=15.0),
                   Probe("marshal list of 2**31 in connect", frame(protocol.MSG_CONNECT, marshal_list_bomb(), 2),
                         wait=15.0)]
    probes += [Probe("declared-but-unsent body in connect", frame(protocol.MSG_CONNECT, b"", declared=1000),
                     half_close=False, wait=body_wait),
               Probe("declared-but-unsent body in call", frame(protocol.MSG_INVOKE, b"\x93", declared=1000),
                     after_handshake=True, half_close=False, wait=body_wait)]
    return probes


def send_probe(address: Address, probe: Probe, object_id: str) -> tuple[str, str]:
    """Send one probe on its own connection: ("answer"|"closed"|"hang"|"error", what)."""
    try:
        sock = session(address, object_id) if probe.after_handshake else open_socket(address)
    except (OSError, ConnectionError) as exc:
        return "error", f"could not connect: {exc}"
    with sock:
        try:
            sock.settimeout(probe.wait)
            sock.sendall(probe.data)
            if probe.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            return "closed", f"while sending: {type(exc).__name__}"
        return read_answer(sock, probe.wait)


@dataclass
class FuzzResult:
    tried: int = 0
    hangs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    growth_mb: dict[str, float] = field(default_factory=dict)
    server_alive: bool = True

    @property
    def peak_growth_mb(self) -> float:
        return max(self.growth_mb.values(), default=0.0)

    @property
    def survived(self) -> int:
        return self.tried - len(self.hangs) - len(self.errors) if self.server_alive else 0


def fuzz(address: Address, object_id: str, probes: list[Probe], pid: int | None = None, workers: int = 4,
         deadline: float = 120.0) -> FuzzResult:
    """Send every probe until all are done or `deadline` seconds pass: a few at a time, except the ones with
    a long `wait` (bombs), which go one by one so that each one's memory peak is its own."""
    result = FuzzResult()
    stop_at = time.monotonic() + deadline

    def one(probe: Probe) -> None:
        if time.monotonic() > stop_at:
            return
        outcome, what = send_probe(address, probe, object_id)
        result.tried += 1
        result.outcomes[probe.label] = f"{outcome}: {what}"[:160]
        if outcome == "hang":
            result.hangs.append(probe.label)
        elif outcome == "error":
            result.errors.append(f"{probe.label}: {what}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, [p for p in probes if p.wait <= 5.0]))
    for probe in [p for p in probes if p.wait > 5.0]:
        if pid and alive(pid):
            reset_peak(pid)
            before = rss_mb(pid)
        one(probe)
        if pid and alive(pid):
            result.growth_mb[probe.label] = round(rss_mb(pid, "VmHWM") - before, 1)
    result.server_alive = alive(pid) if pid else True
    return result


# -- attack 2: silent and slow connections ---------------------------------------------------------------

@dataclass
class FloodResult:
    opened: int = 0
    refused_at_connect: int = 0
    dropped: int = 0
    too_many: int = 0
    still_open: int = 0
    answers: list[str] = field(default_factory=list)
    slowest_drop: float = 0.0
    dropped_at_once: int = 0

    @property
    def handled(self) -> int:
        return self.dropped + self.refused_at_connect


def flood(address: Address, count: int, watch: float, source: str = HOST, slow_every: int = 2,
          idle_object: str | None = None) -> FloodResult:
    """Open `count` connections that never finish a handshake (every `slow_every`-th sends a partial header),
    then watch for `watch` seconds how many the server drops or refuses. All are closed at the end.

    With `idle_object`, the connections complete a handshake for that object first, then go idle."""
    result = FloodResult()
    socks: list[socket.socket] = []
    start = time.monotonic()
    selector = selectors.DefaultSelector()
    try:
        for i in range(count):
            try:
                sock = session(address, idle_object, source, 2.0) if idle_object else open_socket(address, source, 2.0)
                if not idle_object and slow_every and i % slow_every == 1:
                    sock.sendall(connect_message(NS_OBJECT)[:7])
            except (OSError, ConnectionError):
                result.refused_at_connect += 1
                continue
            sock.setblocking(False)
            socks.append(sock)
            selector.register(sock, selectors.EVENT_READ)
        result.opened = len(socks)
        deadline = start + watch
        pending = len(socks)
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(min(0.2, max(0.0, deadline - time.monotonic()))):
                sock = key.fileobj
                selector.unregister(sock)
                pending -= 1
                result.dropped += 1
                result.dropped_at_once += time.monotonic() - start < 0.5
                result.slowest_drop = max(result.slowest_drop, time.monotonic() - start)
                sock.settimeout(0.5)
                outcome, what = read_answer(sock, 0.5)
                if "too many connections" in what:
                    result.too_many += 1
                if what and len(result.answers) < 5 and what not in result.answers:
                    result.answers.append(what[:160])
        result.still_open = pending
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    result.slowest_drop = round(result.slowest_drop, 2)
    return result


# -- attack 3: many concurrent clients --------------------------------------------------------------------

@dataclass
class LoadResult:
    clients: int
    calls: int = 0
    errors: list[str] = field(default_factory=list)
    clients_with_errors: int = 0
    worst: float = 0.0


def hammer(ns: str, clients: int, seconds: float, name: str = "echo", timeout: float = 10.0,
           during: Callable[[], None] | None = None) -> LoadResult:
    """`clients` threads, each with its own lonja proxy, calling `name.echo` for `seconds`;
    `during()` runs in this thread meanwhile (it must return well within `seconds`)."""
    from lonja.clients import connect

    result = LoadResult(clients)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        calls, errors, worst = 0, [], 0.0
        with connect(name, ns=ns, timeout=timeout) as proxy:
            while time.monotonic() < deadline and len(errors) < 50:
                start = time.perf_counter()
                try:
                    proxy.echo(n)
                    calls += 1
                except Exception as exc:  # counted and reported: the load's errors are the result
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                worst = max(worst, time.perf_counter() - start)
        with lock:
            result.calls += calls
            result.errors += errors
            result.clients_with_errors += bool(errors)
            result.worst = max(result.worst, worst)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    if during is not None:
        during()
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()) + timeout + 5)
    result.worst = round(result.worst, 3)
    return result


# -- attacks 4 and 5: registrations -----------------------------------------------------------------------

@dataclass
class Ledger:
    """What the name server acknowledged: name -> registered?  Names whose last change failed are doubtful."""

    state: dict[str, bool] = field(default_factory=dict)
    doubtful: set[str] = field(default_factory=set)
    acknowledged: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, registered: bool | None) -> None:
        with self.lock:
            if registered is None:
                self.failed += 1
                self.doubtful.add(name)
            else:
                self.acknowledged += 1
                self.state[name] = registered
                self.doubtful.discard(name)

    def lost(self, listed: set[str]) -> list[str]:
        """Names acknowledged as registered that the name server no longer has."""
        return sorted(n for n, on in self.state.items() if on and n not in self.doubtful and n not in listed)

    def ghosts(self, listed: set[str]) -> list[str]:
        """Names acknowledged as removed that the name server still has."""
        return sorted(n for n, on in self.state.items() if not on and n not in self.doubtful and n in listed)


def ns_proxy(ns: str, timeout: float = 5.0) -> Pyro5.api.Proxy:
    proxy = Pyro5.api.Proxy(f"PYRO:{NS_OBJECT}@{ns}")
    proxy._pyroTimeout = timeout
    return proxy


def listed(ns: str, prefix: str) -> set[str]:
    with ns_proxy(ns, 10.0) as names:
        return set(names.list(prefix=prefix))


def churn(ns: str, uri: str, threads: int, seconds: float, names_per_thread: int = 20,
          prefix: str = "churn.") -> Ledger:
    """Register and unregister names (half the threads with lonja_register/lonja_unregister, half with
    Pyro5's register/remove) for `seconds`, recording every acknowledged change."""
    ledger = Ledger()
    deadline = time.monotonic() + seconds

    def worker(t: int) -> None:
        lonja_api = t % 2 == 0
        names = ns_proxy(ns)
        try:
            i = 0
            while time.monotonic() < deadline:
                name = f"{prefix}{t}.{i % names_per_thread}"
                i += 1
                register = not ledger.state.get(name, False)
                try:
                    if lonja_api and register:
                        names.lonja_register(name, uri, ["stress"], 3600.0)
                    elif lonja_api:
                        names.lonja_unregister(name, uri)
                    elif register:
                        names.register(name, uri, metadata=["stress"])
                    else:
                        names.remove(name)
                    ledger.record(name, register)
                except Exception:  # not acknowledged: this name's state is unknown now
                    ledger.record(name, None)
                    names._pyroRelease()
                    names = ns_proxy(ns)
        finally:
            names._pyroRelease()

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(seconds + 30)
    return ledger


def register_until(ns: str, uri: str, stop: threading.Event, ledger: Ledger, prefix: str,
                   limit: float = 120.0) -> None:
    """Register new names one after another until `stop` (or `limit` s), through outages."""
    names = ns_proxy(ns, 3.0)
    deadline = time.monotonic() + limit
    i = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            name = f"{prefix}{i}"
            i += 1
            try:
                names.register(name, uri, metadata=["stress"])
                ledger.record(name, True)
            except Exception:  # the name server is down: try the next name shortly
                ledger.record(name, None)
                names._pyroRelease()
                names = ns_proxy(ns, 3.0)
                stop.wait(0.05)
    finally:
        names._pyroRelease()


# -- attack 8: damaged storage ----------------------------------------------------------------------------

def damaged_stores(folder: Path) -> dict[str, Path]:
    """names.sqlite files damaged in three ways: empty, truncated mid-page, and garbage."""
    folder.mkdir(parents=True, exist_ok=True)
    stores = {}
    empty = folder / "empty" / "names.sqlite"
    empty.parent.mkdir(exist_ok=True)
    empty.write_bytes(b"")
    stores["0-byte file"] = empty
    truncated = folder / "truncated" / "names.sqlite"
    truncated.parent.mkdir(exist_ok=True)
    with sqlite3.connect(truncated) as db:
        db.execute("CREATE TABLE names (name TEXT PRIMARY KEY NOT NULL, uri TEXT NOT NULL) WITHOUT ROWID")
        db.executemany("INSERT INTO names VALUES (?, ?)",
                       [(f"name{i}", f"PYRO:obj@127.0.0.1:{1000 + i}") for i in range(2000)])
    db.close()
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2 + 100])
    stores["truncated file"] = truncated
    garbage = folder / "garbage" / "names.sqlite"
    garbage.parent.mkdir(exist_ok=True)
    garbage.write_bytes(random.Random(3).randbytes(8192))
    stores["garbage file"] = garbage
    return stores


@dataclass
class StartAttempt:
    started: bool
    exit_code: int | None
    output: str

    @property
    def refused_cleanly(self) -> bool:
        """Refused to start: non-zero exit, one line of output, and no traceback."""
        text = self.output.strip()
        return (not self.started and self.exit_code not in (None, 0) and bool(text) and "\n" not in text
                and "Traceback" not in text)


def try_start_ns(store: Path, env: dict[str, str], cwd: Path, timeout: float = 20.0) -> StartAttempt:
    """Start a name server on `store`; one that starts is stopped again at once (by pid)."""
    process = Process(["ns", "--host", HOST, "--port", "0", "--storage", f"sqlite:{store}"], env, cwd)
    try:
        started = process.wait_for("name server listening", timeout) is not None
        if not started:
            try:
                process.proc.wait(max(1.0, timeout))
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        return StartAttempt(started, process.proc.poll(), "\n".join(process.lines))
    finally:
        process.stop()


