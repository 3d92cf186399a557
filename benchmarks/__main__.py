"""Run the comparison of issue 9: plain Pyro5, Pyro5 + msgpack, RPyC and lonja, interleaved round by round.

    python -m benchmarks [--quick] [--rounds N] [--systems a,b] [--out FILE.json]
    python -m benchmarks --results-md RUN1.json [RUN2.json] [--md benchmarks/RESULTS.md]

The first form measures, prints the table and writes the JSON; the second writes RESULTS.md's tables from one
or two full runs' JSON (see `benchmarks.resultsmd`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import asdict, replace
from typing import Any

from .callers import SYSTEMS
from .servers import clean_environment, remove_workdir

DEFAULT_OUT = "benchmarks/results.json"
DEFAULT_MD = "benchmarks/RESULTS.md"


def progress(text: str) -> None:
    print(f"[benchmarks] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="lonja against plain Pyro5, Pyro5 + "
                                     "msgpack and RPyC, interleaved round by round (servers and client processes "
                                     "are started and stopped by the run).")
    parser.add_argument("--quick", action="store_true", help="one round, tiny counts: every row in about a minute")
    parser.add_argument("--rounds", type=int, help="rounds (default: 5, or 1 with --quick)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"which systems (default: {','.join(SYSTEMS)})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"where to write the JSON (default: {DEFAULT_OUT})")
    parser.add_argument("--results-md", nargs="+", metavar="RUN.json",
                        help="write RESULTS.md's tables from one or two runs' JSON instead of measuring")
    parser.add_argument("--md", default=DEFAULT_MD, help=f"where --results-md writes (default: {DEFAULT_MD})")
    args = parser.parse_args(argv)

    if args.results_md:
        from . import resultsmd
        resultsmd.write(args.results_md, args.md)
        progress(f"wrote {args.md}")
        return 0
    wanted = [s for s in args.systems.split(",") if s]
    unknown = set(wanted) - set(SYSTEMS)
    if unknown or "lonja" not in wanted:
        parser.error(f"--systems: lonja and some of {', '.join(SYSTEMS)} (unknown: {', '.join(sorted(unknown))})")

    workdir = clean_environment()  # before Pyro5 or lonja is imported: they read the environment
    from . import report, rounds
    from .catalog import FULL, QUICK

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)  # the servers and client processes are stopped on SIGTERM too
    counts = QUICK if args.quick else FULL
    if args.rounds:
        counts = replace(counts, rounds=args.rounds)
    started = time.time()
    progress(f"{'quick' if args.quick else 'full'} run: {counts.rounds} round(s) of {', '.join(wanted)}")
    try:
        log, status = rounds.run(wanted, counts, progress)
    except KeyboardInterrupt:
        progress("interrupted: the servers and client processes were stopped")
        return 130
    finally:
        remove_workdir(workdir)
    out = {"machine": report.machine(), "quick": args.quick, "started": started,
           "seconds": round(time.time() - started, 1), "counts": asdict(counts), "systems": status,
           "orders": log.orders, "errors": log.errors, "server_pids": log.server_pids, "client_pids": log.client_pids,
           "rows": report.aggregate(log.samples, status)}
    out["goals"] = report.goals(out)
    print(report.table(out))
    report.write_json(out, args.out)
    progress(f"wrote {args.out} ({out['seconds']} s)")
    if log.errors:
        progress(f"{len(log.errors)} measurement(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
