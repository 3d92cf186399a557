"""Every error a lonja client raises. All are `LonjaError`s (lonja's one error tree, `lonja.config.errors`),
so `except LonjaError` catches them all; each carries the `lonja` command's exit code."""

from __future__ import annotations

from lonja.config.errors import DENIED, UNREACHABLE, LonjaError, NameTaken, UsageError
from lonja.config.wire import RemoteError, remote_error_from

__all__ = ["AccessDenied", "ArgumentMismatch", "CallTimeout", "InterfaceMismatch", "LonjaError", "MessageTooLarge",
           "NameNotFound", "NameServerUnreachable", "NameTaken", "NoServingInstance", "OutcomeUnknown", "ReferenceGone",
           "RemoteError",
           "SerializationError", "ServiceUnreachable", "UsageError", "remote_error_from"]


class MessageTooLarge(UsageError):
    """A request (or its answer) is over a size limit: "message too large (N > M)"."""


class ArgumentMismatch(UsageError, TypeError):
    """A call's arguments do not fit the remote method's signature (known from `describe`); raised before
    the call is sent. Also a TypeError, as the same mistake in a local call would be."""


class InterfaceMismatch(UsageError):
    """`connect(name, interface=...)`: the service lacks methods or attributes the interface declares."""


class SerializationError(UsageError):
    """The arguments cannot be sent with the chosen serializer (e.g. bytes with json)."""


class AccessDenied(LonjaError):
    """The name server or service refused this caller: no token, a wrong token, or a role too weak."""

    exit_code = DENIED
    label = "access denied"


class NameServerUnreachable(LonjaError):
    """No name server answers at the configured address (nothing listens, something else does, or it is busy)."""

    exit_code = UNREACHABLE


class NameNotFound(LonjaError):
    """The name server has no entry for this name."""

    exit_code = UNREACHABLE


class ServiceUnreachable(LonjaError):
    """The service registered under a name does not answer (it stopped or was killed)."""

    exit_code = UNREACHABLE


class NoServingInstance(ServiceUnreachable, NameNotFound):
    """The name is registered but none of its instances serves (their hosts stopped, died or are cut off):
    the service does not answer, and there is nothing to call under the name."""


class ReferenceGone(ServiceUnreachable):
    """An object by reference no longer exists on its host, which answers: it was released, or its holder
    renewed nothing for longer than a lease (see `references.lease`)."""


class OutcomeUnknown(ServiceUnreachable):
    """The connection failed after the request was sent: the call may or may not have run."""


class CallTimeout(OutcomeUnknown):
    """The service did not answer within the timeout."""
