"""Objects by reference and callbacks against plain calls: `python -m benchmarks.reference_rows [--rounds N]`.

Standalone (not part of `python -m benchmarks`). It starts a name server and `lonja serve` of the `Bench`
service below on free ports of 127.0.0.1, and prints the median of N rounds (5 by default) of:

- a call on a registered service, and the same call on an object by reference (`share`);
- a callback round trip (client -> service -> the client's listener -> service -> client) with a listener
  the service keeps, and with a listener shared afresh in each call; both against the plain call;
- creating and dropping 1,000 references (in one call, and one call each), until the host has released them
  all, against 1,000 plain calls.

Each row is reported as its median time per operation and as a ratio to its baseline; within a round the
rows run in turn.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lonja.services import service, share

from .standalone import environment, start, stop


class Item:
    def ping(self) -> int:
        return 1


@service("bench.refs")
class Bench:
    """What the rows call."""

    def __init__(self) -> None:
        self.item = Item()
        self.listener: Any = None

    def ping(self) -> int:
        return 1

    def one(self) -> Item:
        return share(Item())

    def many(self, count: int) -> list[Item]:
        return [share(Item()) for _ in range(count)]

    def keep(self, listener: Any) -> None:
        self.listener = listener

    def call_back(self) -> int:
        return int(self.listener.ping()) + 1

    def call_this(self, listener: Any) -> int:
        return int(listener.ping()) + 1


class Listener:
    def ping(self) -> int:
        return 1


def medians(runs: dict[str, tuple[Callable[[], Any], int]], rounds: int) -> dict[str, float]:
    """Median seconds per operation of each run (`run()` does `count` operations), the runs taken in
    turn within each round, so that a busy moment of the machine falls on all of them alike."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        for label, (run, count) in runs.items():
            began = time.perf_counter()
            run()
            times[label].append((time.perf_counter() - began) / count)
    return {label: statistics.median(values) for label, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round of the call rows")
    options = parser.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="lonja-refs-"))
    env = environment(data)
    ns_process, line = start(["ns", "--host", "127.0.0.1", "--port", "0", "--storage", "memory"], env,
                             "name server listening")
    ns = line.split(" on ", 1)[1].split()[0].split("@", 1)[1]
    host, _ = start(["serve", "benchmarks.reference_rows:Bench", "--ns", ns], env, "press Ctrl-C to stop")
    try:
        rows = measure(ns, options.rounds, options.calls)
    finally:
        for process in (host, ns_process):
            stop(process)
        shutil.rmtree(data, ignore_errors=True)
    print(f"\n{'what':<58} {'per op':>11} {'ratio':>6}")
    for label, seconds, baseline in rows:
        shown = f"{seconds * 1e3:,.1f} ms" if seconds >= 0.01 else f"{seconds * 1e6:,.1f} µs"
        print(f"{label:<58} {shown:>11} {seconds / baseline:>6.2f}x")
    return 0


def measure(ns: str, rounds: int, calls: int) -> list[tuple[str, float, float]]:
    from lonja.clients import connect, shared_objects

    bench = connect("bench.refs", ns=ns)
    item = bench.one()
    listener = Listener()
    bench.keep(share(listener))
    for warm in (bench.ping, item.ping, bench.call_back):
        for _ in range(200):
            warm()
    baseline = shared_objects(bench)

    def released() -> None:
        gc.collect()
        while shared_objects(bench) != baseline:
            time.sleep(0.001)

    def many_in_one_call() -> None:
        held = bench.many(1000)
        del held
        released()

    def one_call_each() -> None:
        held = [bench.one() for _ in range(1000)]
        del held
        released()

    runs = {
        "plain": (lambda: [bench.ping() for _ in range(calls)], calls),
        "reference": (lambda: [item.ping() for _ in range(calls)], calls),
        "kept": (lambda: [bench.call_back() for _ in range(calls)], calls),
        "fresh": (lambda: [bench.call_this(share(listener)) for _ in range(calls // 4)], calls // 4),
        "plain 1000": (lambda: [bench.ping() for _ in range(1000)], 1),
        "many": (many_in_one_call, 1),
        "each": (one_call_each, 1),
    }
    took = medians(runs, rounds)
    plain, plain_1000 = took["plain"], took["plain 1000"]
    rows = [
        ("call on a registered service (baseline)", plain, plain),
        ("call on an object by reference", took["reference"], plain),
        ("callback round trip, listener kept by the service", took["kept"], plain),
        ("callback round trip, listener shared in each call", took["fresh"], plain),
        ("1,000 plain calls (baseline of the two rows below)", plain_1000, plain_1000),
        ("create and drop 1,000 references, in one call", took["many"], plain_1000),
        ("create and drop 1,000 references, one call each", took["each"], plain_1000),
    ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
