"""The documented exit codes of `lonja`, and which error maps to which."""

from __future__ import annotations

OK = 0
REMOTE_ERROR = 1        # the remote method raised
USAGE = 2               # bad arguments, bad settings, unknown method
UNREACHABLE = 3         # name server unreachable, unknown name, service unreachable
IN_USE = 4              # cannot start: the port or the name is already taken
DENIED = 5              # no token, a wrong token, or a role that may not do this
INTERRUPTED = 130       # Ctrl-C during a command that is not a server
INTERNAL = 70           # a bug in lonja: rerun with --debug and report the traceback


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line label for an error that ends a command."""
    from lonja.config import ConfigError

    if isinstance(exc, ConfigError):  # may come before Pyro5 could be imported: check it first
        return USAGE, "error"
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    from lonja.clients.errors import (AccessDenied, NameNotFound, NameServerUnreachable, RemoteError, ServiceUnreachable,
                                UsageError)
    from lonja.nameserver.errors import NameServerError, StorageError
    from lonja.services.errors import NameTaken, ServiceLoadError

    if isinstance(exc, AccessDenied):
        return DENIED, "access denied"
    if isinstance(exc, RemoteError):
        return REMOTE_ERROR, "remote error"
    if isinstance(exc, (UsageError, ServiceLoadError, StorageError)):
        return USAGE, "error"
    if isinstance(exc, (NameServerUnreachable, NameNotFound, ServiceUnreachable)):
        return UNREACHABLE, "error"
    if isinstance(exc, (NameTaken, NameServerError)):
        return IN_USE, "error"
    return INTERNAL, "internal error"
