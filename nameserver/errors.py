"""Errors raised by the name server package.

`NameAlreadyServed` is raised to remote callers too. It is a `Pyro5.errors.NamingError`, so it goes over
the wire as a plain NamingError that every Pyro5 client can rebuild, with its `served_uri` and
`served_class` attributes (see `lonja.config.wire`): a client can tell this refusal apart without
reading the message.
"""

from __future__ import annotations

import Pyro5.errors

from lonja.config.errors import IN_USE, USAGE, LonjaError, NameTaken
from lonja.config.wire import install_encoder


class NameServerError(LonjaError):
    """The name server cannot start (its port is taken, say) or keep running; one line meant for the user."""

    exit_code = IN_USE


class StorageError(NameServerError):
    """The registration store cannot be opened, read or written; the message names the file."""

    exit_code = USAGE


class NameAlreadyServed(Pyro5.errors.NamingError, NameTaken):
    """A name is served by a live instance under a lease, so it cannot be taken over by another registration."""


install_encoder()
