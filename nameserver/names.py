"""The name server object: Pyro5's NameServer plus leases, health, watching, instances and access control.

Everything a plain Pyro5 client or `pyro5-nsc` calls (register, lookup, list, remove, set_metadata,
yplookup, count, ping) works as before, with two differences: writes are checked against the caller's
identity, and nobody may overwrite or remove the name server's own entry. lonja's own hosts and clients
use the `lonja_*` methods below.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

import Pyro5.client
import Pyro5.core
import Pyro5.errors
import Pyro5.nameserver
import Pyro5.server
from Pyro5.callcontext import current_context

from lonja.config.auth import ANONYMOUS_OPEN, Identity

from .registry import NOT_SERVING, SERVING, Instance, Registry

log = logging.getLogger("lonja.nameserver")

OWNER_TAG = "lonja:owner="
CLASS_TAG = "class:"
NS_NAME = Pyro5.core.NAMESERVER_NAME
STATUSES = (SERVING, NOT_SERVING)


@Pyro5.server.expose
class LonjaNameServer(Pyro5.nameserver.NameServer):
    """Pyro5's name server with instances, leases, health checks, a change log and per-name owners."""

    def __init__(self, storage: Any, *, lease_ttl: float = 10.0, probe_interval: float = 5.0,
                 probe_grace: float = 15.0, probe: Callable[[str], bool] | None = None) -> None:
        super().__init__(storage)
        self.lease_ttl = lease_ttl
        self.probe_interval = probe_interval
        self.probe_grace = probe_grace
        self._probe = probe or probe_object
        self.registry = Registry()
        self._load_storage()

    # -- Pyro5's API, with access control -------------------------------------------------------------

    def register(self, name: str, uri: Any, safe: bool = False, metadata: Iterable[str] | None = None) -> None:
        """Pyro5's register: one plain instance under `name` (checked by probing, not by a lease)."""
        identity = self._writer(name)
        with self.lock:
            tags = self._tags(metadata, identity)
            super().register(name, uri, safe=safe, metadata=tags)
            self.registry.drop_name(name)
            self.registry.add(Instance(name, str(uri), identity.who, _class_of(tags), next_probe=0.0))
        log.info("%s registered %s -> %s", _who(identity), name, uri)

    def remove(self, name: str | None = None, prefix: str | None = None, regex: str | None = None) -> int:
        """Pyro5's remove; a service may only remove the names it registered."""
        identity = self._identity()
        with self.lock:
            if name is not None:
                names = [name] if name in self.storage else []
            else:
                names = list(Pyro5.nameserver.NameServer.list(self, prefix=prefix, regex=regex))
            names = [n for n in names if n != NS_NAME]
            for each in names:
                self._check_write(identity, each)
            for each in names:
                del self.storage[each]
                self.registry.drop_name(each)
        if names:
            log.info("%s removed %s", _who(identity), ", ".join(names))
        return len(names)

    def lookup(self, name: str, return_metadata: bool = False) -> Any:
        result = super().lookup(name, return_metadata)
        return (result[0], _public(result[1])) if return_metadata else result

    def list(self, prefix: str | None = None, regex: str | None = None, return_metadata: bool = False) -> Any:
        result = super().list(prefix, regex, return_metadata)
        if return_metadata:
            return {name: (uri, _public(metadata)) for name, (uri, metadata) in result.items()}
        return result

    def yplookup(self, meta_all: Any = None, meta_any: Any = None, return_metadata: bool = True) -> Any:
        result = super().yplookup(meta_all, meta_any, return_metadata)
        if return_metadata:
            return {name: (uri, _public(metadata)) for name, (uri, metadata) in result.items()}
        return result

    def set_metadata(self, name: str, metadata: Iterable[str] | None) -> None:
        identity = self._writer(name)
        with self.lock:
            owner = self._owner(name) or identity.who
            super().set_metadata(name, self._tags(metadata, Identity(owner, identity.role)))
        log.info("%s set the metadata of %s", _who(identity), name)

    # -- lonja's API ----------------------------------------------------------------------------------

    def lonja_register(self, name: str, uri: str, metadata: Iterable[str] | None = None,
                       ttl: float | None = None, class_name: str = "") -> dict[str, Any]:
        """Register one instance of `name` with a lease; a second host of the same class joins it.

        A different class under a name that is still served is refused. Returns the lease in seconds.
        """
        identity = self._writer(name)
        ttl = min(max(float(ttl or self.lease_ttl), 1.0), 3600.0)
        self._probe_rivals(name, uri, class_name)
        with self.lock:
            rivals = [i for i in self.registry.get(name) if i.uri != uri and i.status != NOT_SERVING
                      and i.class_name != class_name]
            if rivals:
                raise Pyro5.errors.NamingError(
                    f"the name {name!r} is already served by {rivals[0].uri} ({rivals[0].class_name or 'another class'})"
                    f": stop that server, or use another name")
            for stale in [i for i in self.registry.get(name) if i.status == NOT_SERVING and i.lease_expires is None]:
                self.registry.drop(name, stale.uri)
            tags = self._tags(metadata, identity)
            self.registry.drop(name, uri)
            instance = Instance(name, uri, identity.who, class_name, lease_expires=time.monotonic() + ttl,
                                status=SERVING, last_seen=time.time())
            self.registry.add(instance)
            self._sync_primary(name, tags)
        log.info("%s registered %s -> %s (lease %.0f s)", _who(identity), name, uri, ttl)
        return {"ttl": ttl}

    def lonja_renew(self, entries: list[list[str]], ttl: float | None = None) -> list[list[str]]:
        """Renew the leases of these (name, uri) instances; returns the ones this server doesn't know."""
        identity = self._identity()
        ttl = min(max(float(ttl or self.lease_ttl), 1.0), 3600.0)
        unknown = []
        with self.lock:
            for name, uri in entries:
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
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        identity = self._writer(name)
        with self.lock:
            instance = self.registry.find(name, uri)
            if instance is None:
                raise Pyro5.errors.NamingError(f"unknown instance {uri} of {name!r}")
            self.registry.set_status(instance, status)
            self._sync_primary(name)
        log.info("%s marked %s at %s %s", _who(identity), name, uri, status)

    def lonja_unregister(self, name: str, uri: str) -> bool:
        """Remove one instance of `name`; the name goes when its last instance does."""
        identity = self._writer(name)
        with self.lock:
            removed = self.registry.drop(name, uri) is not None
            if not removed and name in self.storage and self.storage[name][0] == uri:
                removed = True
            self._sync_primary(name)
        if removed:
            log.info("%s unregistered %s at %s", _who(identity), name, uri)
        return removed

    def lonja_list(self, prefix: str | None = None) -> dict[str, dict[str, Any]]:
        """Every name (starting with `prefix`) with its metadata and instances (status, last seen)."""
        with self.lock:
            listing = Pyro5.nameserver.NameServer.list(self, prefix=prefix or None, return_metadata=True)
            result = {}
            for name, (uri, metadata) in listing.items():
                instances = [i.describe() for i in self.registry.get(name)]
                if name == NS_NAME:
                    instances = [{"uri": str(uri), "status": SERVING, "last_seen": time.time(), "lease": False,
                                  "class": "Pyro5.nameserver.NameServer", "owner": ""}]
                result[name] = {"uri": str(uri), "metadata": sorted(_public(metadata)), "instances": instances}
            return result

    def lonja_instances(self, name: str) -> list[str]:
        """URIs of the serving instances of `name` (the stored one if none is known to serve)."""
        with self.lock:
            serving = [i.uri for i in self.registry.serving(name)]
            if serving:
                return serving
            if name in self.storage:
                return [self.storage[name][0]]
        raise Pyro5.errors.NamingError("unknown name: " + name)

    def lonja_changes(self, since: int = 0, timeout: float = 5.0, prefix: str = "") -> dict[str, Any]:
        """Changes (added, removed, status) after number `since`, waiting up to `timeout` s for one."""
        return self.registry.log.since(int(since), float(timeout), prefix or "")

    def lonja_whoami(self) -> dict[str, str]:
        identity = self._identity()
        return {"who": identity.who, "role": identity.role}

    # -- health ---------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Drop instances whose lease expired; probe unleased ones and drop those dead past the grace."""
        now = time.monotonic()
        with self.lock:
            touched = set()
            for instance in self.registry.all():
                if instance.lease_expires is not None and instance.lease_expires < now:
                    log.info("lease of %s at %s expired", instance.name, instance.uri)
                    self.registry.drop(instance.name, instance.uri)
                    touched.add(instance.name)
            due = [i for i in self.registry.all() if i.lease_expires is None and i.next_probe <= now]
            for instance in due:
                instance.next_probe = now + self.probe_interval
            for name in touched:
                self._sync_primary(name)
        results = [(instance, self._probe(instance.uri)) for instance in due]
        now = time.monotonic()
        with self.lock:
            for instance, alive in results:
                if self.registry.find(instance.name, instance.uri) is not instance:
                    continue
                if alive:
                    instance.failing_since = None
                    instance.revalidate = False
                    self.registry.set_status(instance, SERVING)
                    continue
                instance.failing_since = instance.failing_since or now
                self.registry.set_status(instance, NOT_SERVING)
                grace = 0.0 if instance.revalidate else self.probe_grace
                if now - instance.failing_since >= grace:
                    log.info("removing %s at %s: its object does not answer", instance.name, instance.uri)
                    self.registry.drop(instance.name, instance.uri)
                self._sync_primary(instance.name)

    # -- internals ------------------------------------------------------------------------------------

    def _register_self(self, uri: Any, metadata: set[str]) -> None:
        """The name server's own entry: written once by its daemon, never by a client."""
        super().register(NS_NAME, uri, metadata=metadata)

    def _load_storage(self) -> None:
        """Entries that survived a restart are checked at once: dead ones go at the first sweep."""
        for name, (uri, metadata) in self.storage.everything(return_metadata=True).items():
            if name != NS_NAME:
                self.registry.add(Instance(name, str(uri), "", _class_of(metadata), revalidate=True))

    def _probe_rivals(self, name: str, uri: str, class_name: str) -> None:
        """Before refusing a name, check that its holders of another class are alive; drop the dead ones."""
        with self.lock:
            rivals = [i for i in self.registry.get(name) if i.uri != uri and i.class_name != class_name]
        for instance in rivals:
            alive = self._probe(instance.uri)
            with self.lock:
                if self.registry.find(name, instance.uri) is not instance:
                    continue
                if alive:
                    self.registry.set_status(instance, SERVING)
                else:
                    log.info("dropping %s at %s: its object does not answer", name, instance.uri)
                    self.registry.drop(name, instance.uri)
                    self._sync_primary(name)

    def _sync_primary(self, name: str, tags: set[str] | None = None) -> None:
        """Keep Pyro5's storage entry for `name` pointing at a serving instance, or remove it."""
        primary = self.registry.primary(name)
        stored = self.storage[name] if name in self.storage else None
        if primary is None:
            if stored is not None and name != NS_NAME:
                del self.storage[name]
            return
        metadata = tags if tags is not None else (set(stored[1]) if stored else set())
        if stored is None or stored[0] != primary.uri or tags is not None:
            self.storage[name] = (primary.uri, metadata)

    def _identity(self) -> Identity:
        client = getattr(current_context, "client", None)
        return getattr(client, "lonja_identity", ANONYMOUS_OPEN)

    def _writer(self, name: str) -> Identity:
        identity = self._identity()
        self._check_write(identity, name)
        return identity

    def _check_write(self, identity: Identity, name: str) -> None:
        if name == NS_NAME:
            raise Pyro5.errors.SecurityError("the name server's own entry cannot be changed")
        if not identity.can_write:
            raise Pyro5.errors.SecurityError(
                f"{identity.who} ({identity.role}) may not change names: this needs a token with the "
                f"service or admin role (auth.token)")
        if not self._may_change(identity, name):
            raise Pyro5.errors.SecurityError(
                f"{identity.who} may not change {name!r}: it was registered by {self._owner(name)}")

    def _may_change(self, identity: Identity, name: str) -> bool:
        if identity.role in ("admin", "open"):
            return True
        owner = self._owner(name)
        return owner in (None, "", identity.who)

    def _owner(self, name: str) -> str | None:
        if name not in self.storage:
            return None
        for tag in self.storage[name][1]:
            if tag.startswith(OWNER_TAG):
                return tag[len(OWNER_TAG):]
        return ""

    def _tags(self, metadata: Iterable[str] | None, identity: Identity) -> set[str]:
        if isinstance(metadata, str):
            raise TypeError("metadata must be a collection of tags, not one string")
        tags = {t for t in (metadata or ()) if not t.startswith(OWNER_TAG)}
        tags.add(OWNER_TAG + identity.who)
        return tags


def probe_object(uri: str, timeout: float = 2.0) -> bool:
    """True if the object behind `uri` exists on a running daemon: a handshake for that object succeeds."""
    proxy = Pyro5.client.Proxy(uri)
    proxy._pyroTimeout = timeout
    try:
        proxy._pyroBind()
        return True
    except Exception:
        return False
    finally:
        proxy._pyroRelease()


def _public(metadata: Iterable[str]) -> set[str]:
    """Metadata as clients see it: without the owner tag the name server keeps for itself."""
    return {tag for tag in metadata if not tag.startswith(OWNER_TAG)}


def _class_of(tags: Iterable[str]) -> str:
    for tag in tags:
        if tag.startswith(CLASS_TAG):
            return tag[len(CLASS_TAG):]
    return ""


def _who(identity: Identity) -> str:
    return f"{identity.who} ({identity.role})"
