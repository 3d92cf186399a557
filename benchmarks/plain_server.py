"""A plain Pyro5 server with Pyro5's defaults (thread server), hosting the same echo methods as lonja's."""

import sys
import threading
import time

import Pyro5.api


@Pyro5.api.expose
@Pyro5.api.behavior(instance_mode="single")
class Echo:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notified = 0

    def echo(self, value=None):
        return value

    def slow(self, seconds=1.0, value=None):
        time.sleep(seconds)
        return seconds if value is None else value

    @Pyro5.api.oneway
    def notify(self, value=None) -> None:
        with self._lock:
            self._notified += 1

    @property
    def notified(self) -> int:
        with self._lock:
            return self._notified


def main() -> None:
    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=int(sys.argv[1]))
    daemon.register(Echo, "echo")
    print("ready", flush=True)
    daemon.requestLoop()


if __name__ == "__main__":
    main()
