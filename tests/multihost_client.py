"""A load client for the multi-host tests: threads calling one service in a loop, one JSON line per call.

Run in a host of the harness (tests/netns.py): `python multihost_client.py --ns HOST:PORT [--threads N]
[--method slow] [--seconds S] [--timeout T]`. Each thread has its own proxy and calls `METHOD(S)` one
call after the other until the process is stopped; every call prints
`{"thread", "start", "end", "ok", "error", "instance"}` (times from time.time(), which every namespace
shares; `instance` is the URI the call went to last, `error` the lonja error's class name). "ready" is
printed once every thread has made its first call.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from lonja.clients import LonjaError, connect, uri

_print_lock = threading.Lock()


def emit(record: dict) -> None:
    """Print one record as a JSON line, whole."""
    line = json.dumps(record)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def caller(index: int, args: argparse.Namespace, started: threading.Barrier) -> None:
    """Call the service in a loop, reporting every call."""
    proxy = connect(args.name, ns=args.ns, timeout=args.timeout)
    first = True
    while True:
        start = time.time()
        error = ""
        try:
            getattr(proxy, args.method)(args.seconds)
        except LonjaError as exc:
            error = type(exc).__name__
        try:
            instance = uri(proxy)
        except LonjaError:
            instance = ""
        emit({"thread": index, "start": start, "end": time.time(), "ok": not error, "error": error,
              "instance": instance})
        if first:
            first = False
            started.wait()
        if error:
            time.sleep(0.01)


def main() -> None:
    """Start the callers and run until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", required=True)
    parser.add_argument("--name", default="echo")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--method", default="slow")
    parser.add_argument("--seconds", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    started = threading.Barrier(args.threads + 1)
    for index in range(args.threads):
        threading.Thread(target=caller, args=(index, args, started), daemon=True).start()
    started.wait()
    emit({"ready": True})
    threading.Event().wait()


if __name__ == "__main__":
    main()
