"""First calls made by brand-new processes: nothing resolved, cached or connected yet.

    python -m benchmarks.coldcall NS TRIES KIND=TARGET...

KIND is lonja-... (TARGET goes to `connect(TARGET, ns=NS)`) or plain-... (TARGET goes to
`Pyro5.api.Proxy(TARGET)`). This process imports Pyro5 and lonja's client once, then for every try and
every KIND (the order rotating from try to try) forks a child that times making the proxy plus its first
`echo(1)` call, and reports the seconds. Prints one JSON line: {KIND: [seconds, ...], ..., "pids": [...]}.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import time
import traceback

CHILD_TIMEOUT = 30.0


def first_call(kind: str, target: str, ns: str) -> float:
    if kind.startswith("plain"):
        import Pyro5.api
        start = time.perf_counter()
        proxy = Pyro5.api.Proxy(target)
        proxy.echo(1)
        elapsed = time.perf_counter() - start
        proxy._pyroRelease()
        return elapsed
    from lonja.clients import close, connect
    start = time.perf_counter()
    proxy = connect(target, ns=ns)
    proxy.echo(1)
    elapsed = time.perf_counter() - start
    close(proxy)
    return elapsed


def one(kind: str, target: str, ns: str, pids: list[int]) -> float:
    """Fork a child that makes one first call; return its time."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            os.write(write, struct.pack("d", first_call(kind, target, ns)))
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    pids.append(pid)
    try:
        signal.alarm(int(CHILD_TIMEOUT))
        data = os.read(read, 8)
        _, status = os.waitpid(pid, 0)
        signal.alarm(0)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read)
    if len(data) < 8 or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"first call of {kind} to {target} failed (see the traceback above)")
    return struct.unpack("d", data)[0]


def main(argv: list[str]) -> int:
    ns, tries = argv[0], int(argv[1])
    kinds = [arg.split("=", 1) for arg in argv[2:]]
    import Pyro5.api  # noqa: F401  (imported once, before forking)

    import lonja.clients  # noqa: F401

    def timeout(signum, frame):
        raise TimeoutError(f"a first call took over {CHILD_TIMEOUT:.0f} s")

    signal.signal(signal.SIGALRM, timeout)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(2))
    times: dict[str, list[float]] = {kind: [] for kind, _ in kinds}
    pids: list[int] = []
    try:
        for attempt in range(tries):
            shift = attempt % len(kinds)
            for kind, target in kinds[shift:] + kinds[:shift]:
                times[kind].append(one(kind, target, ns, pids))
    except Exception as exc:
        print(f"coldcall: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({**times, "pids": pids}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
