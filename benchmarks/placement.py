"""Where a small call's time goes, by CPU placement: `python -m benchmarks.placement [--rounds N] [--calls N]`.

Standalone (not part of `python -m benchmarks`). The small-call row moves with where the scheduler puts the
client and the server; this script puts them there on purpose. For every system in turn (rotated round by
round, fresh servers each time), a forked client connects by name, warms up, and times `echo("hello world")`
with client and server:

- `one CPU`: both on CPU 0. No call wakes another CPU, so a call costs the two processes' CPU time;
- `two CPUs`: client on CPU 0, server on CPU 1 (the `pinned` rows of `python -m benchmarks`): each call
  wakes the other CPU twice, unless the side that waits polls (lonja's `client.busy_wait` and
  `limits.busy_wait`);
- `unpinned`: where the scheduler puts them (as users run them; on this 2-core VM, mostly two CPUs).

Per system and placement it prints the median µs per call, the CPU µs per call of client and server (from
the kernel's counts of each process), and their context switches per call; ratios are lonja ÷ peer. With
`--out FILE` it also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
from pathlib import Path
from typing import Any

from .callers import LABELS, SYSTEMS, installed
from .measure import in_fresh_child, latencies, rotate
from .rows import SMALL
from .servers import CLIENT_CPU, SERVER_CPU, Processes, clean_environment, pin, remove_workdir

PLACEMENTS = {"one CPU": ({CLIENT_CPU}, {CLIENT_CPU}), "two CPUs": ({CLIENT_CPU}, {SERVER_CPU}),
              "unpinned": (None, None)}
WARMUP = 1000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per system, placement and round")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"which systems (default: {','.join(SYSTEMS)})")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    options = parser.parse_args(argv)
    systems = [s for s in options.systems.split(",") if installed(s)]
    workdir = clean_environment()
    pids: list[int] = []
    try:
        figures = measure(systems, options.rounds, options.calls, pids)
    finally:
        remove_workdir(workdir)
    print(table(figures, systems))
    if options.out:
        Path(options.out).write_text(json.dumps({"rounds": options.rounds, "calls": options.calls,
                                                 "figures": figures, "pids": pids}, indent=1))
    return 0


def measure(systems: list[str], rounds: int, calls: int,
            pids: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """{placement: {system: medians over the rounds}} of each round's median call, CPU and switches; the
    pids of every process started go to `pids`."""
    from . import systems as starting

    seen: dict[str, dict[str, list[dict[str, float]]]] = {p: {s: [] for s in systems} for p in PLACEMENTS}
    for round_ in range(rounds):
        for system in rotate(systems, round_):
            processes = Processes()
            try:
                ep = starting.start(system, processes)
                for placement in rotate(list(PLACEMENTS), round_):
                    client_cpus, server_cpus = PLACEMENTS[placement]
                    seen[placement][system].append(in_fresh_child(
                        lambda: _calls(system, ep, client_cpus, server_cpus, calls),
                        f"{system} small calls on {placement}", timeout=120, pids=pids))
                    pin(ep.server_pid, None)
            finally:
                processes.stop()
                pids += processes.all_pids
    return {placement: {system: {key: statistics.median(r[key] for r in results) for key in results[0]}
                        for system, results in by_system.items() if results}
            for placement, by_system in seen.items()}


def _calls(system: str, ep: Any, client_cpus: set[int] | None, server_cpus: set[int] | None,
           calls: int) -> dict[str, float]:
    """In a forked child: connect by name, warm up, place both processes, time `calls` echo calls."""
    from .callers import caller

    the_caller = caller(system)
    the_caller.load()
    proxy = the_caller.by_name(ep)
    echo = the_caller.method(proxy, "echo")
    pin(ep.server_pid, server_cpus)
    pin(os.getpid(), client_cpus)
    for _ in range(WARMUP):
        echo(SMALL)
    server_before, client_before = _process_counts(ep.server_pid), _own_counts()
    timings = latencies(lambda: echo(SMALL), calls)
    server_after, client_after = _process_counts(ep.server_pid), _own_counts()
    the_caller.close(proxy)
    return {"median_us": statistics.median(timings) * 1e6,
            "client_cpu_us": (client_after[0] - client_before[0]) / calls * 1e6,
            "server_cpu_us": (server_after[0] - server_before[0]) / calls * 1e6,
            "client_switches": (client_after[1] - client_before[1]) / calls,
            "server_switches": (server_after[1] - server_before[1]) / calls}


def _own_counts() -> tuple[float, float]:
    """CPU seconds and context switches so far of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_nvcsw + usage.ru_nivcsw


def _process_counts(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and context switches so far of process `pid`, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        switches += sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches:" in line)
    return cpu, switches


def table(figures: dict[str, dict[str, dict[str, float]]], systems: list[str]) -> str:
    """The figures as a Markdown table: one line per placement and system."""
    peers = [s for s in systems if s != "lonja"]
    lines = ["| placement | system | median µs | client CPU µs | server CPU µs | switches client/server | "
             "lonja ÷ this |", "|---|---|---|---|---|---|---|"]
    for placement, by_system in figures.items():
        lonja = by_system.get("lonja", {}).get("median_us")
        for system in [s for s in systems if s in by_system]:
            f = by_system[system]
            ratio = f"{lonja / f['median_us']:.2f}" if lonja and system in peers else ""
            lines.append(f"| {placement} | {LABELS[system]} | {f['median_us']:.1f} | {f['client_cpu_us']:.1f} | "
                         f"{f['server_cpu_us']:.1f} | {f['client_switches']:.2f} / {f['server_switches']:.2f} | "
                         f"{ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
