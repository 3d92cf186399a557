"""Talking to the name server: straight to host:port, never a broadcast wait.

Pyro5's `locate_ns()` tries a UDP broadcast for about two seconds before it gives up; lonja always knows
the address (flag, LONJA_NS, config or the default 127.0.0.1:9090) and goes there directly, presenting
this process's token (`auth.token`) on every connection.
"""

from __future__ import annotations

import builtins
import threading
import time
from typing import Any

import Pyro5.errors
from Pyro5.client import Proxy
from Pyro5.core import NAMESERVER_NAME

from lonja.config import Settings, current_settings, ensure_applied, parse_address
from lonja.config.auth import client_token
from lonja.config.wire import Refusal, client_handshake, refusal_of

from .errors import AccessDenied, LonjaError, NameNotFound, NameServerUnreachable, NameTaken, NoServingInstance

DEFAULT_CONNECT_TIMEOUT = 2.0


def resolve_ns_address(ns: str | None = None, settings: Settings | None = None) -> tuple[str, int]:
    """The name server's (host, port): from `ns` ("host:port") if given, else from the settings."""
    if ns:
        return parse_address(ns, "ns argument")
    settings = settings or current_settings()
    return settings["ns.host"], settings["ns.port"]


class NameServerClient:
    """A thread-safe handle on one name server. Every method raises NameServerUnreachable if it is down.

    `settings` (default: this process's) give the address when `ns` is left out, and the token when
    `token` is; nothing is contacted until the first call.
    """

    def __init__(self, ns: str | tuple[str, int] | None = None, *,
                 timeout: float | None = DEFAULT_CONNECT_TIMEOUT, token: str | None = None,
                 settings: Settings | None = None) -> None:
        if settings is None and (token is None or not ns):
            settings = current_settings()
        self.host, self.port = ns if isinstance(ns, tuple) else resolve_ns_address(ns, settings)
        self.timeout = timeout
        if token is None:
            assert settings is not None  # loaded above whenever no token is given
            token = client_token(settings)
        self.token = token
        self._settings = settings
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.uri = f"PYRO:{NAMESERVER_NAME}@{host}:{self.port}"
        self._proxy: Proxy | None = None
        self._lonja: bool | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

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
        return self._call("lonja_register", name, str(uri), sorted(metadata), ttl, class_name)["ttl"]

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

    def changes(self, since: int, timeout: float = 5.0, prefix: str = "") -> dict[str, Any]:
        """Changes after number `since` (waits up to `timeout` s); use a NameServerClient of its own."""
        return self._call("lonja_changes", since, timeout, prefix)

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
                except Pyro5.errors.CommunicationError as exc:
                    self._drop()
                    raise self._unreachable(exc) from None

    def _connected(self, resolve: str | None = None) -> Proxy:
        if self._proxy is None:
            if self._settings is not None:
                ensure_applied(self._settings)
            proxy = _NameServerProxy(self.uri)
            proxy._pyroTimeout = self.timeout
            proxy._pyroHandshake = client_handshake(self.token, resolve=resolve)
            try:
                proxy._pyroBind()
            except Pyro5.errors.CommunicationError as exc:
                raise self._unreachable(exc) from None
            self._lonja = bool(proxy._lonja_hello)
            self._proxy = proxy
        self._proxy._pyroClaimOwnership()
        return self._proxy

    def _drop(self) -> None:
        if self._proxy is not None:
            self._proxy._pyroRelease()
            self._proxy = None

    def _unreachable(self, exc: Exception | None = None) -> LonjaError:
        """The lonja error for a failed connection to the name server, saying what answered, if anything."""
        text = str(exc or "")
        if tls_failure(text):
            return AccessDenied(tls_message(f"the name server at {self.address}", text))
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
        if "reset by peer" in text:
            return NameServerUnreachable(f"the name server at {self.address} reset the connection during the "
                                         f"handshake: if it uses TLS, set tls.enabled and tls.ca (and tls.cert, "
                                         f"tls.key for mutual TLS)")
        return NameServerUnreachable(
            f"no name server answers at {self.address}: start one with `lonja up` or `lonja ns`, "
            f"or point --ns / LONJA_NS at the right HOST:PORT")


class _NameServerProxy(Proxy):
    """A proxy that keeps a lonja name server's answer to its hello (None from a plain Pyro5 one)."""

    _lonja_hello: dict[str, Any] | None = None

    def _pyroValidateHandshake(self, response: Any) -> None:
        hello = response if isinstance(response, dict) and response.get("lonja") else None
        object.__setattr__(self, "_lonja_hello", hello)


_TLS_SIGNS = ("SSL", "_ssl", "TLS", "certificate", "CERTIFICATE")


def tls_failure(text: str) -> bool:
    """True if a connection error's text says the TLS handshake failed."""
    return any(sign in text for sign in _TLS_SIGNS)


def tls_message(who: str, text: str) -> str:
    """One line saying that TLS failed with `who`, why (as far as OpenSSL says), and what to check."""
    reason = text.split("] ")[-1].split(" (_ssl")[0].strip() if "]" in text else text
    if "CERTIFICATE_REQUIRED" in text or "certificate required" in text or "EOF occurred" in text:
        reason = "the server ended it: it requires a client certificate it trusts (set tls.cert and tls.key)"
    elif "WRONG_VERSION_NUMBER" in text or "record layer" in text:
        reason = "one side speaks TLS and the other does not (check tls.enabled on both)"
    return f"the TLS handshake with {who} failed: {reason}; check tls.enabled, tls.cert, tls.key and tls.ca"


def _naming_message(exc: Exception, args: tuple) -> str:
    text = str(exc)
    if "unknown name" in text and args:
        return f"no service is registered as {args[0]!r}: see `lonja ls` for the names there are"
    return text
