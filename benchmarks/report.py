"""What a run produces: the rows summarised over the rounds, lonja's ratios, issue 9's goals judged, the
markdown table and the JSON file; and machine information.

A row (one per catalog row and mode) holds, per system, the median, min and max of its per-round values
with the 1-minute load averages they were measured at; the ratios lonja ÷ each peer (of the medians); and,
on the unpinned line, the goal and PASS/FAIL.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from importlib import metadata
from pathlib import Path
from typing import Any

from .callers import LABELS, SYSTEMS
from .catalog import BY_ID, PEERS, ROWS, Goal, Row
from .measure import ratio, summary

SHORT = {"pyro5": "Pyro5", "pyro5-msgpack": "msgpack", "rpyc": "RPyC"}


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("lonja", "Pyro5", "serpent", "msgpack", "rpyc"):
        try:
            versions[package.lower()] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package.lower()] = "not installed"
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "python_implementation": platform.python_implementation(), **versions, "platform": platform.platform()}


def aggregate(samples: dict[str, Any], status: dict[str, str]) -> list[dict[str, Any]]:
    """One row per catalog row and mode: each system's summary, lonja's ratios, the goal judged (unpinned)."""
    out = []
    for row in ROWS:
        for mode in row.modes:
            per_system: dict[str, Any] = {}
            loads: list[float] = []
            for system in SYSTEMS:
                source = row.peers_from if row.peers_from and system != "lonja" else row.id
                if system not in row.systems and source == row.id:
                    per_system[system] = {"status": "n/a"}
                    continue
                found = samples.get(source, {}).get(mode, {}).get(system, [])
                if not found:
                    why = status.get(system, "not run")
                    per_system[system] = {"status": "no value" if why == "measured" else why}
                    continue
                values = [s["value"] for s in found]
                row_loads = [s["load"] for s in found]
                loads += row_loads
                per_system[system] = {"status": "measured", **summary(values),
                                      "load_median": statistics.median(row_loads), "load_max": max(row_loads),
                                      "rounds": found}
            lonja = per_system["lonja"].get("median")
            ratios = {peer: ratio(lonja, per_system[peer].get("median")) for peer in PEERS}
            entry: dict[str, Any] = {
                "id": row.id, "title": row.title, "unit": row.unit, "kind": row.kind, "mode": mode,
                "systems": per_system, "ratios": ratios,
                "load": {"median": statistics.median(loads), "max": max(loads)} if loads else None,
                "goal": row.goal.text if row.goal else "", "result": None, "measured": ""}
            if row.goal and mode == "unpinned":
                entry["result"], entry["measured"] = judge(row, row.goal, per_system)
            out.append(entry)
    return out


def judge(row: Row, goal: Goal, per_system: dict[str, Any]) -> tuple[str, str]:
    """("PASS" | "FAIL" | "n/a", what was compared) for one goal on one row's unpinned figures."""
    lonja = per_system["lonja"]
    if lonja.get("status") != "measured":
        return "n/a", "no lonja value"
    checks: list[tuple[bool, str]] = []
    missing: list[str] = []
    for peer, (op, bar) in goal.vs.items():
        if per_system[peer].get("status") != "measured":
            missing.append(SHORT[peer])
            continue
        value = lonja["median"] / per_system[peer]["median"]
        checks.append((_holds(value, op, bar), f"÷{SHORT[peer]} {value:.2f}"))
    if goal.own:
        op, bar = goal.own
        which = ("min" if op == ">=" else "max") if goal.every_round else "median"
        value = lonja[which]
        checks.append((_holds(value, op, bar), f"{'worst round' if goal.every_round else 'median'} {value:.2f}"))
    if goal.keep is not None:
        peers = [per_system[p]["median"] for p in PEERS if per_system[p].get("status") == "measured"]
        if peers:
            best = max(peers) if row.higher_is_better else min(peers)
            value = lonja["median"] / best
            op = ">=" if row.higher_is_better else "<="
            bar = goal.keep if row.higher_is_better else 1 / goal.keep
            checks.append((_holds(value, op, bar), f"÷best peer {value:.2f}"))
    if not checks:
        return "n/a", "no peer measured"
    result = "PASS" if all(ok for ok, _ in checks) else "FAIL"
    detail = ", ".join(text for _, text in checks) + (f" (no {', '.join(missing)})" if missing else "")
    return result, detail


def _holds(value: float, op: str, bar: float) -> bool:
    return value <= bar if op == "<=" else value >= bar


def number(value: float) -> str:
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(value: dict[str, Any]) -> str:
    status = value.get("status")
    if status == "n/a":
        return "—"
    if status != "measured":
        return str(status)
    if value["n"] == 1:
        return number(value["median"])
    return f"{number(value['median'])} ({number(value['min'])}–{number(value['max'])})"


def header(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    counts = report["counts"]
    missing = [f"{LABELS[s]}: {why}" for s, why in report["systems"].items() if why != "measured"]
    return [f"lonja {m['lonja']} against Pyro5 {m['pyro5']} (serpent {m['serpent']}, msgpack {m['msgpack']}) and "
            f"RPyC {m['rpyc']}: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}; "
            f"{report['seconds']:.0f} s" + (" — QUICK run: tiny counts, not for conclusions" if report["quick"]
                                              else ""),
            "",
            f"{counts['rounds']} round(s); each round every system gets fresh servers and fresh client processes, "
            f"in a rotated order ({'; '.join(' → '.join(o) for o in report['orders'])}). "
            f"Single-client rows: {counts['calls']:,} small calls, {counts['oneway']:,} oneway calls, "
            f"{counts['at_once']:,} calls at once per round and mode; unpinned = as users run them, pinned = "
            "server on CPU 1, client on CPU 0. Cells: median over the rounds (min–max). Ratios: lonja ÷ peer. "
            "Load: the 1-minute load average at each measurement (median/max). Goals are judged unpinned."
            + (f" Missing: {'; '.join(missing)}." if missing else "")]


def table(report: dict[str, Any]) -> str:
    lines = [*header(report), "",
             "| row | warm/cold | pinning | unit | " + " | ".join(LABELS[s] for s in SYSTEMS) + " | "
             + " | ".join(f"lonja ÷ {SHORT[p]}" for p in PEERS) + " | load | goal | result |",
             "|" + "---|" * (4 + len(SYSTEMS) + len(PEERS) + 3)]
    for r in report["rows"]:
        ratios = [("" if r["ratios"][p] is None else f"{r['ratios'][p]:.2f}") for p in PEERS]
        load = f"{r['load']['median']:.2f}/{r['load']['max']:.2f}" if r["load"] else ""
        result = f"**{r['result']}** ({r['measured']})" if r["result"] else ""
        kind = "warm" if r["kind"] == "warm" else "cold" if r["kind"] == "cold" else "processes"
        lines.append(f"| {r['title']} | {kind} | {r['mode']} | {r['unit']} | "
                     + " | ".join(cell(r["systems"][s]) for s in SYSTEMS) + " | " + " | ".join(ratios)
                     + f" | {load} | {r['goal'] if r['mode'] == 'unpinned' else ''} | {result} |")
    judged = [r for r in report["rows"] if r["result"] in ("PASS", "FAIL")]
    passed = sum(r["result"] == "PASS" for r in judged)
    lines += ["", f"Goals: {passed} of {len(judged)} pass (unpinned)."]
    for e in report.get("errors", []):
        lines.append(f"- round {e['round'] + 1}, {e['system']}, {e['what']}: failed: {e['error'][:300]}")
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The judged goals: row id, goal, result, what was compared."""
    return [{"row": r["id"], "goal": r["goal"], "result": r["result"], "measured": r["measured"]}
            for r in report["rows"] if r["result"] is not None and BY_ID[r["id"]].goal]


def write_json(report: dict[str, Any], path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
