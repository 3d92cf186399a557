"""The name server's check on where a registered URI points, so that another host never gets a URI it
cannot use.

A registration that arrives from another host (a peer that is neither loopback nor this host's own
address on that connection) and whose URI's host is a loopback address (127.x, ::1, `localhost`) or a
wildcard (0.0.0.0, ::) is refused with one line saying what to pass instead: every client on another
machine would be sent to itself. With `ns.correct_uris` on, such a URI is corrected instead: its host
becomes the address the registration came from (the connection's peer), and one line is logged. The same
URI registered from this host is fine (a one-machine setup).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Any

import Pyro5.core
import Pyro5.errors
from Pyro5.callcontext import current_context

from lonja.config.addresses import is_loopback, is_unreachable_from_elsewhere, is_wildcard

log = logging.getLogger("lonja.nameserver")


class UnreachableURI(Pyro5.errors.SecurityError):
    """A registration from another host whose URI points at a loopback or wildcard address.

    A Pyro5 error, so it travels to every client as a SecurityError with this message (lonja clients
    raise AccessDenied with it).
    """


def checked_uri(name: str, uri: str, parsed: Pyro5.core.URI, correct: bool = False) -> str:
    """`uri` (`parsed` is Pyro5's parse of it), unless the caller is on another host and `uri` points at
    loopback or a wildcard: then, with `correct`, `uri` with the caller's address as its host (logged);
    without, UnreachableURI."""
    host = parsed.host
    if host is None or not is_unreachable_from_elsewhere(host):
        return uri
    peer = _peer_ip(getattr(current_context, "client_sock_addr", None))
    if peer is None or is_loopback(peer) or peer == _local_ip(getattr(current_context, "client", None)):
        return uri
    if not correct:
        raise UnreachableURI(refusal(name, uri, host, peer))
    parsed.host = peer
    corrected = str(parsed)
    log.warning("corrected %r at %s, registered from %s, to %s (ns.correct_uris)", name, uri, peer, corrected)
    return corrected


def refusal(name: str, uri: str, host: str, peer: str) -> str:
    """The one-line message for `name` at `uri` registered from `peer`."""
    what = "a wildcard, not an address" if is_wildcard(host) else "a loopback address"
    return (f"{name!r} at {uri} was registered from {peer}, but {host} is {what}: other hosts cannot reach "
            f"it. Start the service with --host 0.0.0.0 (every interface; {peer} is then advertised) or "
            f"--host {peer}, or --advertise HOST[:PORT] with an address other hosts reach")


def _peer_ip(peer_address: Any) -> str | None:
    """The caller's IP address (None where unknown)."""
    return _plain(peer_address[0]) if isinstance(peer_address, tuple) and peer_address else None


def _local_ip(conn: Any) -> str | None:
    """This side's IP address of the caller's connection (None where unknown): asked only when the caller
    is not on loopback, since it costs a system call."""
    try:
        return _plain(conn.sock.getsockname()[0])
    except (AttributeError, OSError, IndexError, TypeError):
        return None


@functools.lru_cache(maxsize=1024)
def _plain(ip: str) -> str:
    """An IPv4-mapped IPv6 address (a dual-stack socket's peer) as the IPv4 address it is."""
    try:
        mapped = getattr(ipaddress.ip_address(ip), "ipv4_mapped", None)
    except ValueError:
        return ip
    return str(mapped) if mapped else ip
