"""Talking to the name server: straight to host:port, never a broadcast wait unless asked for.

Pyro5's `locate_ns()` tries a UDP broadcast for about two seconds before it gives up; lonja knows the
addresses (flag, LONJA_NS, config or the default 127.0.0.1:9090) and goes there directly, presenting
this process's token (`auth.token`) on every connection. With several name servers (`--ns a --ns b`,
`LONJA_NS=a:9090,b:9090`, `ns.fallbacks`) a client uses the first that answers, in order: one that
refuses connections is skipped at once, one that does not answer after the connect timeout. Only with
`ns.discover` on, and only when none of them answers, does a client broadcast Pyro5's discovery request
(`GET_NSURI` on UDP port 9091, answered by name servers with `ns.broadcast` on).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import Pyro5.errors
from Pyro5.client import Proxy
from Pyro5.core import NAMESERVER_NAME

from lonja.config import Settings, current_settings, ensure_applied, format_address, parse_addresses
from lonja.config.auth import client_token
from lonja.config.wire import Refusal, client_handshake, handshake_dropped, refusal_of

from .errors import AccessDenied, LonjaError, NameNotFound, NameServerUnreachable, NameTaken, NoServingInstance
from .failures import tls_error, tls_message, was_reset, why_not

DEFAULT_CONNECT_TIMEOUT = 2.0
DISCOVERY_ROUNDS = 3
DISCOVERY_WAIT = 0.7
"""Pyro5's discovery: the request is sent this many times, each time waiting this many seconds for an answer."""
HANDSHAKE_SERIALIZERS = ("msgpack", "serpent")
"""What a client's handshake with a name server (which carries its first lookup) is sent in: msgpack, parsed
in a tenth of serpent's time on either side, or serpent if the name server drops a msgpack handshake
(Pyro5's own, installed without msgpack). Its calls are in serpent: Pyro5's name server answers some of
them with frozensets, which only serpent carries."""

log = logging.getLogger("lonja.clients")

NameServers = str | tuple[str, int] | Sequence[str | tuple[str, int]]
"""One name server or several: "host:port", "a:9090,b:9090", (host, port), or a list of either."""


def resolve_ns_addresses(ns: NameServers | None = None, settings: Settings | None = None) -> list[tuple[str, int]]:
    """The name servers to try, in order, as (host, port): from `ns` if given, else from the settings."""
    if not ns:
        return (settings or current_settings()).ns_addresses
    if isinstance(ns, tuple) and len(ns) == 2 and isinstance(ns[1], int):
        return [(str(ns[0]), ns[1])]
    items = [ns] if isinstance(ns, str) else list(ns)
    found: list[tuple[str, int]] = []
    for item in items:
        parsed = parse_addresses(item, "ns argument") if isinstance(item, str) else [(str(item[0]), int(item[1]))]
        for address in parsed:
            if address not in found:
                found.append(address)
    return found


class NameServerClient:
    """A thread-safe handle on a name server. Every method raises NameServerUnreachable if none answers.

    `ns` may name several name servers: the client connects to the first that answers (each given at most
    `connect_timeout` seconds, default the smaller of `timeout` and client.connect_timeout), and walks the
    list again whenever it has to reconnect. `host`, `port` and `address` are those of the name server in
    use (the first one before any call). `settings` (default: this process's) give the addresses when `ns`
    is left out, the token when `token` is, and `discover` when it is None; nothing is contacted until the
    first call.
    """

    def __init__(self, ns: NameServers | None = None, *,
                 timeout: float | None = DEFAULT_CONNECT_TIMEOUT, token: str | None = None,
                 settings: Settings | None = None, connect_timeout: float | None = None,
                 discover: bool | None = None) -> None:
        if settings is None and (token is None or not ns):
            settings = current_settings()
        self.addresses = resolve_ns_addresses(ns, settings)
        self.host, self.port = self.addresses[0]
        self.timeout = timeout
        if token is None:
            assert settings is not None  # loaded above whenever no token is given
            token = client_token(settings)
        self.token = token
        if connect_timeout is None:
            connect_timeout = (settings or current_settings())["client.connect_timeout"] or DEFAULT_CONNECT_TIMEOUT
        self.connect_timeout = connect_timeout if timeout is None else min(timeout, connect_timeout)
        self.discover = bool((settings or current_settings())["ns.discover"]) if discover is None else discover
        self._settings = settings
        self._proxy: Proxy | None = None
        self._lonja: bool | None = None
        self._serializers: dict[tuple[str, int], str] = {}  # name servers that took only serpent
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The name server in use as "host:port" (the first one configured, before any call)."""
        return format_address(self.host, self.port)

    @property
    def uri(self) -> str:
        """The PYRO: URI of the name server in use."""
        return f"PYRO:{NAMESERVER_NAME}@{self.address}"

    def ping(self) -> float:
        """Round-trip time of a call to the name server, in seconds."""
        start = time.perf_counter()
        self._call("ping")
        return time.perf_counter() - start

    def lookup(self, name: str) -> tuple[str, frozenset[str]]:
        """The URI and metadata registered under `name`; NameNotFound if there is none."""
        uri, metadata = self._call("lookup", name, return_metadata=True)
        return str(uri), frozenset(metadata)

    def list(self, prefix: str | None = None) -> dict[str, tuple[str, frozenset[str]]]:
        """Every registration whose name starts with `prefix`: name -> (uri, metadata)."""
        entries = self._call("list", prefix=prefix or None, return_metadata=True)
        return {name: (str(uri), frozenset(meta)) for name, (uri, meta) in sorted(entries.items())}

    def register(self, name: str, uri: str, metadata: frozenset[str] | set[str] = frozenset(),
                 safe: bool = False) -> None:
        """Pyro5's plain registration: one URI, no lease (the name server probes it instead)."""
        self._call("register", name, str(uri), safe=safe, metadata=set(metadata))

    def remove(self, name: str | None = None, prefix: str | None = None, regex: str | None = None) -> int:
        """Remove one name, or every name starting with `prefix`, or every name `regex` matches (`re.match`);
        returns how many went."""
        return self._call("remove", name, prefix, regex)

    def set_metadata(self, name: str, metadata: frozenset[str] | set[str]) -> None:
        """Replace the tags of `name`."""
        self._call("set_metadata", name, sorted(metadata))

    def count(self) -> int:
        return self._call("count")

    # -- lonja's name server API (each needs a lonja name server: `is_lonja()`) ------------------------

    def is_lonja(self) -> bool:
        """True if the name server is lonja's (leases, instances, watching), False for plain Pyro5's.

        Connecting tells (a lonja name server answers the handshake as one): no request is sent for it.
        """
        if self._lonja is None:
            with self._lock:
                self._connected()
        return bool(self._lonja)

    def register_instance(self, name: str, uri: str, metadata: frozenset[str] | set[str] = frozenset(),
                          ttl: float | None = None, class_name: str = "") -> float:
        """Register one instance of `name` under a lease; returns the lease in seconds."""
        return self.register_instance_at(name, uri, metadata, ttl, class_name)[0]

    def register_instance_at(self, name: str, uri: str, metadata: frozenset[str] | set[str] = frozenset(),
                             ttl: float | None = None, class_name: str = "") -> tuple[float, str]:
        """Register one instance of `name` under a lease; returns the lease in seconds and the URI as the
        name server keeps it (with ns.correct_uris on, it puts the address a registration from another
        host came from in place of a loopback or wildcard host)."""
        answer = self._call("lonja_register", name, str(uri), sorted(metadata), ttl, class_name)
        return answer["ttl"], str(answer.get("uri") or uri)

    def renew(self, entries: builtins.list[tuple[str, str]],
              ttl: float | None = None) -> builtins.list[tuple[str, str]]:
        """Renew leases of (name, uri) instances; returns those the name server no longer knows."""
        return [tuple(e) for e in self._call("lonja_renew", [list(e) for e in entries], ttl)]

    def set_status(self, name: str, uri: str, status: str) -> None:
        self._call("lonja_set_status", name, str(uri), status)

    def unregister(self, name: str, uri: str) -> bool:
        return self._call("lonja_unregister", name, str(uri))

    def entries(self, prefix: str | None = None) -> dict[str, dict[str, Any]]:
        """Every name with its metadata and instances (uri, status, last seen)."""
        return self._call("lonja_list", prefix or None)

    def instances(self, name: str) -> builtins.list[str]:
        """URIs of the serving instances of `name`."""
        found = self._answered_in_handshake(name)
        return found if found is not None else list(self._call("lonja_instances", name))

    def resolve(self, name: str) -> builtins.list[str]:
        """URIs of the instances of `name` on any name server: all serving ones on lonja's, the one
        registered URI on plain Pyro5's. A first lookup rides on the connection's handshake."""
        found = self._answered_in_handshake(name)
        if found is not None:
            return found
        return self.instances(name) if self.is_lonja() else [self.lookup(name)[0]]

    def _answered_in_handshake(self, name: str) -> builtins.list[str] | None:
        """Connect, if not connected yet, with `name` in the hello: the instances a lonja name server
        answered with (None if already connected, or if it did not answer with any)."""
        with self._lock:
            if self._proxy is not None:
                return None
            hello = self._connected(resolve=name)._lonja_hello
        found = hello.get("instances") if hello else None
        return [str(uri) for uri in found] if isinstance(found, list) and found else None

    def changes(self, since: int, timeout: float = 5.0, prefix: str = "",
                names: Iterable[str] | None = None) -> dict[str, Any]:
        """Changes after number `since` (waits up to `timeout` s) to names with `prefix`, and only to
        `names` if given; use a NameServerClient of its own."""
        if names is None:
            return self._call("lonja_changes", since, timeout, prefix)
        return self._call("lonja_changes", since, timeout, prefix, sorted(names))

    def whoami(self) -> dict[str, str]:
        return self._call("lonja_whoami")

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy._pyroClaimOwnership()
                self._proxy._pyroRelease()
                self._proxy = None

    def __enter__(self) -> NameServerClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            for attempt in (1, 2):
                proxy = self._connected()
                try:
                    return getattr(proxy, method)(*args, **kwargs)
                except Pyro5.errors.NamingError as exc:
                    served_uri = getattr(exc, "served_uri", None)  # the name server's NameAlreadyServed
                    if served_uri:
                        raise NameTaken(str(args[0]), served_uri, getattr(exc, "served_class", "")) from None
                    if str(exc).startswith("no serving instance") and args:  # registered, but all are down
                        raise NoServingInstance(f"service {args[0]!r} does not answer: {exc}; its hosts stopped, "
                                                f"were killed or are cut off") from None
                    raise NameNotFound(_naming_message(exc, args)) from None
                except Pyro5.errors.SecurityError as exc:
                    raise AccessDenied(f"the name server at {self.address} refused: {exc}") from None
                except Pyro5.errors.ConnectionClosedError:
                    self._drop()  # a stale connection (the name server restarted): try once more
                    if attempt == 2:
                        raise self._unreachable() from None
                    if method == "lonja_changes" and len(self.addresses) > 1:
                        raise self._gone(args) from None
                except Pyro5.errors.CommunicationError as exc:
                    self._drop()
                    raise self._unreachable(exc) from None

    def _connected(self, resolve: str | None = None) -> Proxy:
        if self._proxy is None:
            if self._settings is not None:
                ensure_applied(self._settings)
            self._proxy = self._first_answering(resolve)
            self._lonja = bool(self._proxy._lonja_hello)
        self._proxy._pyroClaimOwnership()
        return self._proxy

    def _first_answering(self, resolve: str | None) -> _NameServerProxy:
        """A connection to the first configured name server that answers (then, with `discover`, to one
        that answers the broadcast); a refusal (access denied, TLS) ends the search: that one answered."""
        tried: builtins.list[tuple[str, int, Exception]] = []
        for host, port in self.addresses:
            proxy = self._try(host, port, resolve, tried)
            if proxy is not None:
                return proxy
        found: builtins.list[tuple[str, int]] = []
        if self.discover:
            found = [address for address in discover_name_servers() if address not in self.addresses]
            for host, port in found:
                proxy = self._try(host, port, resolve, tried)
                if proxy is not None:
                    log.info("found the name server at %s by broadcast", format_address(host, port))
                    return proxy
        self.host, self.port = self.addresses[0]
        if len(tried) == 1 and not self.discover:
            raise self._unreachable(tried[0][2]) from None
        raise NameServerUnreachable(self._none_answers(tried, found)) from None

    def _try(self, host: str, port: int, resolve: str | None,
             tried: builtins.list[tuple[str, int, Exception]]) -> _NameServerProxy | None:
        """Connect to one name server, giving it `connect_timeout` seconds; None (noted in `tried`) if it
        does not answer as one, AccessDenied if it refuses this client."""
        self.host, self.port = host, port
        while True:
            serializer = self._serializers.get((host, port), HANDSHAKE_SERIALIZERS[0])
            proxy = _NameServerProxy(f"PYRO:{NAMESERVER_NAME}@{format_address(host, port)}")
            proxy._pyroSerializer = serializer
            proxy._pyroTimeout = self.connect_timeout
            proxy._pyroHandshake = client_handshake(self.token, resolve=resolve)
            try:
                proxy._pyroBind()
            except Pyro5.errors.CommunicationError as exc:
                proxy._pyroRelease()
                if serializer != HANDSHAKE_SERIALIZERS[-1] and handshake_dropped(exc):  # it may take no msgpack
                    self._serializers[(host, port)] = HANDSHAKE_SERIALIZERS[-1]
                    continue
                error = self._unreachable(exc)
                if isinstance(error, AccessDenied):
                    raise error from None
                tried.append((host, port, exc))
                return None
            proxy._pyroTimeout = self.timeout
            proxy._pyroSerializer = "serpent"
            return proxy

    def _none_answers(self, tried: builtins.list[tuple[str, int, Exception]],
                      found: builtins.list[tuple[str, int]]) -> str:
        """One line: every name server tried and why it did not do, and what to do."""
        each = ", ".join(f"{format_address(host, port)} ({why_not(exc, self.connect_timeout)})"
                         for host, port, exc in tried)
        text = f"no name server answers at {each}" if tried else "no name server answers"
        if self.discover and not found:
            text += ", nor to a broadcast on this host's networks (ns.discover)"
        return (f"{text}: start one with `lonja up` or `lonja ns`, or point --ns / LONJA_NS at the right "
                f"HOST:PORT" + ("" if self.discover else " (or set ns.discover to look for one by broadcast)"))

    def _gone(self, args: tuple) -> NameServerUnreachable:
        """Change numbers belong to one name server: a follower whose name server went away starts over
        (with the next one that answers) rather than ask another for changes after its number."""
        return NameServerUnreachable(f"the name server at {self.address} went away while following changes "
                                     f"after number {args[0] if args else '?'}: start over")

    def _drop(self) -> None:
        if self._proxy is not None:
            self._proxy._pyroRelease()
            self._proxy = None

    def _unreachable(self, exc: Exception | None = None) -> LonjaError:
        """The lonja error for a failed connection to the name server, saying what answered, if anything."""
        tls = tls_error(exc)
        if tls is not None:
            return AccessDenied(tls_message(f"the name server at {self.address}", tls))
        refused = refusal_of(exc)
        if refused is not None:
            why, reason = refused
            if why is Refusal.BUSY:
                return NameServerUnreachable(f"the name server at {self.address} is busy: {reason}")
            if why is Refusal.NO_SUCH_OBJECT:
                return NameServerUnreachable(f"no name server at {self.address} (something else answered: a Pyro5 "
                                             f"server without a name server): check --ns / LONJA_NS")
            return AccessDenied(f"the name server at {self.address} refused the connection: {reason}")
        if isinstance(exc, Pyro5.errors.ProtocolError):
            return NameServerUnreachable(f"no name server at {self.address} (something else answered: it does not "
                                         f"speak Pyro5): check --ns / LONJA_NS")
        if was_reset(exc):
            return NameServerUnreachable(f"the name server at {self.address} reset the connection during the "
                                         f"handshake: if it uses TLS, set tls.enabled and tls.ca (and tls.cert, "
                                         f"tls.key for mutual TLS)")
        return NameServerUnreachable(
            f"no name server answers at {self.address}: start one with `lonja up` or `lonja ns`, "
            f"or point --ns / LONJA_NS at the right HOST:PORT")


def discover_name_servers(rounds: int = DISCOVERY_ROUNDS, wait: float = DISCOVERY_WAIT) -> list[tuple[str, int]]:
    """The name servers that answer Pyro5's UDP discovery request (its broadcast addresses and this host's
    networks' own, on Pyro5's NS_BCPORT), as (host, port) in the order they answered; [] after `rounds`
    tries of `wait` seconds each. Called only with ns.discover on."""
    from Pyro5 import config, socketutil
    from Pyro5 import core as pyro_core

    from lonja.config.addresses import interface_broadcasts

    targets = list(dict.fromkeys([*config.BROADCAST_ADDRS, *interface_broadcasts()]))
    found: list[tuple[str, int]] = []
    with socketutil.create_bc_socket(reuseaddr=config.SOCK_REUSE, timeout=wait) as sock:
        for _ in range(rounds):
            for target in targets:
                try:
                    sock.sendto(b"GET_NSURI", 0, (target, config.NS_BCPORT))
                except OSError as exc:  # no route for that one (255.255.255.255 without a default route)
                    log.debug("discovery request to %s: %s", target, exc)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                try:
                    data, _ = sock.recvfrom(1000)
                except OSError:  # a timeout too: nothing more came
                    break
                try:
                    uri = pyro_core.URI(data.decode("iso-8859-1"))
                except (Pyro5.errors.PyroError, UnicodeDecodeError):
                    continue
                if uri.host and uri.port and (uri.host, uri.port) not in found:
                    found.append((uri.host, uri.port))
                deadline = min(deadline, time.monotonic() + 0.05)  # gather answers that arrive together
            if found:
                return found
    return found


class _NameServerProxy(Proxy):
    """A proxy that keeps a lonja name server's answer to its hello (None from a plain Pyro5 one)."""

    _lonja_hello: dict[str, Any] | None = None

    def _pyroValidateHandshake(self, response: Any) -> None:
        hello = response if isinstance(response, dict) and response.get("lonja") else None
        object.__setattr__(self, "_lonja_hello", hello)


def _naming_message(exc: Exception, args: tuple) -> str:
    text = str(exc)
    if "unknown name" in text and args:
        return f"no service is registered as {args[0]!r}: see `lonja ls` for the names there are"
    return text
