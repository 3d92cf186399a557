"""The cold rows: first calls made by processes that have nothing resolved, cached or connected yet.

- first call by name ÷ by address: the client process has imported its library and nothing else; for
  every try it forks a child that times making the proxy plus its first `echo(1)` (by name through the
  system's name server or registry, or by the server's direct address) and reports the seconds;
- new interpreter: the wall time of a whole `python -c` process that imports the client library, and one
  that imports it and makes a first call by name (no PYTHONPATH, run from a temporary folder, as a user's
  script would be).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .callers import Caller, Endpoints
from .catalog import Counts
from .measure import in_fresh_child, rotate, seconds
from .servers import child_env

CHILD_TIMEOUT = 30.0
Values = dict[str, float]


@dataclass
class Cold:
    caller: Caller
    ep: Endpoints
    counts: Counts
    round: int
    pids: list[int]


def first_calls(c: Cold) -> Values:
    """Forked first calls, by name and by address taking turns: medians in ms and their ratio."""
    times: dict[str, list[float]] = {"name": [], "address": []}
    for attempt in range(c.counts.first_calls):
        for kind in rotate(list(times), c.round + attempt):
            times[kind].append(_forked_first_call(c, kind))
    name, address = statistics.median(times["name"]), statistics.median(times["address"])
    return {"first_call.name": name * 1e3, "first_call.address": address * 1e3, "first_call.ratio": name / address}


def startups(c: Cold) -> Values:
    """New interpreters: imports alone, and imports plus a first call by name, taking turns: medians in ms."""
    times: dict[str, list[float]] = {"startup.imports": [], "startup.call": []}
    env = {k: v for k, v in child_env(lonja=c.caller.system == "lonja").items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="lonja-bench-startup-") as folder:
        for attempt in range(c.counts.startups):
            for row in rotate(list(times), c.round + attempt):
                code = c.caller.startup_code(c.ep, call=row == "startup.call")
                times[row].append(seconds(lambda: _interpreter(code, env, folder, c.pids)))
    return {row: statistics.median(values) * 1e3 for row, values in times.items()}


COLD = [(first_calls, ["first_call.name", "first_call.address", "first_call.ratio"]),
        (startups, ["startup.imports", "startup.call"])]


def _interpreter(code: str, env: dict[str, str], folder: str, pids: list[int]) -> None:
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=folder, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pids.append(process.pid)
    try:
        _, err = process.communicate(timeout=CHILD_TIMEOUT)
    except BaseException:
        process.kill()
        process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"python -c {code!r} failed ({process.returncode}):\n{err[-2000:]}")


def _forked_first_call(c: Cold, kind: str) -> float:
    """Fork a child that makes one first call (`kind` "name" or "address"); return its seconds."""
    def first_call() -> dict[str, float]:
        connect = c.caller.by_name if kind == "name" else c.caller.by_address
        start = time.perf_counter()
        proxy = connect(c.ep)
        c.caller.method(proxy, "echo")(1)
        elapsed = time.perf_counter() - start
        c.caller.close(proxy)
        return {"seconds": elapsed}

    return in_fresh_child(first_call, f"{c.caller.system}: a first call by {kind}", CHILD_TIMEOUT, c.pids)["seconds"]
