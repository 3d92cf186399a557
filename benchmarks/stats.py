"""Small statistics for timings: medians over repetitions, with their spread."""

from __future__ import annotations

import statistics
from typing import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(per_rep: Sequence[float]) -> dict[str, float]:
    """The median of the repetitions' values, with the lowest and highest as the spread."""
    return {"median": statistics.median(per_rep), "min": min(per_rep), "max": max(per_rep), "reps": len(per_rep)}


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")
