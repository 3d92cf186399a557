"""lonja's name server: Pyro5's NameServer with a durable SQLite store and a start/stop handle.

This package never imports `services` or `clients`. The server and its storage are imported on first use
of one of their names, so that the `lonja` command's parser (which imports `lonja.nameserver.cli`) stays light.
"""

from typing import Any

from lonja.config.lazy import lazy_attribute, lazy_dir

from .errors import NameServerError, StorageError

_LAZY = {"LonjaNameServer": ".names",
         **dict.fromkeys(("NameServerDaemon", "NameServerHandle", "NameServerPolicy", "run_nameserver",
                          "start_nameserver"), ".server"),
         **dict.fromkeys(("MemoryStorage", "SqliteStorage", "Storage", "make_storage"), ".storage")}

__all__ = [
    "LonjaNameServer",
    "MemoryStorage",
    "NameServerDaemon",
    "NameServerError",
    "NameServerHandle",
    "NameServerPolicy",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "make_storage",
    "run_nameserver",
    "start_nameserver",
]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return lazy_dir(__name__, _LAZY)
