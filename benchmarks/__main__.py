"""Run the benchmark: start the servers, measure every row, print the table and the targets, write JSON.

    python -m benchmarks [--quick] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from typing import Any

from .servers import LONJA_SERVERTYPES, Servers, clean_environment, lonja_defaults, remove_workdir

DEFAULT_OUT = "benchmarks/results.json"


def progress(text: str) -> None:
    print(f"[benchmarks] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="lonja against plain Pyro5, "
                                     "measured in the same run (servers are started and stopped by the run).")
    parser.add_argument("--quick", action="store_true", help="tiny counts, one repetition: every row, in seconds")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"where to write the JSON (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    workdir = clean_environment()  # before Pyro5 or lonja is imported: they read the environment
    from . import report, rows

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)  # so that the servers are stopped on SIGTERM too
    defaults = lonja_defaults()
    counts = rows.QUICK if args.quick else rows.FULL
    servers = Servers()
    ctx = rows.Context(servers=servers, counts=counts, servertype=defaults["servertype"],
                       serializer=defaults["serializer"], servertypes=list(LONJA_SERVERTYPES), progress=progress)
    if ctx.servertype not in ctx.servertypes:
        ctx.servertypes.insert(0, ctx.servertype)
    results: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    started = time.monotonic()
    try:
        progress(f"{'quick' if args.quick else 'full'} run; starting servers")
        servers.start_all(ctx.servertypes, progress)
        for label, measure, pinned in rows.PHASES:
            progress(f"measuring {label} ({time.monotonic() - started:.0f} s so far)")
            servers.pin(pinned)
            try:
                results += measure(ctx)
            except Exception as exc:  # the other rows are still worth having; the exit code says it failed
                progress(f"{label} FAILED:\n{traceback.format_exc()}")
                errors.append({"phase": label, "error": f"{type(exc).__name__}: {exc}"})
    except KeyboardInterrupt:
        progress("interrupted: stopping the servers")
        return 130
    finally:
        progress("stopping the servers")
        servers.stop()
        servers.pin(False)
        remove_workdir(workdir)
    out = {"machine": report.machine(), "quick": args.quick, "seconds": round(time.monotonic() - started, 1),
           "counts": vars(counts), "lonja_defaults": defaults, "lonja_servertypes": ctx.servertypes,
           "pinning": "single-client rows: servers on CPU 1, this client on CPU 0; client-process rows unpinned",
           "server_pids": servers.pids, "client_pids": ctx.client_pids, "errors": errors, "rows": results,
           "targets": report.judge(results, ctx.servertype)}
    print(report.table(out))
    report.write_json(out, args.out)
    progress(f"wrote {args.out} ({out['seconds']} s)")
    if errors:
        progress(f"{len(errors)} phase(s) failed: {', '.join(e['phase'] for e in errors)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
