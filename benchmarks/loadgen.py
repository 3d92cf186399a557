"""Client processes for the multi-client rows: N processes call `echo` in a loop for the same time window.

    python -m benchmarks.loadgen SYSTEM ENDPOINTS_JSON PROCESSES SECONDS

This process imports the system's client library once and then forks PROCESSES children (none of them pays
for the imports, and no threads exist yet when they fork). Each child connects by name on its own
(`benchmarks.callers`), warms up, and reports ready; when all are ready, every child is given the same
start time and counts the calls it completes in SECONDS. Prints one JSON line:
{"calls": total, "seconds": SECONDS, "processes": N, "per_process": [...], "pids": [...]}.
On SIGTERM, or if anything fails, the children are killed by pid.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import sys
import time
import traceback

from .callers import Caller, Endpoints, caller

WARMUP_CALLS = 20
READY_TIMEOUT = 60.0
PAYLOAD = "hello world"


def child(the_caller: Caller, ep: Endpoints, seconds: float, report: int, go: int) -> None:
    """In a forked child: connect, warm up, say ready, wait for the start time, count calls; never returns."""
    code = 0
    try:
        proxy = the_caller.by_name(ep)
        echo = the_caller.method(proxy, "echo")
        for _ in range(WARMUP_CALLS):
            echo(PAYLOAD)
        os.write(report, b"R")
        readable, _, _ = select.select([go], [], [], READY_TIMEOUT)
        data = os.read(go, 8) if readable else b""
        if len(data) < 8:
            os._exit(3)  # the parent gave up on us
        start = struct.unpack("d", data)[0]
        while time.monotonic() < start:
            pass
        end = start + seconds
        count = 0
        while time.monotonic() < end:
            echo(PAYLOAD)
            count += 1
        os.write(report, f"{count}\n".encode())
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    the_caller = caller(argv[0])
    ep = Endpoints(**json.loads(argv[1]))
    processes, seconds = int(argv[2]), float(argv[3])
    the_caller.load()  # imported once, before forking
    pids: list[int] = []       # children not yet reaped
    all_pids: list[int] = []   # every child, for the report

    def stop(signum, frame):
        raise SystemExit(2)

    signal.signal(signal.SIGTERM, stop)
    reports, gos = [], []
    try:
        for _ in range(processes):
            report_r, report_w = os.pipe()
            go_r, go_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                for fd in [report_r, go_w, *reports, *gos]:  # only our own ends stay open
                    os.close(fd)
                child(the_caller, ep, seconds, report_w, go_r)
            os.close(report_w)
            os.close(go_r)
            pids.append(pid)
            all_pids.append(pid)
            reports.append(report_r)
            gos.append(go_w)
        # Everyone ready: every child sent "R" (a child that failed closes its pipe instead).
        waiting = set(reports)
        deadline = time.monotonic() + READY_TIMEOUT
        while waiting:
            readable, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                raise RuntimeError(f"{len(waiting)} of {processes} client processes not ready in {READY_TIMEOUT:.0f} s")
            for fd in readable:
                if os.read(fd, 1) != b"R":
                    raise RuntimeError("a client process failed before it was ready (see its traceback above)")
                waiting.discard(fd)
        start = time.monotonic() + 0.05
        for fd in gos:
            os.write(fd, struct.pack("d", start))
        counts = []
        for fd in reports:
            data = b""
            while not data.endswith(b"\n"):
                readable, _, _ = select.select([fd], [], [], seconds + READY_TIMEOUT)
                chunk = os.read(fd, 64) if readable else b""
                if not chunk:
                    raise RuntimeError("a client process failed while calling (see its traceback above)")
                data += chunk
            counts.append(int(data))
        for pid in list(pids):
            _, status = os.waitpid(pid, 0)
            pids.remove(pid)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"client process {pid} exited with {os.waitstatus_to_exitcode(status)}")
        print(json.dumps({"calls": sum(counts), "seconds": seconds, "processes": processes,
                          "per_process": counts, "pids": all_pids}), flush=True)
        return 0
    except BaseException as exc:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if not isinstance(exc, SystemExit):
            print(f"loadgen: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
