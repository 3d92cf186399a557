"""lonja: call remote objects like local ones, through a name server, on Pyro5.

The everyday names are here (`from lonja import connect, service`); everything else lives in the
packages `lonja.clients`, `lonja.services`, `lonja.nameserver` and `lonja.config`. The short forms are
imported on first use, so `import lonja` (and the `lonja` command) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SHORT_FORMS = {
    "connect": "lonja.clients",
    "RemoteError": "lonja.clients",
    "LonjaError": "lonja.clients",
    "service": "lonja.services",
    "expose": "lonja.services",
    "oneway": "lonja.services",
    "idempotent": "lonja.services",
    "share": "lonja.services",
    "remote": "lonja.services",
}

__all__ = ["__version__", *_SHORT_FORMS]


def __getattr__(name: str) -> Any:
    module = _SHORT_FORMS.get(name)
    if module is None:
        raise AttributeError(f"module 'lonja' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
