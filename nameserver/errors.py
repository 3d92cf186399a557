"""Errors raised by the name server package.

`NameAlreadyServed` is raised to remote callers too. Pyro5 clients can rebuild only its own and builtin
exception classes, so it goes over the wire as a plain `Pyro5.errors.NamingError`. The error's
`served_uri` and `served_class` attributes go with it, so a client can tell this refusal apart without
reading the message.
"""

from __future__ import annotations

from typing import Any

import Pyro5.errors
from Pyro5.serializers import SerializerBase


class NameServerError(Exception):
    """The name server cannot start or keep running; the message is one line meant for the user."""


class StorageError(NameServerError):
    """The registration store cannot be opened, read or written; the message names the file."""


class NameAlreadyServed(Pyro5.errors.NamingError):
    """A name is served by a live instance under a lease, so it cannot be taken over by another registration."""

    def __init__(self, message: str, served_uri: str = "", served_class: str = "") -> None:
        super().__init__(message)
        self.served_uri = served_uri
        self.served_class = served_class


def _as_naming_error(exc: NameAlreadyServed) -> dict[str, Any]:
    """The wire form every Pyro5 client can decode: a NamingError carrying who serves the name."""
    return {"__class__": "Pyro5.errors.NamingError", "__exception__": True, "args": exc.args,
            "attributes": vars(exc)}


SerializerBase.register_class_to_dict(NameAlreadyServed, _as_naming_error)
