"""The items of a remote generator, fetched as they are consumed, from a connection kept for the stream."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import Pyro5.errors
from Pyro5.callcontext import current_context
from Pyro5.client import Proxy

from lonja.config.sharing import REFERENCES

from .errors import OutcomeUnknown, remote_error_from
from .executor import shared_executor

if TYPE_CHECKING:
    from Pyro5.client import _StreamResultIterator

    from .proxy import ServiceClient

_END = object()


class RemoteStream:
    """The items of a remote generator, fetched as they are consumed (also `async for` them)."""

    def __init__(self, owner: ServiceClient, proxy: Proxy, stream: _StreamResultIterator) -> None:
        self._owner = owner
        self._proxy = proxy
        self._stream = stream
        self._lock = threading.Lock()

    def __iter__(self) -> RemoteStream:
        return self

    def __next__(self) -> Any:
        with self._lock:
            if self._proxy is None:
                raise StopIteration
            self._proxy._pyroClaimOwnership()
            try:
                item = next(self._stream)
                if REFERENCES in current_context.response_annotations:  # the item holds objects by reference
                    from .references import adopt
                    item = adopt(item, self._owner, float(current_context.response_annotations[REFERENCES]))
                return item
            except StopIteration:
                self._finish()
                raise
            except Pyro5.errors.CommunicationError as exc:
                self._proxy._pyroRelease()
                self._proxy = None
                raise OutcomeUnknown(f"the stream from {self._owner.target} broke off: {exc}") from None
            except Exception as exc:
                self._finish()
                raise remote_error_from(exc) from None

    def __aiter__(self) -> RemoteStream:
        return self

    async def __anext__(self) -> Any:
        import asyncio  # loaded by the programs that await items only

        loop = asyncio.get_running_loop()
        item = await loop.run_in_executor(shared_executor(self._owner.workers), next, self, _END)
        if item is _END:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy._pyroClaimOwnership()
                try:
                    self._stream.close()
                finally:
                    self._finish()

    def _finish(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            self._owner.give_back(proxy)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
