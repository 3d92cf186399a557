"""Errors of the service host, one line each for the CLI."""


class ServiceError(Exception):
    """Base class of service-host errors."""


class ServiceLoadError(ServiceError):
    """A TARGET could not be imported or instantiated."""


class NameTaken(ServiceError):
    """The name is held by another live server."""
