"""Errors raised by the name server package."""


class NameServerError(Exception):
    """The name server cannot start or keep running; the message is one line meant for the user."""


class StorageError(NameServerError):
    """The registration store cannot be opened, read or written; the message names the file."""
