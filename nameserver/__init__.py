"""lonja's name server: Pyro5's NameServer with a durable SQLite store and a start/stop handle.

This package never imports `services` or `clients`.
"""

from .errors import NameServerError, StorageError
from .names import LonjaNameServer
from .server import NameServerDaemon, NameServerHandle, NameServerPolicy, run_nameserver, start_nameserver
from .storage import MemoryStorage, SqliteStorage, Storage, make_storage

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
