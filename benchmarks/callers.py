"""How a client of each system connects and calls: the one place that knows each library's client API.

Four systems, each called the way its users call it:

- `pyro5`: `Pyro5.api.Proxy("PYRONAME:echo@NS")` / `Proxy("PYRO:...")`, Pyro5's defaults (serpent);
- `pyro5-msgpack`: the same proxy with `proxy._pyroSerializer = "msgpack"` (the same plain server);
- `rpyc`: `rpyc.connect_by_service("ECHO", registrar=TCPRegistryClient(...))` / `rpyc.connect(host, port)`;
  a remote method is fetched once (`echo = conn.root.echo`: every `conn.root.x` is a round trip of its
  own), oneway is `rpyc.async_(conn.root.notify)` whose result is never waited for;
- `lonja`: `connect("echo", ns=NS)` / `connect("PYRO:...")`, lonja's defaults (so a client on the host's
  machine calls through its local socket after its first 16 calls); oneway is `.oneway(...)`.

Nothing is imported before it is used, so that the cold rows pay for exactly the imports a user pays for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SYSTEMS = ["pyro5", "pyro5-msgpack", "rpyc", "lonja"]
LABELS = {"pyro5": "plain Pyro5 (serpent)", "pyro5-msgpack": "Pyro5 + msgpack", "rpyc": "RPyC", "lonja": "lonja"}
NAME = "echo"            # the service's name in its system's name server
RPYC_NAME = "ECHO"       # RPyC's registry upper-cases names


@dataclass(frozen=True)
class Endpoints:
    """Where one system's servers listen: its name server (or registry) and its echo server."""

    system: str
    ns: str            # HOST:PORT of the name server / registry
    address: str       # the echo server's direct address: a PYRO: URI, or HOST:PORT for RPyC
    ns_pid: int = 0
    server_pid: int = 0

    @property
    def pids(self) -> list[int]:
        return [pid for pid in (self.ns_pid, self.server_pid) if pid]


def installed(system: str) -> bool:
    """Whether the system's client library is importable (RPyC is an optional benchmark dependency)."""
    return system != "rpyc" or importlib.util.find_spec("rpyc") is not None


class Caller:
    """A system's client: connecting by name or by address, calling, oneway calls, closing."""

    system = ""

    def load(self) -> None:
        """Import the client library (once, e.g. before forking)."""

    def by_name(self, ep: Endpoints) -> Any:
        raise NotImplementedError

    def by_address(self, ep: Endpoints) -> Any:
        raise NotImplementedError

    def method(self, proxy: Any, name: str) -> Callable[..., Any]:
        """The remote method `name`, looked up once, ready to be called many times."""
        return getattr(proxy, name)

    def by_name_with(self, ep: Endpoints, settings: dict[str, Any]) -> Any:
        """A proxy by name under these lonja settings (e.g. `client.local_socket` off); peers have none."""
        return self.by_name(ep)

    def oneway(self, proxy: Any) -> Callable[[Any], Any]:
        """`notify` called oneway: returns once the request is sent."""
        raise NotImplementedError

    def notified(self, proxy: Any) -> int:
        """How many `notify` calls the server has completed."""
        return proxy.notified

    def batch(self, proxy: Any) -> Callable[[int], list[Any]] | None:
        """A function sending `n` echo calls in one batch and returning their results; None if unsupported."""
        return None

    def close(self, proxy: Any) -> None:
        raise NotImplementedError

    def startup_code(self, ep: Endpoints, call: bool) -> str:
        """Python source for `python -c`: the imports a user needs, and (`call`) a first call by name."""
        raise NotImplementedError


class Pyro5Caller(Caller):
    system = "pyro5"
    serializer: str | None = None

    def load(self) -> None:
        import Pyro5.api  # noqa: F401

    def _proxy(self, uri: str) -> Any:
        import Pyro5.api
        proxy = Pyro5.api.Proxy(uri)
        if self.serializer:
            proxy._pyroSerializer = self.serializer
        return proxy

    def by_name(self, ep: Endpoints) -> Any:
        return self._proxy(f"PYRONAME:{NAME}@{ep.ns}")

    def by_address(self, ep: Endpoints) -> Any:
        return self._proxy(ep.address)

    def oneway(self, proxy: Any) -> Callable[[Any], Any]:
        return proxy.notify  # declared @oneway by the server: Pyro5 sends it without waiting

    def batch(self, proxy: Any) -> Callable[[int], list[Any]] | None:
        import Pyro5.api

        def send(n: int) -> list[Any]:
            calls = Pyro5.api.BatchProxy(proxy)
            for i in range(n):
                calls.echo(i)
            return list(calls())
        return send

    def close(self, proxy: Any) -> None:
        proxy._pyroRelease()

    def startup_code(self, ep: Endpoints, call: bool) -> str:
        code = "import Pyro5.api"
        if call:
            code += f"\np = Pyro5.api.Proxy('PYRONAME:{NAME}@{ep.ns}')"
            if self.serializer:
                code += f"\np._pyroSerializer = '{self.serializer}'"
            code += "\np.echo(1)"
        return code


class Pyro5MsgpackCaller(Pyro5Caller):
    system = "pyro5-msgpack"
    serializer = "msgpack"


class RpycCaller(Caller):
    system = "rpyc"

    def load(self) -> None:
        import rpyc
        import rpyc.utils.registry  # noqa: F401

    def by_name(self, ep: Endpoints) -> Any:
        import rpyc
        from rpyc.utils.registry import TCPRegistryClient
        host, port = ep.ns.rsplit(":", 1)
        return rpyc.connect_by_service(RPYC_NAME, registrar=TCPRegistryClient(host, int(port)))

    def by_address(self, ep: Endpoints) -> Any:
        import rpyc
        host, port = ep.address.rsplit(":", 1)
        return rpyc.connect(host, int(port))

    def method(self, proxy: Any, name: str) -> Callable[..., Any]:
        return getattr(proxy.root, name)

    def oneway(self, proxy: Any) -> Callable[[Any], Any]:
        import rpyc
        return rpyc.async_(proxy.root.notify)

    def notified(self, proxy: Any) -> int:
        return proxy.root.notified

    def close(self, proxy: Any) -> None:
        proxy.close()

    def startup_code(self, ep: Endpoints, call: bool) -> str:
        code = "import rpyc\nfrom rpyc.utils.registry import TCPRegistryClient"
        if call:
            host, port = ep.ns.rsplit(":", 1)
            code += (f"\nc = rpyc.connect_by_service('{RPYC_NAME}', registrar=TCPRegistryClient('{host}', {port}))"
                     "\nc.root.echo(1)")
        return code


class LonjaCaller(Caller):
    system = "lonja"

    def load(self) -> None:
        from lonja.clients import connect  # noqa: F401  (the proxy machinery loads on first use)

    def by_name(self, ep: Endpoints) -> Any:
        from lonja.clients import connect
        return connect(NAME, ns=ep.ns)

    def by_address(self, ep: Endpoints) -> Any:
        from lonja.clients import connect
        return connect(ep.address, ns=ep.ns)

    def by_name_with(self, ep: Endpoints, settings: dict[str, Any]) -> Any:
        from lonja.clients import connect
        from lonja.config import current_settings
        changed = current_settings().with_flags({key: (value, "benchmark") for key, value in settings.items()})
        return connect(NAME, ns=ep.ns, settings=changed)

    def oneway(self, proxy: Any) -> Callable[[Any], Any]:
        return proxy.notify.oneway

    def batch(self, proxy: Any) -> Callable[[int], list[Any]] | None:
        from lonja.clients import batch

        def send(n: int) -> list[Any]:
            with batch(proxy) as calls:
                for i in range(n):
                    calls.echo(i)
            return calls.results()
        return send

    def close(self, proxy: Any) -> None:
        from lonja.clients import close
        close(proxy)

    def startup_code(self, ep: Endpoints, call: bool) -> str:
        code = "from lonja.clients import connect"
        if call:
            code += f"\nconnect('{NAME}', ns='{ep.ns}').echo(1)"
        return code


CALLERS: dict[str, type[Caller]] = {c.system: c for c in (Pyro5Caller, Pyro5MsgpackCaller, RpycCaller, LonjaCaller)}


def caller(system: str) -> Caller:
    return CALLERS[system]()
