"""The documented exit codes of `lonja`, and which error maps to which.

Each lonja error carries its own code (`exit_code`, see `lonja.config.errors`); this module only reads
it. Anything that is not a LonjaError is a bug in lonja, apart from Ctrl-C and a closed output pipe.
"""

from __future__ import annotations

from lonja.config.errors import (
    BROKEN_PIPE,
    DENIED,
    IN_USE,
    INTERNAL,
    INTERRUPTED,
    OK,
    REMOTE_ERROR,
    UNREACHABLE,
    USAGE,
    LonjaError,
)

__all__ = ["BROKEN_PIPE", "DENIED", "INTERNAL", "INTERRUPTED", "IN_USE", "OK", "REMOTE_ERROR", "UNREACHABLE", "USAGE",
           "error_line", "exit_code", "label"]


def exit_code(exc: BaseException) -> int:
    """The exit code for an error that ends a command."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return BROKEN_PIPE
    return exc.exit_code if isinstance(exc, LonjaError) else INTERNAL


def label(exc: BaseException) -> str:
    """What follows "lonja: " on the error's line."""
    return exc.label if isinstance(exc, LonjaError) else "internal error"


def error_line(exc: BaseException) -> str:
    """The one line `lonja` prints on stderr for an error that ends a command."""
    code = exit_code(exc)
    if code == INTERRUPTED:
        return "lonja: interrupted"
    text = exc.one_line() if isinstance(exc, LonjaError) else str(exc)
    message = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    if code == INTERNAL:
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        message += " (rerun with --debug for the traceback)"
    return f"lonja: {label(exc)}: {message or type(exc).__name__}"
