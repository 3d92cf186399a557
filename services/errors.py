"""Errors of the service host, one line each for the CLI."""

from lonja.config.errors import IN_USE, USAGE, LonjaError, NameTaken

__all__ = ["NameTaken", "ServiceError", "ServiceLoadError"]


class ServiceError(LonjaError):
    """The service host cannot start: it cannot listen on its address, say."""

    exit_code = IN_USE


class ServiceLoadError(ServiceError):
    """A TARGET could not be imported or instantiated."""

    exit_code = USAGE
