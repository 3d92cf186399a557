"""Objects by reference on a service host (issue 10 §1–§2): what a reference in a call's arguments becomes.

Pyro5 rebuilds every proxy that arrives as a plain Pyro5 proxy, pinned to the thread that uses it, even one
that points back at an object of the very daemon it arrived at. While a lonja host decodes a request
(`decoding`), a proxy that arrives is instead:
- the object itself, when it refers to an object this daemon hosts (a reference passed back home);
- otherwise a lonja proxy (`lonja.clients.references`): for a shared object elsewhere, or a client's
  callback object, one that holds it while the service keeps the proxy.
Outside that block (a service's own Pyro5 calls), a proxy is decoded as Pyro5 decodes it.

What a host sends by reference, and the leases that keep it, are `lonja.config.sharing`'s.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from Pyro5.client import Proxy
from Pyro5.serializers import SerializerBase
from Pyro5.server import _unpack_weakref

from lonja.config.sharing import PROXY_CLASS, REFERENCE_PREFIX

_decoding = threading.local()


class decoding:
    """While `daemon` decodes a request in this block, proxies in it arrive as described above.

    A class rather than a generator: it is entered on every request, and costs less this way."""

    __slots__ = ("daemon",)

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon

    def __enter__(self) -> None:
        _decoding.daemon = self.daemon

    def __exit__(self, *exc_info: Any) -> None:
        _decoding.daemon = None


def install_reference_decoder() -> None:
    """Decode Pyro5 proxies with `_proxy_from_dict` (idempotent)."""
    SerializerBase.register_dict_to_class(PROXY_CLASS, _proxy_from_dict)


def _proxy_from_dict(classname: str, data: dict[str, Any]) -> Any:
    proxy = Proxy.__new__(Proxy)
    proxy.__setstate__(data["state"])
    daemon = getattr(_decoding, "daemon", None)
    if daemon is None:
        return proxy
    uri = proxy._pyroUri
    if uri.protocol == "PYRO" and uri.location in (daemon.locationStr, daemon.natLocationStr):
        obj = _unpack_weakref(daemon.objectsById.get(uri.object))
        if obj is not None and not inspect.isclass(obj):
            if uri.object.startswith(REFERENCE_PREFIX):
                daemon.shared.claim(uri.object)
            return obj
    from lonja.clients.references import reference_proxy

    return reference_proxy(proxy)
