"""The threads behind `future()` and `aio()` calls, shared by every proxy in the process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from lonja.config import current_settings

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def shared_executor() -> ThreadPoolExecutor:
    """The process-wide executor, created on first use with `client.workers` threads."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=current_settings()["client.workers"],
                                           thread_name_prefix="lonja-call")
        return _executor
