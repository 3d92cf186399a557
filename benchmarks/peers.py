"""The peers' servers: a plain Pyro5 echo server, an RPyC echo server and RPyC's TCP registry.

    python -m benchmarks.peers pyro5 [NS_HOST:PORT NAME]    # Pyro5's defaults: thread server, serpent
    python -m benchmarks.peers rpyc REGISTRY_PORT            # rpyc.ThreadedServer, registered as ECHO
    python -m benchmarks.peers rpyc-registry                 # rpyc's TCPRegistryServer

Each listens on a free 127.0.0.1 port and prints "serving at ADDRESS" when it serves. The services do the
same work per call as lonja's built-in `echo` service: `echo` returns its argument, `notify` (oneway)
counts under a lock, `notified` reads the count, `slow` sleeps. Nothing here imports lonja: this is what a
plain Pyro5 or RPyC user would run.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from .callers import RPYC_NAME

READY = "serving at"


class Counter:
    """The `notify` counter, shared by every connection (RPyC makes one service object per connection)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.last: Any = None

    def add(self, value: Any) -> None:
        with self.lock:
            self.count += 1
            self.last = value

    def read(self) -> int:
        with self.lock:
            return self.count


def pyro5_server(argv: list[str]) -> None:
    from Pyro5.api import Daemon, behavior, expose, locate_ns, oneway

    counter = Counter()

    @expose
    @behavior(instance_mode="single")
    class Echo:
        def echo(self, value: Any = None) -> Any:
            return value

        def slow(self, seconds: float = 1.0, value: Any = None) -> Any:
            time.sleep(seconds)
            return seconds if value is None else value

        @oneway
        def notify(self, value: Any = None) -> None:
            counter.add(value)

        @property
        def notified(self) -> int:
            return counter.read()

    daemon = Daemon(host="127.0.0.1")
    uri = daemon.register(Echo, "echo")
    ns = None
    if len(argv) == 2:
        host, port = argv[0].rsplit(":", 1)
        ns = locate_ns(host, int(port))
        ns.register(argv[1], uri)
    print(f"{READY} {uri}", flush=True)
    try:
        daemon.requestLoop()
    finally:
        if ns is not None:
            try:
                ns._pyroTimeout = 2
                ns.remove(argv[1])
            except Exception:
                pass
        daemon.close()


def rpyc_server(argv: list[str]) -> None:
    import rpyc
    from rpyc.utils.registry import TCPRegistryClient
    from rpyc.utils.server import ThreadedServer

    counter = Counter()

    class EchoService(rpyc.Service):
        def exposed_echo(self, value: Any = None) -> Any:
            return value

        def exposed_slow(self, seconds: float = 1.0, value: Any = None) -> Any:
            time.sleep(seconds)
            return seconds if value is None else value

        def exposed_notify(self, value: Any = None) -> None:  # called with rpyc.async_ by the clients
            counter.add(value)

        @property
        def exposed_notified(self) -> int:
            return counter.read()

    registrar = TCPRegistryClient("127.0.0.1", int(argv[0]))
    server = ThreadedServer(EchoService, hostname="127.0.0.1", port=0, registrar=registrar, auto_register=True,
                            protocol_config={"allow_public_attrs": False})
    # ThreadedServer registers itself from its start(); the name is there once the first registration ran.
    threading.Thread(target=server.start, daemon=True, name="rpyc server").start()
    deadline = time.monotonic() + 10
    while not registrar.discover(RPYC_NAME):
        if time.monotonic() > deadline:
            raise SystemExit("rpyc: not registered within 10 s")
        time.sleep(0.02)
    print(f"{READY} 127.0.0.1:{server.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.close()


def rpyc_registry(argv: list[str]) -> None:
    from rpyc.utils.registry import TCPRegistryServer

    registry = TCPRegistryServer(host="127.0.0.1", port=0, allow_listing=True)
    print(f"{READY} 127.0.0.1:{registry.port}", flush=True)
    try:
        registry.start()
    finally:
        registry.close()


def main(argv: list[str]) -> None:
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    kinds = {"pyro5": pyro5_server, "rpyc": rpyc_server, "rpyc-registry": rpyc_registry}
    if not argv or argv[0] not in kinds:
        raise SystemExit(f"usage: python -m benchmarks.peers {'|'.join(kinds)} ...")
    kinds[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
