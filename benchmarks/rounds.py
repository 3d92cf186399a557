"""The round loop: systems take turns round by round, each with fresh servers and fresh client processes.

In round r the systems go in an order rotated by r, and the modes (unpinned, pinned) too. For each system:
start its servers (`benchmarks.systems`), run a warm client process and a cold one (`benchmarks.child`, both
modes each), then 1 and 8 client processes (`benchmarks.loadgen`, unpinned), and stop the servers by pid.
A system or a row that fails is recorded and the run goes on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import systems
from .callers import Endpoints, installed
from .catalog import MODES, Counts
from .measure import rotate
from .servers import Processes, python, run_child

CHILD_TIMEOUT = 900.0


@dataclass
class Log:
    """Everything the rounds measured: samples[row id][mode][system] = [{"round", "value", "load"}, ...]."""

    samples: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    orders: list[list[str]] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)
    client_pids: list[int] = field(default_factory=list)

    def add(self, row_id: str, mode: str, system: str, round_: int, value: float, load: float,
            extra: dict[str, Any] | None = None) -> None:
        sample: dict[str, Any] = {"round": round_, "value": value, "load": load}
        if extra:
            sample["extra"] = extra
        self.samples.setdefault(row_id, {}).setdefault(mode, {}).setdefault(system, []).append(sample)

    def error(self, system: str, round_: int, what: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.errors.append({"system": system, "round": round_, "what": what, "error": text})


def run(wanted: list[str], counts: Counts, progress: Callable[[str], None]) -> tuple[Log, dict[str, str]]:
    """Every round; returns the log and each system's status ("measured" or why not)."""
    status = {system: "measured" if installed(system) else "not installed" for system in wanted}
    present = [system for system in wanted if status[system] == "measured"]
    log = Log()
    started = time.monotonic()
    for round_ in range(counts.rounds):
        order = rotate(present, round_)
        log.orders.append(order)
        for system in order:
            progress(f"round {round_ + 1}/{counts.rounds}: {system} ({time.monotonic() - started:.0f} s so far, "
                     f"load {os.getloadavg()[0]:.2f})")
            one_system(system, round_, rotate(MODES, round_), counts, log, progress)
    return log, status


def one_system(system: str, round_: int, modes: list[str], counts: Counts, log: Log,
               progress: Callable[[str], None]) -> None:
    processes = Processes()
    try:
        try:
            ep = systems.start(system, processes)
        except Exception as exc:
            log.error(system, round_, "starting the servers", exc)
            progress(f"  {system}: the servers did not start: {exc}")
            return
        finally:
            log.server_pids += processes.all_pids
        spec = {"system": system, "endpoints": asdict(ep), "counts": asdict(counts), "modes": modes,
                "round": round_}
        for kind in ("warm", "cold"):
            try:
                out = json.loads(run_child(python("-m", "benchmarks.child", kind, json.dumps(spec)), CHILD_TIMEOUT,
                                           log.client_pids).strip().splitlines()[-1])
            except Exception as exc:
                log.error(system, round_, f"{kind} client process", exc)
                progress(f"  {system}: the {kind} client failed: {str(exc)[-500:]}")
                continue
            log.client_pids += out["pids"]
            for error in out["errors"]:
                log.error(system, round_, f"{kind} {error['mode']}: {error['row']}", error["error"])
                progress(f"  {system}: {kind} {error['mode']} {error['row']} failed: {error['error']}")
            for mode, values in out["results"].items():
                for row_id, sample in values.items():
                    log.add(row_id, mode, system, round_, sample["value"], sample["load"], sample.get("extra"))
        processes.pin(None)
        client_processes(system, ep, round_, counts, log)
    finally:
        processes.stop()


def client_processes(system: str, ep: Endpoints, round_: int, counts: Counts, log: Log) -> None:
    """1 and 8 client processes (in a rotated order), unpinned: total calls/s and their ratio."""
    totals: dict[int, float] = {}
    loads: dict[int, float] = {}
    for n in rotate([1, 8], round_):
        try:
            out = json.loads(run_child(python("-m", "benchmarks.loadgen", system, json.dumps(asdict(ep)), str(n),
                                              str(counts.load_seconds)), 120 + counts.load_seconds,
                                       log.client_pids).strip().splitlines()[-1])
        except Exception as exc:
            log.error(system, round_, f"{n} client processes", exc)
            continue
        log.client_pids += out["pids"]
        totals[n] = out["calls"] / out["seconds"]
        loads[n] = os.getloadavg()[0]
        log.add(f"clients.{n}", "unpinned", system, round_, totals[n], loads[n])
    if 1 in totals and 8 in totals:
        log.add("clients.scale8", "unpinned", system, round_, totals[8] / totals[1], max(loads.values()))
