"""`python -m benchmarks --quick` produces every row and leaves no server behind (no timing claims here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, clean_env

SECTIONS = {"latency", "payload", "oneway", "futures", "batch", "clients", "first call"}


def test_quick_benchmark_has_every_row(tmp_path):
    out = tmp_path / "quick.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT,
                            env=clean_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert {r["section"] for r in rows} == SECTIONS
    names = [r["name"] for r in rows]
    for expected in ("small call median, serpent", "small call median, msgpack",
                     "small call median, defaults (lonja msgpack, plain serpent)", "small call p99, msgpack",
                     "bytes echo 100 KB, defaults", "bytes echo 10 MB, defaults", "oneway issue rate",
                     "oneway completion rate", "lonja oneway completions ÷ lonja plain calls",
                     "batch of 100", "first call via connect(name) vs via a direct PYRO: URI"):
        assert expected in names, expected
    for processes in (1, 8, 32):
        assert any(r["section"] == "clients" and r.get("processes") == processes and r["lonja"] for r in rows)
    assert sum(1 for n in names if n.startswith("100 futures") or n.startswith("100 aio")) == 4
    for r in rows:
        assert r["ratio"] is None or r["ratio"] > 0, r
        for side in ("lonja", "plain"):
            if r[side]:
                assert r[side]["median"] > 0 and r[side]["min"] <= r[side]["median"] <= r[side]["max"], r
    assert len(report["targets"]) == 11 and all(t["ratio"] is not None for t in report["targets"])
    assert report["machine"]["cpus"] == os.cpu_count()
    assert "| target | bar | measured | met |" in result.stdout
    for pid in report["server_pids"]:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower(), pid
