"""Why a connection failed, read from the exception that Pyro5's wraps: refused, reset, timed out, no
route, or a TLS handshake that failed.

Pyro5 reports every failed connect or handshake as a `CommunicationError` whose message embeds the
socket's; the socket's own `OSError` (or `ssl.SSLError`) is still attached as its cause, or as the
context it was raised in. Its type, errno and OpenSSL reason say what happened; the text is only shown.
"""

from __future__ import annotations

import errno
import ssl
from typing import TypeVar

import Pyro5.errors

E = TypeVar("E", bound=BaseException)

_NO_ROUTE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH})
_CERTIFICATE_REQUIRED = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE",
                                   "SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA"})
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"})


def underlying(exc: BaseException | None, kind: type[E]) -> E | None:
    """The first exception of type `kind` in `exc`'s chain: itself, then its cause or context, and so on."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def tls_error(exc: BaseException | None) -> ssl.SSLError | None:
    """The TLS layer's error under `exc`, if the failure was the TLS handshake's."""
    return underlying(exc, ssl.SSLError)


def was_reset(exc: BaseException | None) -> bool:
    """True if the peer reset the connection (as a TLS server does to a client that speaks plain Pyro5)."""
    return underlying(exc, ConnectionResetError) is not None


def why_not(exc: BaseException, connect_timeout: float) -> str:
    """A few words on why a server did not answer, for a list of those tried."""
    if isinstance(exc, Pyro5.errors.TimeoutError) or underlying(exc, TimeoutError) is not None:
        return f"no answer within {connect_timeout:g} s"
    if underlying(exc, ConnectionRefusedError) is not None:
        return "connection refused"
    os_error = underlying(exc, OSError)
    if os_error is not None and os_error.errno in _NO_ROUTE:
        return "no route to it"
    if os_error is not None and os_error.strerror:
        return os_error.strerror
    return str(exc).rsplit(": ", 1)[-1] or type(exc).__name__


def tls_message(who: str, error: ssl.SSLError) -> str:
    """One line saying that the TLS handshake with `who` failed, why (as OpenSSL says it), and what to check."""
    reason = error.reason or str(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = f"certificate verify failed: {error.verify_message}"
    elif isinstance(error, ssl.SSLEOFError) or error.reason in _CERTIFICATE_REQUIRED:
        reason = "the server ended it: it requires a client certificate it trusts (set tls.cert and tls.key)"
    elif error.reason in _NOT_TLS:
        reason = "one side speaks TLS and the other does not (check tls.enabled on both)"
    return f"the TLS handshake with {who} failed: {reason}; check tls.enabled, tls.cert, tls.key and tls.ca"
