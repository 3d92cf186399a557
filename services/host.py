"""A service host: one daemon serving one or more services, registered in the name server.

Names are registered when the host starts and removed when it stops, including on SIGINT/SIGTERM
(Pyro5's `serve()` never unregisters). A name held by a live server is refused; one left behind by a
dead server is taken over. With several name servers (`--ns a --ns b`, `LONJA_NS=a:9090,b:9090`) a host
registers with every one of them, so that a client finds it whichever name server it uses: it starts
once one of them answers, and registers with the others when they answer (at a lease renewal).
"""

from __future__ import annotations

import errno
import importlib
import importlib._bootstrap
import importlib._bootstrap_external
import inspect
import logging
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import Pyro5.errors
from Pyro5.client import Proxy

from lonja.clients.errors import NameServerUnreachable
from lonja.clients.naming import DEFAULT_CONNECT_TIMEOUT, NameServerClient, resolve_ns_addresses
from lonja.config import Settings
from lonja.config.addresses import nat_options
from lonja.config.auth import TokenTable, client_token
from lonja.config.limits import Limits

from .builtin import BUILTINS
from .daemon import HostDaemon
from .decorators import expose_public, service_info
from .errors import NameTaken, ServiceError, ServiceLoadError
from .session import HostSession

log = logging.getLogger("lonja.services")

LONJA_TAG = "lonja:service"


@dataclass
class Hosted:
    """One service on this host: its name, URI and name-server metadata."""

    name: str
    uri: str
    metadata: frozenset[str]
    target: Any
    class_name: str = ""


class _Registrar:
    """This host's standing with one name server: its client, its session, and the URI each name is
    registered with there (a name server with ns.correct_uris on may have put another host in it)."""

    def __init__(self, ns: NameServerClient) -> None:
        self.ns = ns
        self.session = HostSession(ns.host, ns.port, ns.token, ns.timeout)
        self.uris: dict[str, str] = {}
        self.reachable = True

    def uri_of(self, hosted: Hosted) -> str:
        return self.uris.get(hosted.name, hosted.uri)


def load_target(target: str, app_dir: str | os.PathLike[str] | None = None) -> type:
    """Import `package.module:Class`, or a built-in service by name (e.g. "echo").

    With `app_dir`, modules are looked up in that folder first, the way `python -m` looks in the current
    one. An error raised while importing the module becomes a ServiceLoadError that shows the line of the
    user's code it came from, without lonja's and importlib's frames.
    """
    spec = BUILTINS.get(target, target)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ServiceLoadError(f"cannot load {target!r}: expected package.module:Class or a built-in "
                               f"service ({', '.join(sorted(BUILTINS))})")
    folder = Path(app_dir).resolve() if app_dir is not None else None
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ServiceLoadError(_import_failure(module_name, target, exc, folder)) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ServiceLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not inspect.isclass(obj):
        raise ServiceLoadError(f"{target!r} is not a class")
    return obj


def _import_failure(module_name: str, target: str, exc: Exception, folder: Path | None) -> str:
    """A short message for `import module_name` raising `exc`: what is missing, or where the user's code failed."""
    headline = f"cannot import module {module_name!r} for {target!r}"
    if isinstance(exc, ModuleNotFoundError) and exc.name is not None and \
            (module_name == exc.name or module_name.startswith(exc.name + ".")):
        searched = f"in {folder} (--app-dir DIR to import from another folder) or " if folder else "in "
        return f"{headline}: no module {exc.name!r} {searched}the installed packages"
    if isinstance(exc, SyntaxError):
        return "\n".join([f"{headline}: {type(exc).__name__}: {exc.msg}",
                          f'  File "{exc.filename}", line {exc.lineno}', f"    {(exc.text or '').strip()}"])
    lines = [f"{headline}: {type(exc).__name__}: {exc}"]
    frame = _user_frame(exc, module_name, folder)
    if frame is not None:
        lines += [f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}', f"    {frame.line}"]
    return "\n".join(lines)


_IMPORT_MACHINERY = (vars(importlib), vars(importlib._bootstrap), vars(importlib._bootstrap_external))


def _user_frame(exc: Exception, module_name: str, folder: Path | None) -> traceback.FrameSummary | None:
    """The innermost frame of `exc` in the user's code: the target's package or a file in `folder`.

    Frames of importlib and of lonja itself never count. Without a frame of the user's, the innermost
    other one (say, in a library the user's module imports).
    """
    package = module_name.partition(".")[0]

    def module_of(frame: FrameType) -> str:
        return frame.f_globals.get("__name__", "")

    def is_users(frame: FrameType) -> bool:
        in_package = module_of(frame) == package or module_of(frame).startswith(package + ".")
        in_folder = folder is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(folder)
        return in_package or in_folder

    frames = [(frame, line) for frame, line in traceback.walk_tb(exc.__traceback__)
              if not any(frame.f_globals is machinery for machinery in _IMPORT_MACHINERY)
              and module_of(frame).partition(".")[0] != "lonja"]
    chosen = [(frame, line) for frame, line in frames if is_users(frame)] or frames
    return traceback.StackSummary.extract(chosen[-1:])[0] if chosen else None


class ServiceHost:
    """Hosts services in one daemon and keeps their names in the name server while it runs."""

    def __init__(self, settings: Settings, *, host: str | None = None, port: int | None = None,
                 ns: str | tuple[str, int] | None = None, advertise: str | None = None) -> None:
        """Bind `host:port` (default: service.host, service.port) and advertise `advertise` ("HOST[:PORT]",
        default: service.advertise) in URIs; bound to a wildcard without it, the address that reaches the
        (first) name server. `ns` (default: the settings' name servers) may name several, comma-separated."""
        self.settings = settings
        tokens = TokenTable.for_callers(settings) if settings["auth.require_token"] else None
        host = host or settings["service.host"]
        port = settings["service.port"] if port is None else port
        timeout = settings["client.connect_timeout"] or None
        self._registrars = [_Registrar(NameServerClient(address, timeout=timeout, token=client_token(settings),
                                                        connect_timeout=timeout or DEFAULT_CONNECT_TIMEOUT,
                                                        discover=False))
                            for address in resolve_ns_addresses(ns, settings)]
        self.ns = self._registrars[0].ns
        advertise = settings["service.advertise"] if advertise is None else advertise
        nat = nat_options(host, advertise, "--advertise (service.advertise)", (self.ns.host, self.ns.port))
        try:
            self.daemon = HostDaemon(host, port, Limits.from_settings(settings),
                                     oneway_workers=settings["service.oneway_workers"],
                                     servertype=settings["service.servertype"],
                                     max_threads=settings["service.threads"], tokens=tokens,
                                     reference_lease=settings["references.lease"],
                                     local_socket=settings["service.local_socket"], **nat)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServiceError(f"port {port} on {host} is already in use: use --port to pick another, "
                                   f"or leave it out for a free one") from None
            raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.lease_ttl = settings["ns.lease_ttl"]
        self.session = self._registrars[0].session
        self.hosted: list[Hosted] = []
        self._registered: list[Hosted] = []
        self._thread: threading.Thread | None = None
        self._renewers: list[threading.Thread] = []
        self._stopped = threading.Event()

    def add(self, target: type | object, name: str | None = None, metadata: set[str] | None = None) -> Hosted:
        """Host a service class (one instance is made) or object under `name` (default: its @service name).

        On a host that has started, the name is registered at once.
        """
        cls = target if inspect.isclass(target) else type(target)
        info = service_info(cls)
        name = name or (info.name if info else None)
        if not name:
            raise ServiceLoadError(f"{cls.__qualname__} has no service name: decorate it with "
                                   f"@service(\"name\") or pass --name")
        if any(h.name == name for h in self.hosted):
            raise ServiceLoadError(f"two services on this host want the name {name!r}: use --name")
        expose_public(cls)  # a plain class served under --name follows the same rule as one with @service
        if inspect.isclass(target) and not hasattr(target, "_pyroInstancing"):
            try:
                target = target()
            except Exception as exc:
                raise ServiceLoadError(f"cannot create {cls.__qualname__}(): {type(exc).__name__}: {exc}") from None
        class_name = f"{cls.__module__}.{cls.__qualname__}"
        tags = {LONJA_TAG, f"class:{class_name}"}
        tags |= set(info.metadata if info else ()) | set(metadata or ())
        uri = self.daemon.register(target, objectId=name)
        hosted = Hosted(name, str(uri), frozenset(tags), target, class_name)
        self.hosted.append(hosted)
        if self._thread is not None:
            self._claim(hosted)
        return hosted

    def start(self) -> None:
        """Register every hosted name and serve requests in a background thread; leases are kept renewed."""
        for hosted in self.hosted:
            self._claim(hosted)
        self._attach()
        self._thread = threading.Thread(target=self.daemon.requestLoop, name="lonja-host", daemon=True)
        self._thread.start()
        for registrar in self._registrars:
            renewer = threading.Thread(target=self._renew_loop, args=(registrar,), name="lonja-lease", daemon=True)
            renewer.start()
            self._renewers.append(renewer)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` is called (True) or the timeout passes (False)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Ask a running host to stop; safe from signal handlers and other threads."""
        self._stopped.set()

    def close(self) -> None:
        """Mark every name this host registered not serving, remove them, then stop serving."""
        self._stopped.set()
        for renewer in self._renewers:
            renewer.join(timeout=5)
        registered, self._registered = list(reversed(self._registered)), []
        for registrar in self._registrars:
            registrar.session.close()
            steps = [(hosted, status) for status in ("not serving", None) for hosted in registered]
            for hosted, status in steps if registrar.reachable else ():
                if not self._release(registrar, hosted, status):
                    break  # that name server is gone: do not wait for it once per name
            registrar.ns.close()
        if self._thread is not None:
            self.daemon.shutdown()
            self._thread.join(timeout=5)
        else:
            self.daemon.close()

    def __enter__(self) -> ServiceHost:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def registered_as(self, hosted: Hosted) -> dict[str, str]:
        """The name servers (address -> URI) that keep `hosted` under another URI than its own (they
        corrected a loopback or wildcard host: ns.correct_uris)."""
        return {registrar.ns.address: registrar.uris[hosted.name] for registrar in self._registrars
                if registrar.uris.get(hosted.name, hosted.uri) != hosted.uri}

    def _claim(self, hosted: Hosted) -> None:
        """Register `hosted` with every name server that answers; NameServerUnreachable if none does."""
        failures: list[NameServerUnreachable] = []
        for registrar in self._registrars:
            try:
                self._claim_with(registrar, hosted)
            except NameServerUnreachable as exc:
                failures.append(exc)
                if registrar.reachable and len(self._registrars) > 1:
                    log.warning("the name server at %s is unreachable: %s will be registered there when it "
                                "answers", registrar.ns.address, hosted.name)
                registrar.reachable = False
        if len(failures) == len(self._registrars):
            if len(failures) == 1:
                raise failures[0]
            raise NameServerUnreachable(f"no name server answers at {', '.join(r.ns.address for r in self._registrars)}"
                                        f": start one with `lonja up` or `lonja ns`, or point --ns / LONJA_NS at the "
                                        f"right HOST:PORT")
        if hosted not in self._registered:
            self._registered.append(hosted)

    def _claim_with(self, registrar: _Registrar, hosted: Hosted) -> None:
        """Register `hosted` with one name server: under a lease with lonja's, plainly with Pyro5's own."""
        ns = registrar.ns
        try:
            if ns.is_lonja():
                _, registrar.uris[hosted.name] = ns.register_instance_at(hosted.name, hosted.uri, hosted.metadata,
                                                                         self.lease_ttl, hosted.class_name)
            else:
                existing = ns.list(hosted.name).get(hosted.name)
                if existing and existing[0] != hosted.uri and _is_alive(existing[0]):
                    raise NameTaken(hosted.name, str(existing[0]))
                ns.register(hosted.name, hosted.uri, hosted.metadata)
        except NameTaken as exc:
            raise NameTaken(hosted.name, exc.served_uri, exc.served_class,
                            advice="stop that server, or host this one under another name with --name") from None
        log.info("registered %s as %s at %s", hosted.name, registrar.uri_of(hosted), ns.address)

    def _renew_loop(self, registrar: _Registrar) -> None:
        """Renew leases with one name server every third of their life; register again what it forgot
        (it restarted, or it did not answer when this host started)."""
        ns = registrar.ns
        while not self._stopped.wait(self.lease_ttl / 3):
            if not self._registered or not self._lonja_ns(registrar):
                continue
            try:
                entries = {(h.name, registrar.uri_of(h)): h for h in self._registered}
                forgotten = set(ns.renew(list(entries), self.lease_ttl))
                for key in [key for key in entries if key in forgotten]:
                    self._claim_with(registrar, entries[key])
                    if registrar.reachable:
                        log.warning("re-registered %s: the name server at %s had forgotten it", key[0], ns.address)
                self._attach(registrar)
                if not registrar.reachable:
                    log.warning("the name server at %s is back", ns.address)
                registrar.reachable = True
            except NameServerUnreachable:
                if registrar.reachable:
                    log.warning("the name server at %s is unreachable: still serving, will re-register when "
                                "it returns", ns.address)
                registrar.reachable = False
            except Exception as exc:  # keep renewing whatever one round ran into
                log.warning("lease renewal with %s failed: %s", ns.address, exc)

    def _attach(self, registrar: _Registrar | None = None) -> None:
        """Tie this host's instances to its sessions with lonja name servers (see services.session)."""
        for each in [registrar] if registrar is not None else self._registrars:
            if self._registered and each.reachable and self._lonja_ns(each):
                each.session.attach([(h.name, each.uri_of(h)) for h in self._registered])

    @staticmethod
    def _lonja_ns(registrar: _Registrar) -> bool:
        try:
            return registrar.ns.is_lonja()
        except NameServerUnreachable:
            return True

    @staticmethod
    def _release(registrar: _Registrar, hosted: Hosted, status: str | None) -> bool:
        """Mark `hosted` with `status`, or (None) remove it; False if the name server is gone already."""
        ns, uri = registrar.ns, registrar.uri_of(hosted)
        try:
            if not ns.is_lonja():
                if status is None and ns.lookup(hosted.name)[0] == uri:
                    ns.remove(hosted.name)
            elif status is None:
                ns.unregister(hosted.name, uri)
            else:
                ns.set_status(hosted.name, uri, status)
        except NameServerUnreachable as exc:
            log.warning("could not unregister %s at %s: %s", hosted.name, ns.address, exc)
            return False
        except Exception as exc:
            log.warning("could not unregister %s at %s: %s", hosted.name, ns.address, exc)
        return True


def _is_alive(uri: str, timeout: float = 2.0) -> bool:
    """True if the object behind `uri` exists on a running daemon (not just: its port opens)."""
    proxy = Proxy(uri)
    proxy._pyroTimeout = timeout
    try:
        proxy._pyroBind()
        return True
    except Pyro5.errors.CommunicationError:
        return False
    finally:
        proxy._pyroRelease()
