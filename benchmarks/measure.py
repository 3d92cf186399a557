"""Timing and statistics: timed loops, percentiles, medians over rounds with their spread, rotations."""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """The median of the rounds' values, with the lowest and highest as the spread."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return a / b if b else float("inf")


def latencies(call: Callable[[], Any], n: int) -> list[float]:
    """Seconds each of `n` calls took."""
    clock = time.perf_counter
    timings = []
    for _ in range(n):
        start = clock()
        call()
        timings.append(clock() - start)
    return timings


def rate(call: Callable[[], Any], n: int, at_least: float = 0.0) -> float:
    """Calls per second over `n` calls made one after another, and more until `at_least` seconds passed."""
    start = time.perf_counter()
    for _ in range(n):
        call()
    done, elapsed = n, time.perf_counter() - start
    while elapsed < at_least:
        call()
        done, elapsed = done + 1, time.perf_counter() - start
    return done / elapsed


def seconds(work: Callable[[], Any]) -> float:
    """Seconds `work()` took."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.0005, what: str = "") -> None:
    """Return once `predicate()` holds; raise TimeoutError after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what or 'condition'} not reached within {timeout:.0f} s")
        time.sleep(poll)


def rotate(items: Sequence[T], by: int) -> list[T]:
    """`items` starting at position `by` (modulo its length): round r goes in order rotate(items, r)."""
    if not items:
        return []
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


def in_fresh_child(work: Callable[[], dict[str, float]], what: str, timeout: float = 60.0,
                   pids: list[int] | None = None) -> dict[str, float]:
    """Run `work` in a forked child and return what it returned: a process with none of this one's
    threads (a client library's background threads stay behind), for first calls and rows about a server
    alone. The child is killed after `timeout` seconds; its pid is added to `pids` for the report."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            os.write(write, json.dumps(work()).encode())
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    if pids is not None:
        pids.append(pid)
    try:
        signal.alarm(max(1, int(timeout)))
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        signal.alarm(0)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    if not data or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{what} failed (see the traceback above)")
    return json.loads(data)
