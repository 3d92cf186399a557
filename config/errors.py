"""lonja's one error tree: every lonja error is a `LonjaError` and carries the `lonja` command's exit code.

The codes are defined here, at the bottom of the packages, so that each error class (in `config`,
`nameserver`, `services` or `clients`) can say its own; `lonja.exits` only reads them. This module
imports nothing, so a settings error is reported even when Pyro5 cannot be imported.
"""

from __future__ import annotations

OK = 0
REMOTE_ERROR = 1        # the remote method raised
USAGE = 2               # bad arguments, bad settings, unknown method
UNREACHABLE = 3         # name server unreachable or busy, unknown name, service unreachable
IN_USE = 4              # cannot start: the port or the name is already taken
DENIED = 5              # no token, a wrong token, a role that may not do this, or a refused TLS identity
INTERNAL = 70           # a bug in lonja: rerun with --debug and report the traceback
INTERRUPTED = 130       # Ctrl-C during a command that is not a server
BROKEN_PIPE = 141       # the reader of the output went away (`lonja ... | head`), as 128 + SIGPIPE


class LonjaError(Exception):
    """Base class of every lonja error: `except LonjaError` catches them all.

    `exit_code` is what the `lonja` command exits with, `label` what follows "lonja: " on its one line.
    """

    exit_code: int = INTERNAL
    label: str = "error"

    def one_line(self) -> str:
        """What the `lonja` command prints after its label."""
        return str(self)


class UsageError(LonjaError):
    """A mistake in how a command, a call or a setting was written (wrong arguments, unknown method)."""

    exit_code = USAGE


class ConfigError(UsageError):
    """A setting is unknown or invalid; the message names the key, the value and where it came from."""


class NameTaken(LonjaError):
    """The name is served by another live server: at `served_uri`, by class `served_class` (if known)."""

    exit_code = IN_USE

    def __init__(self, name: str, served_uri: str, served_class: str = "", advice: str = "") -> None:
        where = f"{served_uri} ({served_class})" if served_class else served_uri
        super().__init__(f"the name {name!r} is already served by {where}" + (f": {advice}" if advice else ""))
        self.name = name
        self.served_uri = served_uri
        self.served_class = served_class
