"""Starting one system's servers: its name server (or registry) and its echo server, each a fresh process.

- `pyro5` and `pyro5-msgpack`: `python -m Pyro5.nameserver` (memory storage, no broadcast server) and the
  plain Pyro5 echo server of `benchmarks.peers`, registered there as `echo`;
- `rpyc`: RPyC's TCP registry and an `rpyc.ThreadedServer` (`benchmarks.peers`), registered as `ECHO`;
- `lonja`: `lonja ns --storage memory` and `lonja serve echo` (the built-in echo service, lonja's defaults).

Only the `lonja` command is used for lonja: nothing here depends on how lonja works inside.
"""

from __future__ import annotations

import re

from .callers import NAME, Endpoints
from .peers import READY
from .servers import Processes, python

NS_URI = re.compile(r"PYRO:Pyro\.NameServer@(\S+)")
URI = re.compile(r"PYRO:\S+")


def start(system: str, processes: Processes) -> Endpoints:
    """Start `system`'s servers (recorded in `processes`, which stops them) and return where they listen."""
    if system in ("pyro5", "pyro5-msgpack"):
        line = processes.start("Pyro5 name server", python("-m", "Pyro5.nameserver", "-n", "127.0.0.1", "-p", "0",
                                                           "-x"), "PYRO:Pyro.NameServer@", lonja=False)
        ns = _match(NS_URI, line).group(1)
        line = processes.start("Pyro5 echo server", python("-m", "benchmarks.peers", "pyro5", ns, NAME), READY,
                               lonja=False)
        address = _match(URI, line).group(0)
    elif system == "rpyc":
        line = processes.start("RPyC registry", python("-m", "benchmarks.peers", "rpyc-registry"), READY, lonja=False)
        ns = line.split(READY, 1)[1].strip()
        line = processes.start("RPyC echo server", python("-m", "benchmarks.peers", "rpyc", ns.rsplit(":", 1)[1]),
                               READY, lonja=False)
        address = line.split(READY, 1)[1].strip()
    elif system == "lonja":
        line = processes.start("lonja ns", python("-m", "lonja", "ns", "--host", "127.0.0.1", "--port", "0",
                                                  "--storage", "memory"), "PYRO:Pyro.NameServer@")
        ns = _match(NS_URI, line).group(1)
        line = processes.start("lonja serve echo", python("-m", "lonja", "serve", "echo", "--host", "127.0.0.1",
                                                          "--ns", ns), f"PYRO:{NAME}@")
        address = _match(URI, line).group(0)
    else:
        raise ValueError(f"unknown system {system!r}")
    ns_pid, server_pid = processes.pids[-2:]
    return Endpoints(system=system, ns=ns, address=address, ns_pid=ns_pid, server_pid=server_pid)


def _match(pattern: re.Pattern[str], line: str) -> re.Match[str]:
    found = pattern.search(line)
    if found is None:
        raise RuntimeError(f"no address in {line!r}")
    return found
