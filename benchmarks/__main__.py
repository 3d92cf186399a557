"""Run the benchmark: start servers, measure every row, print a table and the targets, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import Pyro5

from . import rows
from .servers import LONJA_SERVERTYPES, Servers

DEFAULT_SERVERTYPE = "adaptive"

# (row name, how the ratio is judged, the bar) — each is a target from the issue.
TARGETS = [
    ("small call median, serpent", "<=", 1.10, "lonja plain call vs plain Pyro5, same serializer (serpent)"),
    ("small call median, msgpack", "<=", 1.10, "lonja plain call vs plain Pyro5, same serializer (msgpack)"),
    ("small call median, defaults (lonja msgpack, plain serpent)", "<=", 0.70, "lonja default vs Pyro5 default"),
    ("bytes echo 100 KB, defaults", ">=", 10.0, "100 KB bytes MB/s, lonja default vs Pyro5 default"),
    ("lonja oneway completions ÷ lonja plain calls", ">=", 2.0, "oneway completions/s vs plain calls/s"),
    ("futures of echo vs one by one", ">=", 2.0, "1,000 futures of echo vs one by one"),
    ("aio of echo vs one by one", ">=", 2.0, "1,000 aio calls of echo vs one by one"),
    ("futures of slow(0.002) vs one by one", ">=", 2.0, "1,000 futures of slow(0.002) vs one by one"),
    ("aio of slow(0.002) vs one by one", ">=", 2.0, "1,000 aio calls of slow(0.002) vs one by one"),
    (f"lonja {DEFAULT_SERVERTYPE}: 8 ÷ 1 client", ">=", 1.5, "8 client processes vs 1, lonja default server"),
    ("first call via connect(name) vs via a direct PYRO: URI", "<=", 1.3, "first call, name vs direct URI"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts, one repetition: checks every row runs")
    parser.add_argument("--out", default="benchmarks/results.json", help="where to write the JSON")
    args = parser.parse_args(argv)
    counts = rows.QUICK if args.quick else rows.FULL
    servertypes = [DEFAULT_SERVERTYPE] if args.quick else LONJA_SERVERTYPES
    name = f"echo.{DEFAULT_SERVERTYPE}"
    servers = Servers()
    results: list[dict[str, Any]] = []
    started = time.time()
    try:
        progress("starting servers")
        servers.start_all(LONJA_SERVERTYPES if not args.quick else servertypes)
        # One client against the servers: client and servers pinned to different CPUs (see servers.pin);
        # many client processes: everything free to run anywhere.
        for label, pinned, measure in [
                ("latency", True, lambda: rows.latency(servers, counts, name)),
                ("payload", True, lambda: rows.payload(servers, counts, name)),
                ("oneway", True, lambda: rows.oneway(servers, counts, name)),
                ("futures and aio", True, lambda: rows.concurrency(servers, counts, name)),
                ("batch", True, lambda: rows.batch(servers, counts, name)),
                ("first call", True, lambda: rows.first_call(servers, counts, name)),
                ("client processes", False, lambda: rows.clients(servers, counts, servertypes))]:
            progress(f"measuring {label}")
            servers.pin(pinned)
            results += measure()
    finally:
        servers.stop()
    report = {"machine": machine(), "quick": args.quick, "seconds": round(time.time() - started, 1),
              "server_pids": servers.pids, "rows": results, "targets": judge(results)}
    print(table(report))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    progress(f"wrote {args.out} ({report['seconds']} s)")
    return 0


def progress(text: str) -> None:
    print(f"[benchmarks] {text}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "pyro5": Pyro5.__version__, "platform": platform.platform()}


def judge(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    for suffix, op, bar, label in TARGETS:
        found = [r for r in results if r["name"] == suffix or r["name"].endswith(suffix)]
        value = found[0]["ratio"] if found else None
        ok = value is not None and (value <= bar if op == "<=" else value >= bar)
        verdicts.append({"target": label, "bar": f"{op} {bar}", "ratio": value, "met": ok})
    return verdicts


def table(report: dict[str, Any]) -> str:
    lines = [f"lonja vs plain Pyro5 {report['machine']['pyro5']}, {report['machine']['cpus']} CPUs "
             f"({report['machine']['cpu']}), Python {report['machine']['python']}"
             + (" — QUICK run, not for conclusions" if report["quick"] else ""), "",
             "| section | row | unit | lonja (median, min–max) | plain Pyro5 (median, min–max) | lonja ÷ plain |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        shown = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['section']} | {r['name']} | {r['unit']} | {cell(r['lonja'])} | {cell(r['plain'])} "
                     f"| {shown} |")
    lines += ["", "| target | bar | measured | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        measured = "missing" if t["ratio"] is None else f"{t['ratio']:.2f}"
        lines.append(f"| {t['target']} | {t['bar']} | {measured} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines)


def cell(value: dict[str, float] | None) -> str:
    if not value:
        return ""
    return f"{value['median']:,.1f} ({value['min']:,.1f}–{value['max']:,.1f})"


if __name__ == "__main__":
    sys.exit(main())
