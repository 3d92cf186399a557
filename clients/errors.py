"""Every error a lonja client raises, in one hierarchy: `except LonjaError` catches them all."""

from __future__ import annotations

# Attribute names a lonja host sets on a service's own exception so that it travels as a builtin
# Exception: plain Pyro5 clients can decode it, and lonja clients turn it back into a RemoteError.
REMOTE_TYPE_ATTR = "lonja_remote_type"


class LonjaError(Exception):
    """Base class of every lonja client error."""


class UsageError(LonjaError):
    """A mistake in how a command or call was written (wrong arguments, unknown method)."""


class MessageTooLarge(UsageError):
    """A request (or its answer) is over a size limit: "message too large (N > M)"."""


class SerializationError(UsageError):
    """The arguments cannot be sent with the chosen serializer (e.g. bytes with json)."""


class AccessDenied(LonjaError):
    """The name server or service refused this caller: no token, a wrong token, or a role too weak."""


class NameServerUnreachable(LonjaError):
    """No name server answers at the configured address."""


class NameNotFound(LonjaError):
    """The name server has no entry for this name."""


class NameConflict(LonjaError):
    """The name is served by another live server of a different class: `served_uri`, `served_class`."""

    def __init__(self, name: str, served_uri: str, served_class: str = "") -> None:
        where = f"{served_uri} ({served_class})" if served_class else served_uri
        super().__init__(f"the name {name!r} is already served by {where}")
        self.name = name
        self.served_uri = served_uri
        self.served_class = served_class


class ServiceUnreachable(LonjaError):
    """The service registered under a name does not answer (it stopped or was killed)."""


class OutcomeUnknown(ServiceUnreachable):
    """The connection failed after the request was sent: the call may or may not have run."""


class CallTimeout(OutcomeUnknown):
    """The service did not answer within the timeout."""


class RemoteError(LonjaError):
    """The remote method raised. Carries the remote type name, message and traceback."""

    def __init__(self, remote_type: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {message}" if message else remote_type)
        self.remote_type = remote_type
        self.message = message
        self.remote_traceback = remote_traceback


_remote_builtin_types: dict[type, type] = {}


def remote_error_from(exc: BaseException) -> RemoteError:
    """Turn an exception that came back from a service into a RemoteError.

    A builtin exception (ValueError, KeyError, ...) becomes a subclass of both RemoteError and that builtin,
    so `except ValueError` works as it would for a local call.
    """
    traceback = "".join(getattr(exc, "_pyroTraceback", None) or [])
    remote_type = getattr(exc, REMOTE_TYPE_ATTR, None)
    if remote_type:
        return RemoteError(remote_type, str(exc), traceback)
    kind = type(exc)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    message = str(exc)
    combined = _remote_builtin_types.get(kind)
    if combined is None:
        try:
            combined = type(f"Remote{kind.__name__}", (RemoteError, kind), {"__module__": __name__})
        except TypeError:  # layout conflict with some builtins (OSError subclasses): plain RemoteError
            combined = RemoteError
        _remote_builtin_types[kind] = combined
    error = combined.__new__(combined)
    RemoteError.__init__(error, name, message, traceback)
    error.args = exc.args if combined is not RemoteError else error.args
    return error
