"""How `future()` and `aio()` calls travel: queued, then sent by a few workers, coalesced into batches.

A future starts at once while few are in flight. When many are issued together, calls to a method that is
known to be quick (its calls took under `QUICK` seconds so far) wait in the queue and go out as one
batch request whenever a worker is free, so the service decodes one message for many calls instead of
one per call; the queue is shared out over the workers, whose connections the service serves side by
side. Slow or not yet measured methods are never batched, so slow calls keep overlapping. Each call
still runs exactly once: the service stops a batch at the first call that raises, and the calls after it
are queued again. Calls that cannot share a batch (generators, other options, a server that is not
lonja's) are sent one by one.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from Pyro5 import protocol

from lonja.config.wire import batch_failure

from .errors import MessageTooLarge, OutcomeUnknown, remote_error_from
from .executor import shared_executor

if TYPE_CHECKING:
    from .proxy import CallOptions, ServiceClient

MAX_BATCH = 64
QUICK = 0.001


@dataclass
class _Call:
    future: Future
    method: str
    args: tuple
    kwargs: dict
    options: CallOptions
    flags: int


class Dispatcher:
    """The queue of one proxy's background calls and the workers that send them."""

    def __init__(self, client: ServiceClient, workers: int) -> None:
        self._client = client
        self._workers = max(1, workers)
        self._queue: collections.deque[_Call] = collections.deque()
        self._lock = threading.Lock()
        self._running = 0
        self._seconds: dict[str, float] = {}   # recent seconds per call, by method

    def submit(self, method: str, args: tuple, kwargs: dict, options: CallOptions, flags: int) -> Future:
        future: Future = Future()
        with self._lock:
            self._queue.append(_Call(future, method, args, kwargs, options, flags))
            start = self._running < self._workers
            if start:
                self._running += 1
        if start:
            shared_executor(self._client.workers).submit(self._work)
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                calls = self._take()
                if not calls:
                    self._running -= 1
                    return
            calls = [c for c in calls if c.future.set_running_or_notify_cancel()]
            if len(calls) == 1:
                self._one(calls[0])
            elif calls:
                self._batch(calls)

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
            and call.method in meta.methods and self._seconds.get(call.method, QUICK) < QUICK

    def _measured(self, method: str, seconds: float) -> None:
        previous = self._seconds.get(method)
        self._seconds[method] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def _one(self, call: _Call) -> None:
        started = time.perf_counter()
        try:
            call.future.set_result(self._client.call(call.method, call.args, call.kwargs, call.options, call.flags))
        except BaseException as exc:
            call.future.set_exception(exc)
        self._measured(call.method, time.perf_counter() - started)

    def _batch(self, calls: list[_Call]) -> None:
        payload = [(c.method, list(c.args), dict(c.kwargs)) for c in calls]
        started = time.perf_counter()
        try:
            results = self._client.call("<batch>", payload, {}, calls[0].options, protocol.FLAGS_BATCH)
            for method in {c.method for c in calls}:
                self._measured(method, (time.perf_counter() - started) / len(calls))
        except MessageTooLarge:
            for call in calls:  # together too large for the service: each on its own may still fit
                self._one(call)
            return
        except OutcomeUnknown as exc:
            for call in calls:  # the batch may have run in part: re-send only what is safe to re-send
                if self._client.is_idempotent(call.method):
                    self._one(call)
                else:
                    call.future.set_exception(exc)
            return
        except BaseException as exc:
            for call in calls:
                call.future.set_exception(exc)
            return
        results = list(results)
        for index, call in enumerate(calls):
            if index >= len(results):  # the service stopped at an error: the rest never ran
                with self._lock:
                    self._queue.extendleft(reversed([_requeue(c) for c in calls[index:]]))
                return
            value = results[index]
            failure = batch_failure(value)
            if failure is not None:
                call.future.set_exception(remote_error_from(failure))
            else:
                call.future.set_result(value)


def _requeue(call: _Call) -> _Call:
    """A call to be sent again: a fresh pending future that completes the caller's running one."""
    retry: Future = Future()
    retry.add_done_callback(lambda done: _copy(done, call.future))
    return _Call(retry, call.method, call.args, call.kwargs, call.options, call.flags)


def _copy(source: Future, target: Future) -> None:
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())

