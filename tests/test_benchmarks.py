"""`python -m benchmarks --quick` produces every row for every system and mode, judges every goal, and leaves no
process behind; a system that is not installed (RPyC is optional) is shown as such, not a crash; `python -m
benchmarks.placement` times every system in every placement, and leaves no process behind either;
`python -m benchmarks.syscalls` counts a call's system calls with strace and with perf.

No timing claims here: only that every value is there and is a number.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks import report
from benchmarks.callers import SYSTEMS, installed
from benchmarks.catalog import ROWS
from harness import ROOT, clean_env

SUMMARY_KEYS = {"status", "median", "min", "max", "n", "load_median", "load_max", "rounds"}


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_benchmark_has_every_row_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "quick.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=85)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(out.read_text())
    assert run["errors"] == []
    assert run["quick"] is True and is_number(run["seconds"]) and run["counts"]["rounds"] == 1
    assert run["systems"] == {s: "measured" if installed(s) else "not installed" for s in SYSTEMS}

    rows = {(r["id"], r["mode"]): r for r in run["rows"]}
    assert len(rows) == len(run["rows"]), "one line per row and mode"
    assert set(rows) == {(row.id, mode) for row in ROWS for mode in row.modes}
    for row in ROWS:
        for mode in row.modes:
            r = rows[(row.id, mode)]
            shown = SYSTEMS if row.peers_from else row.systems  # a lonja-only row may show another's peers
            for system in SYSTEMS:
                value = r["systems"][system]
                if system not in shown:
                    assert value == {"status": "n/a"}, r
                elif not installed(system):
                    assert value == {"status": "not installed"}, r
                else:
                    assert set(value) == SUMMARY_KEYS and value["status"] == "measured", (r["id"], mode, system)
                    assert all(is_number(value[k]) for k in ("median", "min", "max", "load_median", "load_max"))
                    assert 0 < value["min"] <= value["median"] <= value["max"], r
            for peer, ratio in r["ratios"].items():
                if peer in shown and installed(peer) and "lonja" in row.systems:
                    assert is_number(ratio) and ratio > 0, (r["id"], peer)
            assert r["load"] and is_number(r["load"]["median"]), r
            if row.goal and mode == "unpinned":
                compared = set(row.goal.vs) | (set(SYSTEMS) - {"lonja"} if row.goal.keep is not None else set())
                judged = row.goal.own is not None or any(installed(peer) for peer in compared)
                assert r["result"] in (("PASS", "FAIL") if judged else ("n/a",)) and r["measured"], r
            else:
                assert r["result"] is None, r
    assert {g["row"] for g in run["goals"]} == {row.id for row in ROWS if row.goal}

    assert run["machine"]["cpus"] == os.cpu_count() and run["machine"]["pyro5"]
    assert "| row | warm/cold | pinning | unit | plain Pyro5 (serpent) |" in result.stdout
    assert result.stdout.count("\n| ") >= len(rows) + 1

    # Every process the run started (servers, client processes and what they forked or ran) is gone.
    assert run["server_pids"] and run["client_pids"]
    left = [pid for pid in run["server_pids"] + run["client_pids"] if _alive(pid)]
    assert not left, f"still running: {left}"


def test_a_system_not_installed_is_shown_as_such(tmp_path):
    status = {"pyro5": "measured", "pyro5-msgpack": "measured", "rpyc": "not installed", "lonja": "measured"}
    samples = {"call.median": {"unpinned": {s: [{"round": 0, "value": 300.0, "load": 1.0}]
                                            for s in ("pyro5", "pyro5-msgpack", "lonja")}}}
    rows = report.aggregate(samples, status)
    line = next(r for r in rows if r["id"] == "call.median" and r["mode"] == "unpinned")
    assert line["systems"]["rpyc"] == {"status": "not installed"}
    assert line["ratios"]["rpyc"] is None and line["ratios"]["pyro5"] == 1.0
    assert line["result"] == "FAIL" and "no RPyC" in line["measured"]
    run = {"machine": report.machine(), "quick": True, "seconds": 1.0, "counts": {"rounds": 1, "calls": 1,
           "oneway": 1, "at_once": 1}, "systems": status, "orders": [["lonja"]], "rows": rows, "errors": []}
    assert "| not installed |" in report.table(run)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except FileNotFoundError:
        return False


def test_placement_times_every_system_in_every_placement_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "placement.json"
    systems = ["pyro5-msgpack", "lonja"]
    result = subprocess.run([sys.executable, "-m", "benchmarks.placement", "--rounds", "1", "--calls", "50",
                             "--systems", ",".join(systems), "--out", str(out)], cwd=ROOT, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(out.read_text())
    assert set(run["figures"]) == {"one CPU", "two CPUs", "unpinned"}
    for placement, by_system in run["figures"].items():
        assert set(by_system) == set(systems), placement
        for system, f in by_system.items():
            assert f["median_us"] > 0 and f["client_cpu_us"] > 0 and f["server_cpu_us"] >= 0, (placement, system)
            # a server sleeps until each request comes, and a client until each answer comes, unless they
            # poll for them (lonja's client.busy_wait and limits.busy_wait)
            sleeps = 0 if system == "lonja" else 0.9
            assert f["client_switches"] >= sleeps and f["server_switches"] >= sleeps, (placement, system, f)
    assert "| one CPU | lonja |" in result.stdout and "| two CPUs | Pyro5 + msgpack |" in result.stdout
    left = [pid for pid in run["pids"] if _alive(pid)]
    assert run["pids"] and not left, f"still running: {left}"


@pytest.mark.parametrize("tool", ["strace", "perf"])
def test_syscalls_counts_one_send_per_call_on_each_side(tmp_path, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    result = subprocess.run([sys.executable, "-m", "benchmarks.syscalls", "--tool", tool, "--calls", "200",
                             "--systems", "lonja"], cwd=ROOT, env=clean_env(tmp_path), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"## lonja: system calls per echo call (200 calls, counted by {tool})" in result.stdout
    assert "| sendto | 1.00 | 1.00 |" in result.stdout, result.stdout  # a request out, a reply back
