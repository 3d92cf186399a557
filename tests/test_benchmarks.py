"""`python -m benchmarks --quick` produces every row and target and leaves no process behind.

No timing claims here: only that every value is there and is a number.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from benchmarks.report import TARGETS
from benchmarks.servers import LONJA_SERVERTYPES
from harness import ROOT, clean_env

ROW_KEYS = {"id", "section", "name", "unit", "lonja", "plain", "ratio", "ratio_of"}
SUMMARY_KEYS = {"median", "min", "max", "reps"}


def expected_rows() -> dict[str, set[str]]:
    """Row id -> the sides it must have (lonja, plain) besides its ratio."""
    both = {"lonja", "plain"}
    rows: dict[str, set[str]] = {}
    for key in ("serpent", "msgpack", "defaults"):
        rows[f"latency.median.{key}"] = rows[f"latency.p99.{key}"] = both
    rows["payload.100KB"] = rows["payload.10MB"] = both
    for key in ("issue", "completion", "sync", "completion_per_sync"):
        rows[f"oneway.{key}"] = both
    for method in ("echo", "slow"):
        rows[f"futures.{method}.one_by_one"] = both
        rows[f"futures.{method}.futures"] = rows[f"futures.{method}.aio"] = {"lonja"}
    for key in ("batch100", "one_by_one", "speedup"):
        rows[f"batch.{key}"] = both
    for servertype in LONJA_SERVERTYPES:
        for n in (1, 8, 32):
            rows[f"clients.{servertype}.{n}"] = both
        rows[f"clients.{servertype}.scale8"] = rows[f"clients.{servertype}.scale32"] = both
    for where in ("", "cold."):
        for key in ("name", "uri", "name_vs_uri"):
            rows[f"first_call.{where}{key}"] = both
    return rows


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_benchmark_has_every_row_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "quick.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == []

    rows = {r["id"]: r for r in report["rows"]}
    assert len(rows) == len(report["rows"]), "row ids are unique"
    expected = expected_rows()
    assert set(rows) == set(expected)
    for row_id, sides in expected.items():
        r = rows[row_id]
        assert set(r) >= ROW_KEYS, r
        assert is_number(r["ratio"]) and r["ratio"] > 0 and r["ratio_of"], r
        for side in ("lonja", "plain"):
            if side in sides:
                assert set(r[side]) == SUMMARY_KEYS, r
                assert all(is_number(r[side][k]) for k in SUMMARY_KEYS), r
                assert 0 < r[side]["min"] <= r[side]["median"] <= r[side]["max"], r
            else:
                assert r[side] is None, r

    assert [t["id"] for t in report["targets"]] == [t[0] for t in TARGETS]
    for t in report["targets"]:
        assert is_number(t["measured"]) and isinstance(t["pass"], bool), t
        assert t["row"] in rows, t

    machine = report["machine"]
    assert machine["cpus"] == os.cpu_count()
    assert machine["pyro5"] and machine["python"] and "cpu_model" in machine
    assert report["quick"] is True and is_number(report["seconds"])

    assert "| section | row | unit | lonja | plain Pyro5 | ratio | ratio is |" in result.stdout
    assert "| target | bar | measured | result |" in result.stdout
    assert result.stdout.count("\n| ") >= len(rows) + len(TARGETS)

    # Every process the run started (servers, client processes and their forked children) is gone.
    assert len(report["server_pids"]) == 2 + len(LONJA_SERVERTYPES)
    assert report["client_pids"]
    left = [pid for pid in report["server_pids"] + report["client_pids"] if _alive(pid)]
    assert not left, f"still running: {left}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except FileNotFoundError:
        return False
