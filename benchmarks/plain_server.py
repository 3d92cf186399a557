"""A plain Pyro5 server, Pyro5's defaults (thread server, serpent), with the same methods as lonja's `echo`.

    python benchmarks/plain_server.py [NS_HOST:PORT NAME]

Listens on a free 127.0.0.1 port and prints "plain server at PYRO:..." when it serves. Given a name
server and a name, it also registers itself there the plain Pyro5 way (so `PYRONAME:` works for it).
It imports nothing of lonja: it is what a plain Pyro5 user would run.
"""

import os
import signal
import sys
import threading
import time

from Pyro5.api import Daemon, behavior, expose, locate_ns, oneway


class EchoError(Exception):
    """The error `fail` raises."""


@expose
@behavior(instance_mode="single")
class Echo:
    """The methods of lonja's built-in echo service, written for plain Pyro5."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notified = 0
        self._last = None

    def echo(self, value=None):
        return value

    def slow(self, seconds=1.0, value=None):
        time.sleep(seconds)
        return seconds if value is None else value

    def fail(self, message="failed on purpose"):
        raise EchoError(message)

    @oneway
    def notify(self, value=None):
        with self._lock:
            self._notified += 1
            self._last = value

    @property
    def notified(self):
        with self._lock:
            return self._notified

    def last(self):
        with self._lock:
            return self._last

    def count(self, count=3, delay=0.0):
        for number in range(count):
            if delay:
                time.sleep(delay)
            yield number

    def wait(self, seconds=0.1, value=None):  # lonja's is `async def`; Pyro5 serves plain functions only
        time.sleep(seconds)
        return seconds if value is None else value

    def pid(self):
        return os.getpid()


def main() -> None:
    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    daemon = Daemon(host="127.0.0.1")
    uri = daemon.register(Echo, "echo")
    ns = None
    if len(sys.argv) == 3:
        host, port = sys.argv[1].rsplit(":", 1)
        ns = locate_ns(host, int(port))
        ns.register(sys.argv[2], uri)
    print(f"plain server at {uri}", flush=True)
    try:
        daemon.requestLoop()
    finally:
        if ns is not None:
            try:
                ns._pyroTimeout = 2
                ns.remove(sys.argv[2])
            except Exception:
                pass
        daemon.close()


if __name__ == "__main__":
    main()
