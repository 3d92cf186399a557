"""Bind and advertise: which address goes into a URI, so that other hosts can use it.

A server binds one address (`--host`; `0.0.0.0` or `::` for every interface) and advertises another in
its URIs when told to (`--advertise HOST[:PORT]`, for NAT and containers). Bound to a wildcard without
`--advertise`, a service advertises the address of its own interface that reaches the name server (the
local address the kernel picks for a connection to it), and a name server the first address of an
interface that is not loopback: never `0.0.0.0`, `::` or (unless the machine has nothing else) a
loopback address. Pyro5's daemon writes the advertised address into URIs through its `nathost` and
`natport` parameters (`natport` 0: the port it is bound to).
"""

from __future__ import annotations

import array
import fcntl
import functools
import ipaddress
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import ConfigError
from .pyro import import_pyro
from .settings import parse_address

WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


def is_wildcard(host: str) -> bool:
    """True for an address that means "every interface"."""
    return host.strip("[]") in WILDCARDS


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, ::ffff:127.x) or the name `localhost`.

    Cached: the name server asks it of every registration, and parsing an address costs ~10 µs.
    """
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def is_unreachable_from_elsewhere(host: str) -> bool:
    """True if a URI with this host cannot work for a caller on another machine."""
    return is_wildcard(host) or is_loopback(host)


def parse_advertise(text: str, what: str) -> tuple[str, int]:
    """"HOST[:PORT]" as (host, port); port 0 when left out (the port the server is bound to)."""
    host, port = parse_address(text, what, default_port=0)
    if is_wildcard(host):
        raise ConfigError(f"{what} {text!r} is a wildcard: advertise an address other hosts can reach, "
                          f"e.g. this host's LAN address")
    return host, port


def local_address_towards(host: str, port: int, family: int = socket.AF_UNSPEC) -> str | None:
    """The local address of this host's interface that reaches `host:port`, as a connection to it would
    use; None if there is no route. Nothing is sent (a UDP socket is only connected)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(sockaddr)
                return str(probe.getsockname()[0])
        except OSError:
            continue
    return None


def interface_addresses() -> list[str]:
    """The IPv4 addresses of this host's interfaces that are up, in interface order (Linux)."""
    return _per_interface(_SIOCGIFADDR)


def interface_broadcasts() -> list[str]:
    """The IPv4 broadcast addresses of this host's networks (from each interface's address and netmask;
    Linux; not loopback): where a UDP discovery request goes on a network without a default route, which
    255.255.255.255 needs."""
    found = []
    for name in _interface_names():
        address, netmask = _ioctl_address(name, _SIOCGIFADDR), _ioctl_address(name, _SIOCGIFNETMASK)
        if address is None or netmask is None or is_unreachable_from_elsewhere(address):
            continue
        network = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
        if network.prefixlen < 31:
            found.append(str(network.broadcast_address))
    return list(dict.fromkeys(found))


def _per_interface(request_code: int) -> list[str]:
    """One IPv4 address per interface that has one, from the ioctl `request_code`, in interface order."""
    return [address for name in _interface_names() if (address := _ioctl_address(name, request_code)) is not None]


def _interface_names() -> list[str]:
    return [name for _, name in socket.if_nameindex()]


def _ioctl_address(name: str, request_code: int) -> str | None:
    """The IPv4 address the ioctl `request_code` gives for interface `name` (None if it has none)."""
    request = array.array("B", struct.pack("256s", name.encode()[:15]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            fcntl.ioctl(sock.fileno(), request_code, request, True)
        except OSError:
            return None
    return socket.inet_ntoa(request.tobytes()[20:24])


def outward_address(towards: tuple[str, int] | None = None, family: int = socket.AF_UNSPEC) -> str:
    """The address a server bound to a wildcard advertises: the interface that reaches `towards` (the name
    server), else the first interface that is not loopback, else 127.0.0.1 (a machine with no network)."""
    local = local_address_towards(*towards, family=family) if towards is not None else None
    if local is not None and not is_unreachable_from_elsewhere(local):
        return local
    others = [address for address in interface_addresses() if not is_unreachable_from_elsewhere(address)]
    return others[0] if others else (local or "127.0.0.1")


def nat_options(bind: str, advertise: str, what: str, towards: tuple[str, int] | None = None) -> dict[str, Any]:
    """Pyro5 daemon keyword arguments (`nathost`, `natport`) for a server bound to `bind`.

    `advertise` ("HOST[:PORT]", "" for none) wins; without it, a wildcard bind advertises
    `outward_address(towards)` and any other bind advertises itself (no arguments).
    """
    if advertise:
        host, port = parse_advertise(advertise, what)
    elif is_wildcard(bind):
        family = socket.AF_INET if bind == "0.0.0.0" else socket.AF_UNSPEC
        host, port = outward_address(towards, family), 0
    else:
        return {}
    return {"nathost": f"[{host}]" if ":" in host else host, "natport": port}


@contextmanager
def pyro_nat(options: dict[str, Any]) -> Iterator[None]:
    """Inside the block, Pyro5 daemons built without `nathost` advertise `options` (from `nat_options`).

    For daemons built by code that takes no `nathost` argument (the name server's); Pyro5 reads the
    process-wide NATHOST and NATPORT items then, which are put back after the block.
    """
    cfg = import_pyro().config
    previous = cfg.NATHOST, cfg.NATPORT
    if options:
        cfg.NATHOST, cfg.NATPORT = options["nathost"], options["natport"]
    try:
        yield
    finally:
        cfg.NATHOST, cfg.NATPORT = previous
