"""How `future()` and `aio()` calls travel: queued, then sent by a few workers, coalesced into batches.

A future starts at once while few are in flight. When many are issued together, calls to a method its
host has said is quick (see `wire.SLOW`: the host's own clock decides, so a client on a busy machine
judges the same) wait in the queue and go out as one batch request whenever a worker is free, so the
service decodes one message for many calls instead of one per call; the queue is shared out over the
workers, whose connections the service serves side by side. Slow methods, and methods not called yet,
are never batched, so slow calls keep overlapping. Each call still runs exactly once: the service stops
a batch at the first call that raises, and the calls after it are queued again. Calls that cannot share
a batch (generators, other options, a server that is not lonja's) are sent one by one. An `aio()` call
waits on an asyncio future of its own loop, and a batch's results reach each loop in one wake-up.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any

from Pyro5 import protocol

from lonja.config.wire import batch_failure

from .errors import MessageTooLarge, OutcomeUnknown, remote_error_from
from .executor import shared_executor

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

    from .proxy import CallOptions, ServiceClient

MAX_BATCH = 64


class _Call:
    """One call waiting for a worker: its future (concurrent or asyncio), what to call, and how."""

    __slots__ = ("args", "flags", "future", "kwargs", "loop", "method", "options", "started")

    def __init__(self, future: Future | asyncio.Future, method: str, args: tuple, kwargs: dict,
                 options: CallOptions, flags: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.future = future
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.flags = flags
        self.loop = loop  # the loop of an `aio()` call's future
        self.started = False

    def start(self) -> bool:
        """False if the caller cancelled the call before it was sent (it is then dropped)."""
        if self.loop is not None:
            return not self.future.cancelled()
        if not self.started:
            self.started = True
            return self.future.set_running_or_notify_cancel()  # type: ignore[union-attr]
        return True


_Outcome = tuple[_Call, BaseException | None, Any]


class Dispatcher:
    """The queue of one proxy's background calls and the workers that send them."""

    def __init__(self, client: ServiceClient, workers: int) -> None:
        self._client = client
        self._workers = max(1, workers)
        self._queue: collections.deque[_Call] = collections.deque()
        self._lock = threading.Lock()
        self._running = 0

    def submit(self, method: str, args: tuple, kwargs: dict, options: CallOptions, flags: int) -> Future:
        """Queue a call; its concurrent.futures.Future."""
        from concurrent.futures import Future  # loaded by the programs that use futures only

        future: Future = Future()
        self._enqueue(_Call(future, method, args, kwargs, options, flags))
        return future

    def submit_async(self, method: str, args: tuple, kwargs: dict, options: CallOptions,
                     flags: int) -> asyncio.Future:
        """Queue a call from a coroutine; a future of the running loop."""
        import asyncio  # loaded by the programs that await calls only

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(_Call(future, method, args, kwargs, options, flags, loop))
        return future

    def _enqueue(self, call: _Call) -> None:
        with self._lock:
            self._queue.append(call)
            start = self._running < self._workers
            if start:
                self._running += 1
        if start:
            shared_executor(self._client.workers).submit(self._work)

    def _work(self) -> None:
        while True:
            with self._lock:
                calls = self._take()
                if not calls:
                    self._running -= 1
                    return
            calls = [c for c in calls if c.start()]
            if len(calls) == 1:
                _settle([self._one(calls[0])])
            elif calls:
                _settle(self._batch(calls))

    def _take(self) -> list[_Call]:
        """The next call, with the queued calls that may share its batch (called under the lock)."""
        if not self._queue:
            return []
        share = min(MAX_BATCH, -(-len(self._queue) // self._workers))
        first = self._queue.popleft()
        if not self._batchable(first):
            return [first]
        taken = [first]
        keep: collections.deque[_Call] = collections.deque()
        while self._queue and len(taken) < share:
            call = self._queue.popleft()
            (taken if self._batchable(call) and call.options == first.options else keep).append(call)
        keep.extend(self._queue)
        self._queue = keep
        return taken

    def _batchable(self, call: _Call) -> bool:
        meta = self._client.known_metadata
        return meta is not None and meta.batchable and call.method not in meta.generators \
            and call.method in meta.methods and self._client.is_quick(call.method)

    def _one(self, call: _Call) -> _Outcome:
        try:
            return call, None, self._client.call(call.method, call.args, call.kwargs, call.options, call.flags)
        except BaseException as exc:
            return call, exc, None

    def _batch(self, calls: list[_Call]) -> list[_Outcome]:
        payload = [(c.method, list(c.args), dict(c.kwargs)) for c in calls]
        try:
            results = self._client.call("<batch>", payload, {}, calls[0].options, protocol.FLAGS_BATCH)
        except MessageTooLarge:  # together too large for the service: each on its own may still fit
            return [self._one(call) for call in calls]
        except OutcomeUnknown as exc:  # the batch may have run in part: re-send only what is safe to re-send
            return [self._one(call) if self._client.is_idempotent(call.method) else (call, exc, None)
                    for call in calls]
        except BaseException as exc:
            return [(call, exc, None) for call in calls]
        results = list(results)
        outcomes: list[_Outcome] = []
        for index, call in enumerate(calls):
            if index >= len(results):  # the service stopped at an error: the rest never ran
                with self._lock:
                    self._queue.extendleft(reversed(calls[index:]))
                break
            value = results[index]
            failure = batch_failure(value)
            outcomes.append((call, remote_error_from(failure), None) if failure is not None else (call, None, value))
        return outcomes


def _settle(outcomes: list[_Outcome]) -> None:
    """Complete the callers' futures: concurrent ones here, each asyncio loop's in one call on that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        call, exc, value = outcome
        if call.loop is not None:
            by_loop.setdefault(call.loop, []).append(outcome)
        elif exc is not None:
            call.future.set_exception(exc)
        else:
            call.future.set_result(value)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_on_loop, settled)
        except RuntimeError:  # the loop was closed: nobody waits for these any more
            pass


def _settle_on_loop(outcomes: list[_Outcome]) -> None:
    for call, exc, value in outcomes:
        if call.future.done():  # cancelled by its caller meanwhile
            continue
        if exc is not None:
            call.future.set_exception(exc)
        else:
            call.future.set_result(value)
