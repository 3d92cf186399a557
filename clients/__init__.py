"""Calling services: `connect(name)` gives a proxy whose methods run remotely.

    from lonja.clients import connect, describe, ping
    with connect("echo") as echo:
        print(echo.echo("hi"))
        print(describe(echo)["methods"].keys(), ping(echo))

Every public name on a proxy is the service's (`echo.ping` is the service's method `ping`, if it has one);
lonja's own operations on a proxy are the functions `describe`, `ping`, `uri`, `instances`, `batch` and
`close` here. `share(obj)` (or a `@remote` class) passes a local object by reference: a callback the
service calls back, served by this process's callback endpoint (started on first need).

Futures from `.future()` are `concurrent.futures.Future`s, so `clients.wait` and `clients.as_completed`
are the standard library's.

The proxy machinery is imported on first use of one of its names, so that importing a light module of
this package (the `lonja` command's parser imports `lonja.clients.cli`) does not load it.
"""

from typing import Any

from lonja.config.lazy import lazy_attribute, lazy_dir

from .errors import (
    AccessDenied,
    ArgumentMismatch,
    CallTimeout,
    InterfaceMismatch,
    LonjaError,
    MessageTooLarge,
    NameNotFound,
    NameServerUnreachable,
    NoServingInstance,
    OutcomeUnknown,
    ReferenceGone,
    RemoteError,
    SerializationError,
    ServiceUnreachable,
    UsageError,
)

_LAZY = {**dict.fromkeys(("ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "as_completed", "wait"),
                         "concurrent.futures"),
         "Batch": ".batching", "NameServerClient": ".naming", "RemoteStream": ".stream",
         **dict.fromkeys(("remote", "share"), "lonja.config.sharing"), "shared_objects": ".references",
         **dict.fromkeys(("RemoteMethod", "ServiceProxy", "batch", "close", "connect", "describe", "instances",
                          "ping", "uri"), ".proxy")}

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "AccessDenied", "ArgumentMismatch", "Batch",
           "CallTimeout", "InterfaceMismatch", "LonjaError", "MessageTooLarge", "NameNotFound",
           "NameServerClient", "NameServerUnreachable", "NoServingInstance", "OutcomeUnknown", "ReferenceGone",
           "RemoteError", "RemoteMethod", "RemoteStream", "SerializationError", "ServiceProxy", "ServiceUnreachable",
           "UsageError", "as_completed", "batch", "close", "connect", "describe", "instances", "ping", "remote",
           "share", "shared_objects", "uri", "wait"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return lazy_dir(__name__, _LAZY)
