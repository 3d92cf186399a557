"""Calling services: `connect(name)` gives a proxy whose methods run remotely.

    from lonja.clients import connect, describe, ping
    with connect("echo") as echo:
        print(echo.echo("hi"))
        print(describe(echo)["methods"].keys(), ping(echo))

Every public name on a proxy is the service's (`echo.ping` is the service's method `ping`, if it has one);
lonja's own operations on a proxy are the functions `describe`, `ping`, `uri`, `instances`, `batch` and
`close` here.

Futures from `.future()` are `concurrent.futures.Future`s, so `clients.wait` and `clients.as_completed`
are the standard library's.
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, as_completed, wait

from .batching import Batch
from .errors import (AccessDenied, CallTimeout, LonjaError, MessageTooLarge, NameNotFound, NameServerUnreachable,
                     OutcomeUnknown, RemoteError, SerializationError, ServiceUnreachable, UsageError)
from .naming import NameServerClient
from .proxy import RemoteMethod, ServiceProxy, batch, close, connect, describe, instances, ping, uri
from .stream import RemoteStream

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "AccessDenied", "Batch", "CallTimeout",
           "LonjaError", "MessageTooLarge", "NameNotFound", "NameServerClient", "NameServerUnreachable",
           "OutcomeUnknown", "RemoteError", "RemoteMethod", "RemoteStream", "SerializationError", "ServiceProxy",
           "ServiceUnreachable", "UsageError", "as_completed", "batch", "close", "connect", "describe",
           "instances", "ping", "uri", "wait"]
