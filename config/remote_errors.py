"""What a lonja server's failure looks like to its caller: both sides of the contract, in this one module.

**A call's exception.** A plain Pyro5 client rebuilds only builtin, sqlite3 and Pyro5 exception classes;
any other class arrives as `SerializeError: unsupported serialized class`, its traceback lost. A lonja
server (`install_encoder`) therefore sends each exception as the nearest class in its MRO that every
Pyro5 client can rebuild:
- a builtin, sqlite3 or Pyro5 exception goes as it is;
- a subclass of a Pyro5 error (such as the name server's `NameAlreadyServed`, a `NamingError`) goes as that
  Pyro5 error with all its attributes: plain clients get a NamingError carrying `served_uri`;
- any other class (a service's own) goes as its nearest builtin parent with two attributes: the real
  type's name (`REMOTE_TYPE`) and the remote traceback (`TRACEBACK`).
A lonja client turns what arrives into a `RemoteError` (`remote_error_from`); one that arrives as a
builtin becomes a class that is both RemoteError and that builtin, so `except ValueError` works as it
would for a local call.

**A connection's refusal.** Pyro5 hands a client the server's refusal only as text, "connection to
HOST:PORT rejected: REASON"; `refusal_of` is the one place that reads it.
"""

from __future__ import annotations

import builtins
import enum
from typing import Any

import Pyro5.errors
from Pyro5.serializers import SerializerBase

from .errors import REMOTE_ERROR, LonjaError

REMOTE_TYPE = "lonja_remote_type"
"""The attribute that carries a service exception's real type name ("package.module.Class")."""
TRACEBACK = "_pyroTraceback"
"""Pyro5's attribute for the remote traceback (a list of lines)."""


class RemoteError(LonjaError):
    """The remote method raised. Carries the remote type name, message and traceback."""

    exit_code = REMOTE_ERROR
    label = "remote error"
    results: list[Any]
    """Only on the error a batch raises (`Batch.results()`): the results of the calls before the failed one."""

    def __init__(self, remote_type: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {message}" if message else remote_type)
        self.remote_type = remote_type
        self.message = message
        self.remote_traceback = remote_traceback

    def one_line(self) -> str:
        return f"{self.remote_type}: {self.message}" if self.message else self.remote_type


# -- the server's side ---------------------------------------------------------------------------------

def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Pyro5's dict form of `exc`, as the nearest class a plain Pyro5 client can rebuild (see above)."""
    kind = type(exc)
    if _rebuildable(kind):
        return _as(kind, exc.args, vars(exc))
    for parent in kind.__mro__[1:]:
        if issubclass(parent, Pyro5.errors.PyroError) and _rebuildable(parent):
            return _as(parent, exc.args, vars(exc))
    message = str(exc)
    attributes = {TRACEBACK: getattr(exc, TRACEBACK, None), REMOTE_TYPE: f"{kind.__module__}.{kind.__qualname__}"}
    return _as(_nearest_builtin(kind, message), (message,), attributes)


def install_encoder() -> None:
    """Make every serializer send exceptions with `exception_to_dict`; safe to call more than once.

    Pyro5 (and serpent) use the first registered class that an object is an instance of, in the order of
    registration, not the most specific one. So one converter, for BaseException, decides for every
    exception, and no module registers one for a subclass: which would win would depend on import order.
    """
    SerializerBase.register_class_to_dict(BaseException, exception_to_dict)


def _rebuildable(kind: type) -> bool:
    """True for the exception classes every Pyro5 client can rebuild by itself."""
    if kind.__module__ == "builtins":
        return getattr(builtins, kind.__name__, None) is kind
    if kind.__module__ == "Pyro5.errors":
        return getattr(Pyro5.errors, kind.__name__, None) is kind
    return kind.__module__ == "sqlite3"


def _nearest_builtin(kind: type, message: str) -> type:
    """The first builtin class in `kind`'s MRO that can be built from `message` alone."""
    for parent in kind.__mro__[1:]:
        if parent.__module__ == "builtins" and _rebuildable(parent):
            try:
                parent(message)
            except Exception:
                continue
            return parent
    return Exception


def _as(kind: type, args: tuple, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"__class__": f"{kind.__module__}.{kind.__name__}", "__exception__": True, "args": args,
            "attributes": attributes}


# -- the client's side ---------------------------------------------------------------------------------

_remote_builtin_types: dict[type, type] = {}


def remote_error_from(exc: BaseException) -> RemoteError:
    """Turn an exception that came back from a service into a RemoteError.

    One that arrived as a builtin exception (ValueError, KeyError, ...) becomes a subclass of both
    RemoteError and that builtin, so `except ValueError` works as it would for a local call.
    """
    kind = type(exc)
    remote_type = getattr(exc, REMOTE_TYPE, None) or (
        kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}")
    traceback = "".join(getattr(exc, TRACEBACK, None) or [])
    error_class = _remote_class_for(kind)
    error = error_class.__new__(error_class)
    RemoteError.__init__(error, remote_type, str(exc), traceback)
    if error_class is not RemoteError:
        error.args = exc.args
    return error


def _remote_class_for(kind: type) -> type[RemoteError]:
    """RemoteError combined with `kind` (cached), or RemoteError itself where they cannot combine."""
    if kind is Exception:
        return RemoteError
    combined = _remote_builtin_types.get(kind)
    if combined is None:
        try:
            combined = type(f"Remote{kind.__name__}", (RemoteError, kind), {"__module__": __name__})
        except TypeError:  # layout conflict with some builtins (OSError subclasses)
            combined = RemoteError
        _remote_builtin_types[kind] = combined
    return combined


# -- a connection's refusal ----------------------------------------------------------------------------

class Refusal(enum.Enum):
    """Why a server refused a connection, as far as its answer tells."""

    BUSY = "busy"                        # it is at a connection limit: try again later
    NO_SUCH_OBJECT = "no such object"    # the address answers, but hosts no such object
    DENIED = "denied"                    # it holds something against this caller (its token, mostly)


_BUSY_REASONS = ("too many connections",  # lonja's connection caps (config.transport, GuardedServer._refusal)
                 "no free workers")       # Pyro5's thread server with every pool thread taken
_NO_OBJECT_REASON = "unknown object"     # Pyro5's and lonja's handshake answer for an object not hosted there


def refusal_of(exc: BaseException | None) -> tuple[Refusal, str] | None:
    """(why, the server's own reason) if `exc` is a server's refusal of a connection, else None.

    Pyro5 raises a plain CommunicationError with the text "connection to HOST:PORT rejected: REASON", so
    this reads the text; nothing else in lonja does.
    """
    if not isinstance(exc, Pyro5.errors.CommunicationError):
        return None
    head, marker, reason = str(exc).partition(" rejected: ")
    if not marker or not head.startswith("connection to "):
        return None
    reason = reason.strip()
    if reason.startswith(_BUSY_REASONS):
        return Refusal.BUSY, reason
    if reason == _NO_OBJECT_REASON:
        return Refusal.NO_SUCH_OBJECT, reason
    return Refusal.DENIED, reason


def object_gone(exc: BaseException) -> bool:
    """True if `exc` is a daemon's answer that it hosts no such object (Pyro5 says so only in text)."""
    return isinstance(exc, Pyro5.errors.DaemonError) and _NO_OBJECT_REASON in str(exc)


def too_large(exc: BaseException) -> bool:
    """True if `exc` says a message was over a size limit: a server's MessageTooLargeError answer, or
    Pyro5's own check of what this process sends (a plain ProtocolError, told apart only by its text)."""
    return isinstance(exc, Pyro5.errors.MessageTooLargeError) or (
        isinstance(exc, Pyro5.errors.ProtocolError) and str(exc).startswith("message too large"))
