"""Calls recorded on a proxy and sent in one request: `with batch(proxy) as b: ...`, then `b.results()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from Pyro5 import protocol

from lonja.config.wire import batch_failure

from .errors import LonjaError, remote_error_from

if TYPE_CHECKING:
    from .proxy import ServiceClient


class Batch:
    """Calls recorded on a proxy and sent in one request when the `with` block ends."""

    def __init__(self, client: ServiceClient, oneway: bool) -> None:
        self._client = client
        self._oneway = oneway
        self._calls: list[tuple[str, tuple, dict]] = []
        self._results: list[Any] | None = None

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._client.metadata().methods:
            raise AttributeError(f"{self._client.target} has no remote method {name!r}")

        def record(*args: Any, **kwargs: Any) -> None:
            self._calls.append((name, args, kwargs))
        return record

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is None:
            self.send()

    def send(self) -> None:
        """Send the recorded calls now (the `with` block does this for you)."""
        calls, self._calls = self._calls, []
        if not calls:
            self._results = []
            return
        flags = protocol.FLAGS_BATCH | (protocol.FLAGS_ONEWAY if self._oneway else 0)
        payload = [(name, list(args), dict(kwargs)) for name, args, kwargs in calls]
        results = self._client.call("<batch>", payload, {}, self._client.options, flags)
        self._results = [] if self._oneway else list(results)

    def results(self) -> list[Any]:
        """The results in call order. If a call raised, its RemoteError is raised here, with `.results`
        holding the results of the calls before it (the service stops a batch at its first error)."""
        if self._results is None:
            raise LonjaError("the batch has not been sent: use it in a `with` block or call send()")
        values: list[Any] = []
        for value in self._results:
            failure = batch_failure(value)
            if failure is not None:
                error = remote_error_from(failure)
                error.results = values
                raise error
            values.append(value)
        return values
