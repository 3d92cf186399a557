"""System calls per call, client and server side, for lonja and plain Pyro5: `strace -f -c` on 2,000 echo calls.

    python -m benchmarks.syscalls [--calls N] [--systems lonja,pyro5] [--tool strace|perf]

For each system: fresh servers (`benchmarks.systems`), a client process that connects by name and warms up,
then `strace -c -f -p PID` attaches to the client and to the echo server (every thread of each), the client
makes N `echo("hello world")` calls, and the straces are stopped (SIGINT: they detach and print their
counts). Prints, per system call, how many per echo call on each side. Idle threads' calls during the
window (timeouts of a select loop, background pings) are counted too: they are part of what the process
does while serving. Needs `strace` (`apt-get install strace`) and permission to ptrace one's own processes.

strace stops the process at every system call, and those stops are context switches: lonja's client and
host then stop polling for their messages (`client.busy_wait`, `limits.busy_wait`) and sleep, as they do
on a busy CPU. `--tool perf` counts with the kernel's tracepoints instead (`perf stat`), which stop
nothing: the counts of a client that polls (a `recvfrom` and a `sched_yield` per try). It counts every
system call and, one by one, those in PERF_CALLS (the rest are shown together).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from .callers import Endpoints, caller
from .servers import Processes, child_env, clean_environment, python, remove_workdir, stop_pids

ATTACH_TIMEOUT = 10.0
WARMUP = 200


def client(system: str, endpoints: str, calls: int) -> None:
    """The client process: connect, warm up, say "ready", wait for "go", call, say "done", wait for "exit"."""
    the_caller = caller(system)
    proxy = the_caller.by_name(Endpoints(**json.loads(endpoints)))
    echo = the_caller.method(proxy, "echo")
    for _ in range(WARMUP):
        echo("hello world")
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(calls):
        echo("hello world")
    print("done", flush=True)
    sys.stdin.readline()
    the_caller.close(proxy)


PERF_CALLS = ["recvfrom", "sendto", "sched_yield", "getrusage", "poll", "select", "epoll_wait", "epoll_ctl",
              "futex", "ioctl", "setsockopt", "getpeername", "getrandom", "clock_nanosleep", "read", "write"]
PERF_PREFIX = "syscalls:sys_enter_"
PERF_TOTAL = "raw_syscalls:sys_enter"  # (one event per system call: all of them at once takes perf seconds)


def parse_strace(path: Path) -> dict[str, int]:
    """{syscall: calls} from `strace -c` output."""
    counts: dict[str, int] = {}
    started = False
    for line in path.read_text().splitlines():
        if line.startswith("------"):
            started = True
            continue
        tokens = line.split()
        if not started or len(tokens) < 5 or tokens[-1] == "total":
            continue
        counts[tokens[-1]] = counts.get(tokens[-1], 0) + int(tokens[3])
    return counts


def parse_perf(path: Path) -> dict[str, int]:
    """{syscall: calls} from `perf stat -x,` output: PERF_CALLS that counted any, and "others"."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if len(fields) < 3 or not fields[0].isdigit():  # a comment, or "<not counted>" (none made)
            continue
        if fields[2] == PERF_TOTAL:
            total = int(fields[0])
        elif fields[2].startswith(PERF_PREFIX) and int(fields[0]):
            counts[fields[2][len(PERF_PREFIX):]] = int(fields[0])
    if total > sum(counts.values()):
        counts["others"] = total - sum(counts.values())
    return counts


class Tool(NamedTuple):
    command: Callable[[int, Path], list[str]]  # (pid, output file) -> the counting command
    parse: Callable[[Path], dict[str, int]]     # its output file -> {syscall: calls}
    package: str                                # the Debian package that has it
    says_attached: bool                         # prints "Process N attached" on stderr once attached


TOOLS = {
    "strace": Tool(lambda pid, out: ["strace", "-f", "-c", "-p", str(pid), "-o", str(out)], parse_strace,
                   "strace", True),
    "perf": Tool(lambda pid, out: ["perf", "stat", "-x", ",", "-e", ",".join([PERF_TOTAL] + [
                 PERF_PREFIX + name for name in PERF_CALLS]), "-p", str(pid), "-o", str(out)], parse_perf,
                 "linux-perf", False),
}


def trace(system: str, calls: int, folder: Path, tool: str = "strace") -> dict[str, dict[str, int]]:
    """{"client": {syscall: calls}, "server": {...}} during `calls` echo calls of `system`."""
    processes = Processes()
    tracers: list[subprocess.Popen] = []
    the_client: subprocess.Popen | None = None
    try:
        from . import systems
        ep = systems.start(system, processes)
        the_client = subprocess.Popen(python("-m", "benchmarks.syscalls", "--client", system, json.dumps(asdict(ep)),
                                             str(calls)), env=child_env(), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert the_client.stdin is not None and the_client.stdout is not None
        if the_client.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{system}: the client did not get ready")
        sides = {"client": the_client.pid, "server": ep.server_pid}
        for side, pid in sides.items():
            tracers.append(subprocess.Popen(TOOLS[tool].command(pid, folder / f"{side}.txt"),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True, start_new_session=True))
        for tracer in tracers if TOOLS[tool].says_attached else []:  # for the first thread
            assert tracer.stderr is not None
            line = tracer.stderr.readline()
            if "attached" not in line:
                raise RuntimeError(f"strace could not attach: {line.strip()} (is ptrace allowed?)")
        time.sleep(0.5)  # every thread attached
        for tracer in tracers:
            if tracer.poll() is not None:
                raise RuntimeError(f"{tool} failed: {tracer.stderr.read().strip() if tracer.stderr else ''}")
        the_client.stdin.write("go\n")
        the_client.stdin.flush()
        if the_client.stdout.readline().strip() != "done":
            raise RuntimeError(f"{system}: the client failed while calling")
        for tracer in tracers:
            tracer.send_signal(signal.SIGINT)
        for tracer in tracers:
            tracer.wait(ATTACH_TIMEOUT)
        the_client.stdin.write("exit\n")
        the_client.stdin.flush()
        the_client.wait(ATTACH_TIMEOUT)
        return {side: TOOLS[tool].parse(folder / f"{side}.txt") for side in sides}
    finally:
        stop_pids(tracers, grace=5)
        if the_client is not None:
            stop_pids([the_client], grace=5)
        processes.stop()


def table(system: str, counts: dict[str, dict[str, int]], calls: int, tool: str = "strace") -> str:
    names = sorted(set(counts["client"]) | set(counts["server"]),
                   key=lambda n: -(counts["client"].get(n, 0) + counts["server"].get(n, 0)))
    lines = [f"## {system}: system calls per echo call ({calls:,} calls, counted by {tool})", "",
             "| syscall | client | server |", "|---|---|---|"]
    rare = {"client": 0, "server": 0}
    for name in names:
        per_call = {side: counts[side].get(name, 0) / calls for side in rare}
        if max(per_call.values()) < 0.005:
            for side in rare:
                rare[side] += counts[side].get(name, 0)
            continue
        lines.append(f"| {name} | {per_call['client']:.2f} | {per_call['server']:.2f} |")
    if any(rare.values()):
        lines.append(f"| (others, each < 0.005) | {rare['client'] / calls:.3f} | {rare['server'] / calls:.3f} |")
    lines.append(f"| **total** | **{sum(counts['client'].values()) / calls:.2f}** | "
                 f"**{sum(counts['server'].values()) / calls:.2f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.syscalls", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--systems", default="lonja,pyro5")
    parser.add_argument("--tool", choices=sorted(TOOLS), default="strace",
                        help="strace (default) or perf (counts without stopping the process)")
    parser.add_argument("--client", nargs=3, metavar=("SYSTEM", "ENDPOINTS", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client(args.client[0], args.client[1], int(args.client[2]))
        return 0
    if shutil.which(args.tool) is None:
        print(f"{args.tool} is not installed: apt-get install {TOOLS[args.tool].package}", file=sys.stderr)
        return 2
    workdir = clean_environment()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(130))
    try:
        for system in args.systems.split(","):
            with tempfile.TemporaryDirectory(prefix="lonja-bench-strace-") as folder:
                counts = trace(system, args.calls, Path(folder), args.tool)
                print(table(system, counts, args.calls, args.tool), end="\n\n", flush=True)
    finally:
        remove_workdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
