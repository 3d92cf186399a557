"""Timing and statistics: timed loops, percentiles, medians over repetitions with their spread, rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(per_rep: Sequence[float]) -> dict[str, float]:
    """The median of the repetitions' values, with the lowest and highest as the spread."""
    return {"median": statistics.median(per_rep), "min": min(per_rep), "max": max(per_rep), "reps": len(per_rep)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return a / b if b else float("inf")


def row(section: str, name: str, unit: str, lonja: Sequence[float] | None, plain: Sequence[float] | None,
        ratio_of: str = "lonja ÷ plain", value: float | None = None, **extra: Any) -> dict[str, Any]:
    """One line of the report.

    `lonja` and `plain` are the per-repetition values (None where a side has no counterpart); each
    becomes a summary (median, min, max, reps). `ratio` is lonja's median ÷ plain's, unless `value`
    gives it (for rows whose ratio compares something else: `ratio_of` says what).
    """
    lonja_s = summary(lonja) if lonja else None
    plain_s = summary(plain) if plain else None
    if value is None and lonja_s and plain_s:
        value = ratio(lonja_s["median"], plain_s["median"])
    return {"section": section, "name": name, "unit": unit, "lonja": lonja_s, "plain": plain_s, "ratio": value,
            "ratio_of": ratio_of if value is not None else "", **extra}


def latencies(call: Callable[[], Any], n: int) -> list[float]:
    """Seconds each of `n` calls took."""
    clock = time.perf_counter
    timings = []
    for _ in range(n):
        start = clock()
        call()
        timings.append(clock() - start)
    return timings


def rate(call: Callable[[], Any], n: int) -> float:
    """Calls per second over `n` calls made one after another."""
    start = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - start)


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.001, what: str = "") -> None:
    """Return once `predicate()` holds; raise TimeoutError after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what or 'condition'} not reached within {timeout:.0f} s")
        time.sleep(poll)


def alternate(rep: int, pair: tuple[str, str] = ("lonja", "plain")) -> tuple[str, str]:
    """The pair in one order on even repetitions, the other on odd ones (so neither side always goes first)."""
    return pair if rep % 2 == 0 else (pair[1], pair[0])
