"""Calling services: `connect(name)` gives a proxy whose methods run remotely.

    from clients import connect
    with connect("echo") as echo:
        print(echo.echo("hi"))
"""

from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, as_completed, wait

from .errors import (CallTimeout, LonjaError, NameNotFound, NameServerUnreachable, OutcomeUnknown, RemoteError,
                     ServiceUnreachable)
from .naming import NameServerClient
from .proxy import Batch, RemoteMethod, RemoteStream, ServiceProxy, connect

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "Batch", "CallTimeout", "LonjaError",
           "NameNotFound", "NameServerClient", "NameServerUnreachable", "OutcomeUnknown", "RemoteError",
           "RemoteMethod", "RemoteStream", "ServiceProxy", "ServiceUnreachable", "as_completed", "connect", "wait"]
