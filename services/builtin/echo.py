"""The `echo` service: returns what it is given, and shows every kind of call (slow, failing, oneway, streaming)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from lonja.services.decorators import expose, idempotent, oneway, service


class EchoError(Exception):
    """The error `fail` raises: a class of the service's own, not a builtin."""


@service("echo", metadata={"lonja:builtin"})
class Echo:
    """Returns what it is given: a service to try lonja out with."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notified = 0
        self._last: Any = None

    @expose
    @idempotent
    def echo(self, value: Any = None) -> Any:
        """Return `value` unchanged."""
        return value

    @expose
    def slow(self, seconds: float = 1.0, value: Any = None) -> Any:
        """Sleep `seconds`, then return `value` (or the seconds slept)."""
        time.sleep(seconds)
        return seconds if value is None else value

    @expose
    def fail(self, message: str = "failed on purpose") -> None:
        """Raise EchoError(message)."""
        raise EchoError(message)

    @expose
    @oneway
    def notify(self, value: Any = None) -> None:
        """Oneway: record `value`; `notified` counts the calls."""
        with self._lock:
            self._notified += 1
            self._last = value

    @property
    @expose  # marks the getter, as `@expose @property` would: the order mypy can check
    def notified(self) -> int:
        """How many `notify` calls have run."""
        with self._lock:
            return self._notified

    @expose
    def last(self) -> Any:
        """The value of the latest `notify` call."""
        with self._lock:
            return self._last

    @expose
    def count(self, count: int = 3, delay: float = 0.0) -> Iterator[int]:
        """Stream the numbers 0..count-1, waiting `delay` seconds before each."""
        for number in range(count):
            if delay:
                time.sleep(delay)
            yield number

    @expose
    async def wait(self, seconds: float = 0.1, value: Any = None) -> Any:
        """Async: await asyncio.sleep(seconds), then return `value` (or the seconds waited)."""
        await asyncio.sleep(seconds)
        return seconds if value is None else value

    @expose
    @idempotent
    def pid(self) -> int:
        """The process id of the host serving this call."""
        return os.getpid()
