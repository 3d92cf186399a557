"""Errors of the web console, and the one table from lonja's errors to HTTP statuses.

Each failure has one status, whatever the request: `status_of` walks the table below in order (the first
class an error is an instance of wins), so a subclass is listed before its parents.
"""

from __future__ import annotations

import re
from typing import Any

from lonja.config.errors import DENIED, IN_USE, LonjaError, NameTaken, UsageError

from ..errors import (
    AccessDenied,
    CallTimeout,
    NameNotFound,
    NameServerUnreachable,
    RemoteError,
    ServiceUnreachable,
)


class WebConsoleError(LonjaError):
    """The web console cannot start: its port is taken, say."""

    exit_code = IN_USE


class WebExtraMissing(UsageError):
    """The `web` extra (Starlette, uvicorn) is not installed."""


class TokenRequired(AccessDenied):
    """A call or a write came without a token while the name server checks tokens."""


class CrossSiteRequest(LonjaError):
    """A request from another site (or for another host name) that may not call or change anything."""

    exit_code = DENIED


class UnsupportedMediaType(UsageError):
    """A POST whose body is not declared as JSON."""


class NotFound(UsageError):
    """No such page or API path."""


STATUS_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (RemoteError, 422),
    (TokenRequired, 401),
    (AccessDenied, 403),
    (CrossSiteRequest, 403),
    (NotFound, 404),
    (NameNotFound, 404),
    (UnsupportedMediaType, 415),
    (NameTaken, 409),
    (UsageError, 400),
    (CallTimeout, 504),
    (ServiceUnreachable, 502),
    (NameServerUnreachable, 503),
)
"""(error class, HTTP status), most specific first; anything else is a bug in lonja: 500."""

INTERNAL_STATUS = 500

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)')


def status_of(exc: BaseException) -> int:
    """The HTTP status for `exc`: the same for the same failure, every time."""
    for kind, status in STATUS_TABLE:
        if isinstance(exc, kind):
            return status
    return INTERNAL_STATUS


def error_body(exc: BaseException, uri: str | None = None) -> dict[str, Any]:
    """What the API answers for `exc`: `{"error": {"type", "message", "status", "exit_code", ...}}`.

    A remote error adds `remote_type` and `location` (the instance's URI and the innermost frame of the
    remote traceback, when there is one).
    """
    status = status_of(exc)
    if status == INTERNAL_STATUS:
        error: dict[str, Any] = {"type": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                                 "exit_code": 70}
    else:
        assert isinstance(exc, LonjaError)
        kind = "RemoteError" if isinstance(exc, RemoteError) else type(exc).__name__
        error = {"type": kind, "message": exc.one_line(), "exit_code": exc.exit_code}
    error["status"] = status
    if isinstance(exc, RemoteError):
        error["remote_type"] = exc.remote_type
        error["remote_message"] = exc.message
        error["location"] = remote_location(exc.remote_traceback, uri)
    return {"error": error}


def remote_location(traceback: str, uri: str | None) -> dict[str, Any]:
    """Where a remote error was raised: the instance's URI and the last `File ..., line ...` frame."""
    location: dict[str, Any] = {"uri": uri}
    frames = list(_FRAME.finditer(traceback or ""))
    if frames:
        last = frames[-1]
        location.update(file=last["file"], line=int(last["line"]), function=last["function"])
    return location

