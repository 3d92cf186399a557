"""The client process of one system in one round: measures its rows in every mode and prints one JSON line.

    python -m benchmarks.child warm|cold SPEC_JSON

SPEC_JSON: {"system", "endpoints": {...}, "counts": {...}, "modes": ["unpinned", "pinned"], "round": N}.
"warm" connects by name once per mode, warms up and runs `benchmarks.rows`; "cold" imports the client library
only and runs `benchmarks.cold`. Per mode: "pinned" puts the system's server processes on CPU 1 and this
process (and so every process it starts) on CPU 0, "unpinned" lets them run anywhere. Every value is stored
with the 1-minute load average taken when it was measured. A row that fails is reported and the others go on.

Output: {"system", "kind", "results": {mode: {row id: {"value", "load", ...}}}, "errors": [...], "pids": [...]}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from . import cold, rows
from .callers import Caller, Endpoints, caller
from .catalog import BY_ID, Counts
from .servers import CLIENT_CPU, SERVER_CPU, pin


def set_mode(mode: str, server_pids: list[int]) -> None:
    pinned = mode == "pinned"
    for pid in server_pids:
        pin(pid, {SERVER_CPU} if pinned else None)
    pin(os.getpid(), {CLIENT_CPU} if pinned else None)


def applies(system: str, row_ids: list[str]) -> bool:
    return any(system in BY_ID[row_id].systems for row_id in row_ids)


def run(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    system = spec["system"]
    ep = Endpoints(**spec["endpoints"])
    counts = Counts(**spec["counts"])
    the_caller = caller(system)
    the_caller.load()
    results: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, str]] = []
    pids: list[int] = []

    def record(mode: str, label: str, measure: Callable[[], dict[str, Any]]) -> None:
        try:
            values = measure()
        except Exception as exc:
            print(f"[{system} {kind} {mode}] {label} failed:\n{traceback.format_exc()}", file=sys.stderr)
            errors.append({"system": system, "mode": mode, "row": label, "error": f"{type(exc).__name__}: {exc}"})
            return
        load = os.getloadavg()[0]
        extra = values.pop("extra", None)
        for row_id, value in values.items():
            if system in BY_ID[row_id].systems:
                results[mode][row_id] = {"value": value, "load": load, **({"extra": extra} if extra else {})}

    for mode in spec["modes"]:
        results[mode] = {}
        set_mode(mode, ep.pids)
        try:
            if kind == "warm":
                warm_mode(the_caller, ep, counts, mode, spec["round"], record)
            else:
                context = cold.Cold(the_caller, ep, counts, spec["round"], pids)
                for measure, row_ids in cold.COLD:
                    if applies(system, row_ids):
                        record(mode, measure.__name__, lambda m=measure: m(context))
        except Exception as exc:  # connecting failed: this mode has no rows, the next mode still runs
            print(f"[{system} {kind} {mode}] failed:\n{traceback.format_exc()}", file=sys.stderr)
            errors.append({"system": system, "mode": mode, "row": kind, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            set_mode("unpinned", ep.pids)
    return {"system": system, "kind": kind, "results": results, "errors": errors, "pids": pids}


def warm_mode(the_caller: Caller, ep: Endpoints, counts: Counts, mode: str, round_: int,
              record: Callable[[str, str, Callable[[], dict[str, Any]]], None]) -> None:
    """One warm client: connect by name, warm up, run every warm row this system has."""
    proxy = the_caller.by_name(ep)
    try:
        context = rows.Warm(the_caller, ep, counts, proxy, mode, round_)
        rows.warm_up(context)
        for measure, row_ids in rows.WARM:
            if applies(the_caller.system, row_ids):
                record(mode, measure.__name__, lambda m=measure: m(context))
    finally:
        the_caller.close(proxy)


def main(argv: list[str]) -> int:
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(2)

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError("a child process took too long")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, alarm)
    kind, spec = argv[0], json.loads(argv[1])
    print(json.dumps(run(kind, spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
