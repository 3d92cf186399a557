"""What a run produces: machine information, the targets judged, the markdown table, the JSON file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

# (id, what is promised, row id, which value of the row, comparison, bar)
TARGETS = [
    ("latency.serpent", "lonja plain call ≤ 1.10× plain Pyro5 latency, same serializer (serpent)",
     "latency.median.serpent", "ratio", "<=", 1.10),
    ("latency.msgpack", "lonja plain call ≤ 1.10× plain Pyro5 latency, same serializer (msgpack)",
     "latency.median.msgpack", "ratio", "<=", 1.10),
    ("latency.defaults", "lonja default ≤ 0.70× plain Pyro5 default latency",
     "latency.median.defaults", "ratio", "<=", 0.70),
    ("payload.100KB", "lonja default ≥ 10× plain Pyro5 default MB/s on 100 KB",
     "payload.100KB", "ratio", ">=", 10.0),
    ("oneway", "lonja oneway completions/s ≥ 2× its plain calls/s",
     "oneway.completion_per_sync", "lonja", ">=", 2.0),
    ("futures.echo", "futures of echo ≥ 2× one by one", "futures.echo.futures", "ratio", ">=", 2.0),
    ("aio.echo", "aio calls of echo ≥ 2× one by one", "futures.echo.aio", "ratio", ">=", 2.0),
    ("futures.slow", "futures of slow(0.002) ≥ 2× one by one", "futures.slow.futures", "ratio", ">=", 2.0),
    ("aio.slow", "aio calls of slow(0.002) ≥ 2× one by one", "futures.slow.aio", "ratio", ">=", 2.0),
    ("clients.8", "8 client processes ≥ 1.5× one client's calls/s (lonja's default server type)",
     "clients.{servertype}.scale8", "lonja", ">=", 1.5),
    ("first_call", "first call via connect(name) ≤ 1.3× via a direct URI",
     "first_call.name_vs_uri", "lonja", "<=", 1.3),
]


def machine() -> dict[str, Any]:
    import msgpack
    import Pyro5
    import serpent

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "python_implementation": platform.python_implementation(), "pyro5": Pyro5.__version__,
            "serpent": serpent.__version__, "msgpack": ".".join(map(str, msgpack.version)),
            "platform": platform.platform()}


def judge(rows: list[dict[str, Any]], servertype: str) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it passes (a missing value is a miss)."""
    by_id = {r["id"]: r for r in rows}
    verdicts = []
    for key, label, row_id, value, op, bar in TARGETS:
        row_id = row_id.format(servertype=servertype)
        found = by_id.get(row_id)
        measured = None
        if found is not None:
            measured = found["ratio"] if value == "ratio" else (found[value] or {}).get("median")
        passed = measured is not None and (measured <= bar if op == "<=" else measured >= bar)
        verdicts.append({"id": key, "target": label, "row": row_id, "value": value, "op": op, "bar": bar,
                         "measured": measured, "pass": passed})
    return verdicts


def number(value: float) -> str:
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(value: dict[str, float] | None) -> str:
    if not value:
        return ""
    if value["reps"] == 1:
        return number(value["median"])
    return f"{number(value['median'])} ({number(value['min'])}–{number(value['max'])})"


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"## lonja vs plain Pyro5 {m['pyro5']}: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}"
             + (" (QUICK run: tiny counts, not for conclusions)" if report["quick"] else ""), "",
             f"lonja defaults: serializer {report['lonja_defaults']['serializer']}, server type "
             f"{report['lonja_defaults']['servertype']} (single-client rows use that host). Cells: median of "
             f"{report['counts']['reps']} repetition(s) (min–max).", "",
             "| section | row | unit | lonja | plain Pyro5 | ratio | ratio is |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        shown = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['section']} | {r['name']} | {r['unit']} | {cell(r['lonja'])} | {cell(r['plain'])} "
                     f"| {shown} | {r['ratio_of']} |")
    passed = sum(t["pass"] for t in report["targets"])
    lines += ["", f"### Targets: {passed} of {len(report['targets'])} pass", "",
              "| target | bar | measured | result |", "|---|---|---|---|"]
    for t in report["targets"]:
        measured = "missing" if t["measured"] is None else f"{t['measured']:.2f}"
        lines.append(f"| {t['target']} | {t['op']} {t['bar']:.2f} | {measured} | {'pass' if t['pass'] else 'MISS'} |")
    for e in report.get("errors", []):
        lines.append(f"\n**{e['phase']} failed**: {e['error']}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
