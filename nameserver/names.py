"""The name server object: Pyro5's NameServer plus leases, health, watching, instances and access control.

Everything a plain Pyro5 client or `pyro5-nsc` calls (register, lookup, list, remove, set_metadata,
yplookup, count, ping) works as before, with these differences: every argument is checked before anything
is stored or logged; writes are checked against the caller's identity; nobody may overwrite or remove the
name server's own entry; a plain `register()` cannot take over a name a live lonja host serves under a
lease (`NameAlreadyServed`). lonja's own hosts and clients use the `lonja_*` methods below.

Liveness: a leased instance lives until its lease expires. A plain instance is probed: while something
accepts connections at its address it stays; when its daemon says the object is gone it is removed after
`probe_grace`; when nothing answers it is listed as "unreachable", still returned by `lookup()` (so
Pyro5's reconnecting clients find it again), and removed after `unreachable_grace`.
"""

from __future__ import annotations

import builtins
import collections.abc
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import Pyro5.client
import Pyro5.core
import Pyro5.errors
import Pyro5.nameserver
import Pyro5.server
import Pyro5.socketutil
from Pyro5.callcontext import current_context

from lonja.config.auth import ANONYMOUS_OPEN, Identity
from lonja.config.wire import MAX_WATCHED

from .addresses import checked_uri
from .errors import NameAlreadyServed
from .registry import NOT_SERVING, SERVING, UNKNOWN, UNREACHABLE, Instance, Registry

log = logging.getLogger("lonja.nameserver")

OWNER_TAG = "lonja:owner="
LEASE_TAG = "lonja:lease="
HIDDEN_TAGS = (OWNER_TAG, LEASE_TAG)
"""Prefixes of the tags the name server keeps for itself: never shown, never matched, never set by clients."""
CLASS_TAG = "class:"
NS_NAME = Pyro5.core.NAMESERVER_NAME
STATUSES = (SERVING, NOT_SERVING)
MAINTAINERS = ("admin", "open")

MAX_NAME_LENGTH = 512
MAX_URI_LENGTH = 1024
MAX_TAGS = 256
MAX_TAG_LENGTH = 512
MAX_RENEWALS = 10_000
MIN_TTL, MAX_TTL = 1.0, 3600.0
PROBE_TIMEOUT = 2.0
PROBE_WORKERS = 8
PROBE_BACKLOG = 512
"""Probes at most that are started and not finished (queued for the PROBE_WORKERS threads, or running)."""
PROBES_PER_SECOND = 100
"""Probes started per second at most: with many plain registrations each is probed less often than
probe_interval, and a burst of them never takes the name server's time from requests."""


class Probe(enum.Enum):
    """What probing a plain registration found."""

    ALIVE = "alive"              # the object answered, or something accepts connections at its address
    MISSING = "missing"          # its daemon answered that the object does not exist
    UNREACHABLE = "unreachable"  # nothing accepts connections at its address


@Pyro5.server.expose
class LonjaNameServer(Pyro5.nameserver.NameServer):
    """Pyro5's name server with instances, leases, health checks, a change log and per-name owners.

    `loaded` is how many names the storage held when the server started.
    """

    def __init__(self, storage: Any, *, lease_ttl: float = 10.0, probe_interval: float = 5.0,
                 probe_grace: float = 15.0, unreachable_grace: float = 3600.0,
                 probe: Callable[[str], Probe] | None = None, correct_uris: bool = False) -> None:
        super().__init__(storage)
        self.correct_uris = correct_uris
        self.lease_ttl = lease_ttl
        self.probe_interval = probe_interval
        self.probe_grace = probe_grace
        self.unreachable_grace = unreachable_grace
        self._probe = probe or probe_object
        self._probe_slots = threading.BoundedSemaphore(PROBE_BACKLOG)
        self._prober_pool: ThreadPoolExecutor | None = None
        self._last_sweep = time.monotonic()
        self._probers_lock = threading.Lock()
        self.registry = Registry()
        self.loaded: int = self._load_storage()

    # -- Pyro5's API, with access control -------------------------------------------------------------

    def register(self, name: str, uri: Any, safe: bool = False, metadata: Iterable[str] | None = None) -> None:
        """Pyro5's register: one plain instance under `name` (checked by probing, not by a lease)."""
        name, tags = _check_name(name), _check_tags(metadata, "metadata")
        uri = checked_uri(name, *_parse_uri(uri), self.correct_uris)
        identity = self._writer(name)
        first_probe = time.monotonic() + self.probe_interval  # its server just registered it: alive for now
        with self.lock:
            self._refuse_if_leased(name)
            if safe and name in self.storage:
                raise Pyro5.errors.NamingError("name already registered: " + _quote(name))
            self.registry.drop_name(name)
            self.registry.add(Instance(name, uri, identity.who, _class_of(tags), next_probe=first_probe))
            self._sync_primary(name, tags, identity.who)
        if log.isEnabledFor(logging.INFO):  # the arguments cost more than the call when it logs nothing
            log.info("%s registered %s -> %s", _who(identity), _quote(name), uri)

    def remove(self, name: str | None = None, prefix: str | None = None, regex: str | None = None) -> int:
        """Pyro5's remove: `name`, else every name with `prefix`, else every name `regex` matches; none of
        them (or only empty ones) removes nothing. A service may only remove the names it registered."""
        name = _check_text(name, "name", MAX_NAME_LENGTH, optional=True)
        prefix = _check_text(prefix, "prefix", MAX_NAME_LENGTH, optional=True)
        regex = _check_text(regex, "regex", MAX_NAME_LENGTH, optional=True)
        identity = self._identity()
        self._check_role(identity)
        with self.lock:
            if name and name != NS_NAME:
                names = [name] if name in self.storage else []
            elif prefix:
                names = list(Pyro5.nameserver.NameServer.list(self, prefix=prefix))
            elif regex:
                names = list(Pyro5.nameserver.NameServer.list(self, regex=regex))
            else:
                names = []
            names = [n for n in names if n != NS_NAME]
            for each in names:
                self._check_write(identity, each)
            for each in names:
                del self.storage[each]
                self.registry.drop_name(each)
        if names:
            log.info("%s removed %s", _who(identity), ", ".join(_quote(n) for n in names[:20]) +
                     (f" and {len(names) - 20} more" if len(names) > 20 else ""))
        return len(names)

    def lookup(self, name: str, return_metadata: bool = False) -> Any:
        """Pyro5's lookup; an unreachable plain registration is still returned, for clients that reconnect."""
        name = _check_name(name)
        with self.lock:
            if name not in self.storage:
                raise Pyro5.errors.NamingError("unknown name: " + _quote(name))
            uri, metadata = self.storage[name]
        return (Pyro5.core.URI(uri), _public(metadata)) if return_metadata else Pyro5.core.URI(uri)

    def list(self, prefix: str | None = None, regex: str | None = None, return_metadata: bool = False) -> Any:
        """Pyro5's list: every name, or those starting with `prefix`, or those `regex` matches."""
        prefix = _check_text(prefix, "prefix", MAX_NAME_LENGTH, optional=True)
        regex = _check_text(regex, "regex", MAX_NAME_LENGTH, optional=True)
        result = super().list(prefix, regex, bool(return_metadata))
        if return_metadata:
            return {name: (uri, _public(metadata)) for name, (uri, metadata) in result.items()}
        return result

    def yplookup(self, meta_all: Any = None, meta_any: Any = None, return_metadata: bool = True) -> Any:
        """Pyro5's yellow-pages search; the name server's own hidden tags never match."""
        meta_all = _check_tags(meta_all, "meta_all")
        meta_any = _check_tags(meta_any, "meta_any")
        if meta_all and meta_any:
            raise ValueError("you can't use meta_all or meta_any at the same time")
        if any(_hidden(tag) for tag in meta_all):
            return {}
        meta_any = {tag for tag in meta_any if not _hidden(tag)}
        if not meta_all and not meta_any:
            return {}
        result = super().yplookup(meta_all or None, meta_any or None, bool(return_metadata))
        if return_metadata:
            return {name: (uri, _public(metadata)) for name, (uri, metadata) in result.items()}
        return result

    def set_metadata(self, name: str, metadata: Iterable[str] | None) -> None:
        """Pyro5's set_metadata: replace the tags of `name` (its owner stays)."""
        name, tags = _check_name(name), _check_tags(metadata, "metadata")
        identity = self._writer(name)
        with self.lock:
            if name not in self.storage:
                raise Pyro5.errors.NamingError("unknown name: " + _quote(name))
            self._sync_primary(name, tags, self._owner(name) or identity.who)
        log.info("%s set the metadata of %s", _who(identity), _quote(name))

    # -- lonja's API ----------------------------------------------------------------------------------

    def lonja_register(self, name: str, uri: str, metadata: Iterable[str] | None = None,
                       ttl: float | None = None, class_name: str = "") -> dict[str, Any]:
        """Register one instance of `name` with a lease; a second host of the same class joins it.

        A different class under a name that is still served is refused. Returns the lease in seconds.
        """
        name, tags = _check_name(name), _check_tags(metadata, "metadata")
        uri = checked_uri(name, *_parse_uri(uri), self.correct_uris)
        ttl = self._check_ttl(ttl)
        class_name = _check_text(class_name, "class_name", MAX_NAME_LENGTH, allow_empty=True)
        identity = self._writer(name)
        self._probe_rivals(name, uri, class_name)
        with self.lock:
            rivals = [i for i in self.registry.get(name) if i.uri != uri and i.status in (SERVING, UNKNOWN)
                      and i.class_name != class_name]
            if rivals:
                raise _already_served(name, rivals[0])
            for stale in [i for i in self.registry.get(name)
                          if i.status in (NOT_SERVING, UNREACHABLE) and i.lease_expires is None]:
                self.registry.drop(name, stale.uri)
            self.registry.drop(name, uri)
            instance = Instance(name, uri, identity.who, class_name, lease_expires=time.monotonic() + ttl,
                                lease_ttl=ttl, status=SERVING, last_seen=time.time())
            self.registry.add(instance)
            self._sync_primary(name, tags, identity.who)
        if log.isEnabledFor(logging.INFO):
            log.info("%s registered %s -> %s (lease %.0f s)", _who(identity), _quote(name), uri, ttl)
        return {"ttl": ttl, "uri": uri}

    def lonja_renew(self, entries: builtins.list[builtins.list[str]],
                    ttl: float | None = None) -> builtins.list[builtins.list[str]]:
        """Renew the leases of these (name, uri) instances; returns the ones this server doesn't know."""
        pairs = _check_entries(entries)
        ttl = self._check_ttl(ttl)
        identity = self._identity()
        unknown = []
        with self.lock:
            for name, uri in pairs:
                instance = self.registry.find(name, uri)
                if instance is None or instance.lease_expires is None or not self._may_change(identity, name):
                    unknown.append([name, uri])
                    continue
                instance.lease_expires = time.monotonic() + ttl
                if instance.status != NOT_SERVING:
                    self.registry.set_status(instance, SERVING)
        return unknown

    def lonja_set_status(self, name: str, uri: str, status: str) -> None:
        """Mark one instance serving or not serving (a host does this first when it shuts down)."""
        if not isinstance(status, str) or status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        name, uri = _check_name(name), _check_uri(uri)
        identity = self._writer(name)
        with self.lock:
            instance = self.registry.find(name, uri)
            if instance is None:
                raise Pyro5.errors.NamingError(f"unknown instance {uri} of {_quote(name)}")
            self.registry.set_status(instance, status)
            self._sync_primary(name)
        log.info("%s marked %s at %s %s", _who(identity), _quote(name), uri, status)

    def lonja_unregister(self, name: str, uri: str) -> bool:
        """Remove one instance of `name`; the name goes when its last instance does."""
        name, uri = _check_name(name), _check_uri(uri)
        identity = self._writer(name)
        with self.lock:
            removed = self.registry.drop(name, uri) is not None
            if not removed and name in self.storage and self.storage[name][0] == uri:
                removed = True
            self._sync_primary(name)
        if removed:
            log.info("%s unregistered %s at %s", _who(identity), _quote(name), uri)
        return removed

    def lonja_list(self, prefix: str | None = None) -> dict[str, dict[str, Any]]:
        """Every name (starting with `prefix`) with its metadata and instances (status, last seen).

        Owners are shown to admins (and to everyone while access control is off) only.
        """
        prefix = _check_text(prefix, "prefix", MAX_NAME_LENGTH, optional=True)
        show_owner = self._identity().role in MAINTAINERS
        with self.lock:
            listing = Pyro5.nameserver.NameServer.list(self, prefix=prefix or None, return_metadata=True)
            result = {}
            for name, (uri, metadata) in listing.items():
                instances = [i.describe(show_owner) for i in self.registry.get(name)]
                if name == NS_NAME:
                    instances = [{"uri": str(uri), "status": SERVING, "last_seen": time.time(), "lease": False,
                                  "class": "Pyro5.nameserver.NameServer", "owner": ""}]
                result[name] = {"uri": str(uri), "metadata": sorted(_public(metadata)), "instances": instances}
            return result

    def lonja_instances(self, name: str) -> builtins.list[str]:
        """URIs of the serving instances of `name` (those not checked yet if none is known to serve).

        Unreachable and not-serving instances are left out; if that leaves none, a NamingError says so.
        """
        name = _check_name(name)
        with self.lock:
            instances = self.registry.get(name)
            for status in (SERVING, UNKNOWN):
                uris = [i.uri for i in instances if i.status == status]
                if uris:
                    return uris
            if instances:
                counts = collections.Counter(i.status for i in instances)
                raise Pyro5.errors.NamingError(f"no serving instance of {_quote(name)} (" +
                                               ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
                                               + ")")
            if name in self.storage:
                return [self.storage[name][0]]
        raise Pyro5.errors.NamingError("unknown name: " + _quote(name))

    def lonja_changes(self, since: int = 0, timeout: float = 5.0, prefix: str = "",
                      names: Iterable[str] | None = None) -> dict[str, Any]:
        """Changes (added, removed, status) after number `since`, waiting up to `timeout` s (at most 60);
        only those of names with `prefix` and, if `names` is given, of those names."""
        if isinstance(since, bool) or not isinstance(since, int):
            raise TypeError(f"since must be an int, not {type(since).__name__}")
        timeout = _check_seconds(timeout, "timeout", allow_zero=True)
        prefix = _check_text(prefix, "prefix", MAX_NAME_LENGTH, optional=True, allow_empty=True)
        return self.registry.log.since(since, timeout, prefix or "", _check_names(names))

    def lonja_whoami(self) -> dict[str, str]:
        identity = self._identity()
        return {"who": identity.who, "role": identity.role}

    # -- health ---------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Maintenance (admins only, remotely): expire leases now and start the probes that are due.

        Never waits for a probe: at most PROBE_WORKERS run at once, on threads kept for them (made on
        first need), at most PROBE_BACKLOG wait for them, one per instance at a time, those due longest
        first, PROBES_PER_SECOND at most; their results are applied when they end. Probes start after
        the registry's lock is released, so registrations and lookups never wait for them.
        """
        if self._identity().role not in MAINTAINERS:
            raise Pyro5.errors.NamingError("sweep is a maintenance method: it needs a token with the admin role")
        now = time.monotonic()
        due: builtins.list[Instance] = []
        with self.lock:
            for instance in self.registry.all():
                try:
                    self._sweep_one(instance, now, due)
                except Exception:  # one bad entry must not stop the sweep
                    log.exception("sweep skipped %s at %s", _quote(instance.name), _quote(instance.uri))
            due.sort(key=lambda instance: instance.next_probe)
            budget = max(PROBE_WORKERS, int(PROBES_PER_SECOND * min(max(now - self._last_sweep, 0.0), 5.0)))
            self._last_sweep = now
            started = []
            for instance in due[:budget]:
                if not self._probe_slots.acquire(blocking=False):
                    break
                instance.next_probe = now + self.probe_interval
                instance.probing = threading.Event()
                started.append(instance)
        for instance in started:
            self._probers().submit(self._probe_in_background, instance)

    def _sweep_one(self, instance: Instance, now: float, due: builtins.list[Instance]) -> None:
        if instance.lease_expires is not None:
            if instance.lease_expires < now:
                log.info("lease of %s at %s expired", _quote(instance.name), instance.uri)
                self.registry.drop(instance.name, instance.uri)
                self._sync_primary(instance.name)
        elif instance.probing is None and instance.next_probe <= now:
            due.append(instance)

    def _probers(self) -> ThreadPoolExecutor:
        """The threads probes run on (PROBE_WORKERS at most), made on first need."""
        with self._probers_lock:
            if self._prober_pool is None:
                self._prober_pool = ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="lonja-ns-probe")
            return self._prober_pool

    def stop_probes(self) -> None:
        """Start no more probes; those running end within their timeout."""
        with self._probers_lock:
            pool, self._prober_pool = self._prober_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _probe_in_background(self, instance: Instance) -> None:
        try:
            result = self._run_probe(instance.uri)
        finally:
            self._probe_slots.release()
        self._finish_probe(instance, result)

    def _run_probe(self, uri: str) -> Probe | None:
        """The probe's verdict on `uri`, or None if the probe itself failed (then nothing changes)."""
        try:
            return self._probe(uri)
        except Exception:
            log.exception("probing %s failed", _quote(uri))
            return None

    def _finish_probe(self, instance: Instance, result: Probe | None) -> None:
        """Apply a probe's verdict (if the instance is still registered) and mark its probe ended."""
        with self.lock:
            try:
                if result is not None and self.registry.find(instance.name, instance.uri) is instance:
                    self._apply_probe(instance, result)
            except Exception:
                log.exception("applying a probe of %s at %s failed", _quote(instance.name), _quote(instance.uri))
            finally:
                if instance.probing is not None:
                    instance.probing.set()
                    instance.probing = None

    def _apply_probe(self, instance: Instance, result: Probe) -> None:
        now = time.monotonic()
        if result is Probe.ALIVE:
            # "not serving" that no failed probe set is its host's own word (it is shutting down): keep it
            if instance.status != NOT_SERVING or instance.failing_since is not None:
                self.registry.set_status(instance, SERVING)
            instance.failing_since = None
            instance.revalidate = False
        elif instance.lease_expires is not None:  # a leased rival that does not answer: its host is gone
            log.info("dropping %s at %s: it does not answer", _quote(instance.name), instance.uri)
            self.registry.drop(instance.name, instance.uri)
        else:
            status = NOT_SERVING if result is Probe.MISSING else UNREACHABLE
            if instance.status != status or instance.failing_since is None:
                instance.failing_since = now
            self.registry.set_status(instance, status)
            if result is Probe.MISSING:
                grace = 0.0 if instance.revalidate else self.probe_grace
            else:
                grace = self.unreachable_grace
            if now - instance.failing_since >= grace:
                log.info("removing %s at %s: %s for %.0f s", _quote(instance.name), instance.uri,
                         "its object is gone" if result is Probe.MISSING else "unreachable",
                         now - instance.failing_since)
                self.registry.drop(instance.name, instance.uri)
        self._sync_primary(instance.name)

    # -- internals ------------------------------------------------------------------------------------

    def _register_self(self, uri: Any, metadata: set[str]) -> None:
        """The name server's own entry: written once by its daemon, never by a client."""
        super().register(NS_NAME, uri, metadata=metadata)

    def _load_storage(self) -> int:
        """Take in the entries that survived a restart; returns how many.

        A leased one gets a fresh lease (its host renews it, or it expires); a plain one is probed at
        the first sweep, and dropped at once if its daemon says the object is gone.
        """
        now = time.monotonic()
        loaded = 0
        for name, (uri, metadata) in self.storage.everything(return_metadata=True).items():
            if name == NS_NAME:
                continue
            instance = Instance(name, str(uri), _owner_of(metadata) or "", _class_of(metadata), revalidate=True)
            ttl = _lease_of(metadata)
            if ttl is not None:
                instance.lease_expires, instance.lease_ttl = now + ttl, ttl
            self.registry.add(instance)
            loaded += 1
        return loaded

    def _refuse_if_leased(self, name: str) -> None:
        """A plain registration must not take over a name a live lonja host serves under a lease."""
        now = time.monotonic()
        for instance in self.registry.each(name):
            if instance.lease_expires is not None and instance.lease_expires >= now and \
                    instance.status != NOT_SERVING:
                raise _already_served(name, instance)

    def _probe_rivals(self, name: str, uri: str, class_name: str) -> None:
        """Before refusing a name, check that its holders of another class are alive; drop the dead ones.

        A holder already being probed is not probed again: its probe is waited for instead.
        """
        with self.lock:
            rivals = [i for i in self.registry.get(name) if i.uri != uri and i.class_name != class_name
                      and i.status in (SERVING, UNKNOWN)]
            ours, theirs = [], []
            for instance in rivals:
                if instance.probing is None:
                    instance.probing = threading.Event()
                    ours.append(instance)
                else:
                    theirs.append(instance.probing)
        for instance in ours:
            self._finish_probe(instance, self._run_probe(instance.uri))
        deadline = time.monotonic() + PROBE_TIMEOUT + 1.0
        for probing in theirs:
            probing.wait(max(0.0, deadline - time.monotonic()))

    def _sync_primary(self, name: str, tags: set[str] | None = None, owner: str | None = None) -> None:
        """Keep Pyro5's storage entry for `name` pointing at a serving instance, or remove it.

        `tags` replaces the public tags and `owner` the owner; by default both stay as stored. The
        stored entry also says whether its instance holds a lease, so a restart can tell.
        """
        primary = self.registry.primary(name)
        stored = self.storage.get(name)
        if primary is None:
            if stored is not None and name != NS_NAME:
                del self.storage[name]
            return
        public = tags if tags is not None else (_public(stored[1]) if stored else set())
        if owner is None:
            owner = (_owner_of(stored[1]) if stored else None) or primary.owner
        wanted = set(public) | {OWNER_TAG + owner}
        if primary.lease_expires is not None:
            wanted.add(f"{LEASE_TAG}{primary.lease_ttl:g}")
        if stored is None or stored[0] != primary.uri or set(stored[1]) != wanted:
            self.storage[name] = (primary.uri, wanted)

    def _check_ttl(self, ttl: Any) -> float:
        """A lease in seconds: the default for None, a positive finite number put within [MIN_TTL, MAX_TTL]."""
        if ttl is None:
            ttl = self.lease_ttl
        return min(max(_check_seconds(ttl, "ttl"), MIN_TTL), MAX_TTL)

    def _identity(self) -> Identity:
        client = getattr(current_context, "client", None)
        return getattr(client, "lonja_identity", ANONYMOUS_OPEN)

    def _writer(self, name: str) -> Identity:
        identity = self._identity()
        self._check_write(identity, name)
        return identity

    def _check_role(self, identity: Identity) -> None:
        if not identity.can_write:
            raise Pyro5.errors.SecurityError(
                f"{identity.who} ({identity.role}) may not change names: this needs a token with the "
                f"service or admin role (auth.token)")

    def _check_write(self, identity: Identity, name: str) -> None:
        if name == NS_NAME:
            raise Pyro5.errors.SecurityError("the name server's own entry cannot be changed")
        self._check_role(identity)
        if not self._may_change(identity, name):
            raise Pyro5.errors.SecurityError(
                f"{identity.who} may not change {_quote(name)}: it was registered by {self._owner(name)}")

    def _may_change(self, identity: Identity, name: str) -> bool:
        if identity.role in MAINTAINERS:
            return True
        owner = self._owner(name)
        return owner in (None, "", identity.who)

    def _owner(self, name: str) -> str | None:
        """Who registered `name` ("" if nobody is recorded), or None if it is not registered."""
        if name not in self.storage:
            return None
        return _owner_of(self.storage[name][1]) or ""


def probe_object(uri: str, timeout: float = PROBE_TIMEOUT) -> Probe:
    """Whether the object behind `uri` is there, in at most about `timeout` seconds.

    First a TCP (or Unix socket) connect: if it fails, UNREACHABLE. Then its daemon is asked for the
    object's metadata: a DaemonError ("unknown object") means MISSING. Anything else counts as ALIVE:
    a busy single-threaded server that cannot answer in time, or one refusing our handshake, is there.
    A PYRONAME or PYROMETA alias is not probed (ALIVE).
    """
    deadline = time.monotonic() + timeout
    try:
        parsed = Pyro5.core.URI(uri)
    except Pyro5.errors.PyroError:
        return Probe.MISSING
    if parsed.protocol != "PYRO":
        return Probe.ALIVE
    try:
        Pyro5.socketutil.create_socket(connect=parsed.sockname or (parsed.host, parsed.port),
                                       timeout=timeout).close()
    except OSError:
        return Probe.UNREACHABLE
    daemon = Pyro5.client.Proxy(f"PYRO:{Pyro5.core.DAEMON_NAME}@{parsed.location}")
    daemon._pyroTimeout = max(deadline - time.monotonic(), 0.1)
    try:
        daemon.get_metadata(parsed.object)
        return Probe.ALIVE
    except Pyro5.errors.DaemonError:
        return Probe.MISSING
    except Exception:
        return Probe.ALIVE
    finally:
        daemon._pyroRelease()


# -- argument checks: every remote argument passes one of these before it is stored or logged -----------

def _quote(text: str, limit: int = 80) -> str:
    """`text` for a message or log line: as is if short and printable, else escaped and cut with an ellipsis."""
    if len(text) <= limit and text.isprintable():
        return text
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _check_text(value: Any, what: str, limit: int, *, optional: bool = False, allow_empty: bool = False) -> Any:
    """`value` if it is a str of valid Unicode (it can be stored and sent), at most `limit` characters long."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value and not (allow_empty or optional):
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} is too long ({len(value)} characters, at most {limit}): {_quote(value)}")
    if value.isascii():  # ASCII is always valid Unicode; only other text needs the encoding test
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (it has a lone surrogate): {_quote(value)}") from None
    return value


def _check_name(name: Any) -> str:
    return _check_text(name, "name", MAX_NAME_LENGTH)


def _check_uri(uri: Any) -> str:
    """`uri` (a str or a Pyro5 URI) as a str, if Pyro5 can parse it."""
    return _parse_uri(uri)[0]


def _parse_uri(uri: Any) -> tuple[str, Pyro5.core.URI]:
    """`uri` (a str or a Pyro5 URI) as a str and as Pyro5 parses it."""
    if isinstance(uri, Pyro5.core.URI):
        uri = str(uri)
    _check_text(uri, "uri", MAX_URI_LENGTH)
    try:
        return uri, Pyro5.core.URI(uri)
    except Pyro5.errors.PyroError:  # the error type Pyro5's own name server raises for it
        raise Pyro5.errors.PyroError(f"invalid uri: {_quote(uri)}") from None


def _check_tags(tags: Any, what: str) -> set[str]:
    """A collection of str tags (None: no tags) as a set; one str is refused, as Pyro5 does."""
    if tags is None:
        return set()
    if not isinstance(tags, (list, tuple, collections.abc.Set)):
        raise TypeError(f"{what} must be a collection of str tags (a list, tuple or set), not {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{what} has too many tags ({len(tags)}, at most {MAX_TAGS})")
    return {_check_text(tag, f"a tag of {what}", MAX_TAG_LENGTH, allow_empty=True) for tag in tags}


def _check_seconds(value: Any, what: str, allow_zero: bool = False) -> float:
    """A finite number of seconds, positive (or zero, if allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{what} must be a finite {'' if allow_zero else 'positive '}number of seconds, "
                         f"not {_quote(repr(value))}")
    return seconds


def _check_names(names: Any) -> frozenset[str] | None:
    """lonja_changes' `names`: None (every name), or a collection of at most MAX_WATCHED names."""
    if names is None:
        return None
    if not isinstance(names, (list, tuple, collections.abc.Set)):
        raise TypeError(f"names must be a list of names, not {type(names).__name__}")
    if len(names) > MAX_WATCHED:
        raise ValueError(f"too many names to watch at once ({len(names)}, at most {MAX_WATCHED})")
    return frozenset(_check_name(name) for name in names)


def _check_entries(entries: Any) -> list[tuple[str, str]]:
    """lonja_renew's argument: a list of (name, uri) pairs."""
    if not isinstance(entries, (list, tuple)):
        raise TypeError(f"entries must be a list of [name, uri] pairs, not {type(entries).__name__}")
    if len(entries) > MAX_RENEWALS:
        raise ValueError(f"too many entries to renew at once ({len(entries)}, at most {MAX_RENEWALS})")
    pairs = []
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise TypeError("entries must be a list of [name, uri] pairs")
        pairs.append((_check_name(entry[0]), _check_uri(entry[1])))
    return pairs


# -- tags ---------------------------------------------------------------------------------------------

def _hidden(tag: str) -> bool:
    return tag.startswith(HIDDEN_TAGS)


def _public(metadata: Iterable[str]) -> set[str]:
    """Metadata as clients see it: without the tags the name server keeps for itself."""
    return {tag for tag in metadata if not _hidden(tag)}


def _owner_of(tags: Iterable[str]) -> str | None:
    for tag in tags:
        if tag.startswith(OWNER_TAG):
            return tag[len(OWNER_TAG):]
    return None


def _lease_of(tags: Iterable[str]) -> float | None:
    """The lease (seconds) a stored entry was registered with, or None for a plain registration."""
    for tag in tags:
        if tag.startswith(LEASE_TAG):
            try:
                ttl = float(tag[len(LEASE_TAG):])
            except ValueError:
                ttl = MIN_TTL
            return min(max(ttl, MIN_TTL), MAX_TTL) if math.isfinite(ttl) else MIN_TTL
    return None


def _class_of(tags: Iterable[str]) -> str:
    for tag in tags:
        if tag.startswith(CLASS_TAG):
            return tag[len(CLASS_TAG):]
    return ""


def _already_served(name: str, instance: Instance) -> NameAlreadyServed:
    return NameAlreadyServed(name, instance.uri, instance.class_name,
                             advice="stop that server, or use another name")


def _who(identity: Identity) -> str:
    return f"{identity.who} ({identity.role})"
