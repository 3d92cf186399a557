"""The threads behind `future()` and `aio()` calls, shared by every proxy in the process."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def shared_executor(workers: int) -> ThreadPoolExecutor:
    """The process-wide executor, created on first use with `workers` threads at most (the first
    caller's `client.workers`: one pool serves every proxy)."""
    global _executor
    with _lock:
        if _executor is None:
            from concurrent.futures import ThreadPoolExecutor  # loaded by the programs that use futures only


            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lonja-call")
        return _executor
