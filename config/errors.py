"""Errors raised while reading settings."""


class ConfigError(Exception):
    """A setting is unknown or invalid; the message names the key, the value and where it came from."""
