"""A long-running server's garbage collector: what starting made (modules, classes, settings) is moved out of
its way (Python's `gc.freeze`), so each collection while serving walks only what serving made.

A name server or service host allocates a few objects per request; Python collects them every few hundred
allocations, and a full collection also walked the tens of thousands of objects every import leaves behind.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect once, then exempt every object alive now from later collections (call when ready to serve)."""
    gc.collect()
    gc.freeze()
