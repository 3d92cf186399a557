"""Where the name server keeps its registrations: in memory, or in a SQLite file that survives restarts.

Both stores give Pyro5's `NameServer` the storage interface it calls: a mutable mapping
name -> (uri string, set of metadata tags), plus `optimized_prefix_list`, `optimized_regex_list`,
`optimized_metadata_search`, `everything`, `remove_items` and `close`. The two must answer every
query identically. Pyro5's own `SqlStorage` does not: its prefix search uses SQL `LIKE`, which
ignores case and treats `_` and `%` as wildcards, so `remove(prefix="svc_")` also deletes `svcX`.

Metadata always comes back as a plain `set`, never a `frozenset`: Pyro5's msgpack and json
serializers cannot encode a frozenset, which Pyro5's own MemoryStorage uses for "no tags".
Neither store accepts a name, URI or tag that is not valid Unicode (a lone surrogate cannot be
written to SQLite), and looking one up finds nothing in either.

A SQLite file that exists but is empty, or is not a lonja name store, is refused rather than
started as an empty registry: it more likely means a truncated or mistaken file than a new one.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Set
from pathlib import Path
from typing import Any

import Pyro5.errors
import Pyro5.nameserver

from .errors import StorageError

Entry = tuple[str, set]
Listing = dict[str, Any]
"""A `NameServer.list()` result: name -> uri string, or name -> (uri, tags) when metadata is asked for."""

STORAGE_FORMS = '"memory", "sqlite" (the file names.sqlite in the data folder) or "sqlite:PATH"'
SCHEMA_VERSION = 1


def _storable(*texts: Any) -> bool:
    """True if every one of `texts` is a str that can be encoded as UTF-8 (has no lone surrogate)."""
    try:
        for text in texts:
            if not text.isascii():  # ASCII always can: the common case costs no encoding
                text.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        return False
    return True


def _check_storable(name: Any, uri: Any, tags: set) -> None:
    """TypeError unless `name`, `uri` and every tag is a str; ValueError unless each is valid Unicode."""
    texts = (name, uri, *tags)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError("name, uri and metadata tags must be str")
    if not _storable(*texts):
        raise ValueError("name, uri and metadata tags must be valid Unicode (no lone surrogates)")


class MemoryStorage(Pyro5.nameserver.MemoryStorage):
    """Pyro5's dict-based store, forgotten when the name server stops."""

    spec = "memory"

    def __setitem__(self, name: str, value: tuple[str, Iterable[str] | None]) -> None:
        """Store or replace a registration; only str names, URIs and tags of valid Unicode fit, as in SQLite."""
        uri, metadata = value
        tags = set(metadata or ())
        _check_storable(name, uri, tags)
        super().__setitem__(name, (uri, tags))


class SqliteStorage(MutableMapping):
    """Registrations in a SQLite file; every change is committed before the call returns.

    One connection is shared by all name server threads behind a lock (Pyro5's SqlStorage opens a
    connection per operation instead). The WAL journal with `synchronous=FULL` makes each commit
    durable, so an acknowledged registration survives a kill -9 of the name server.
    """

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY NOT NULL, uri TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS tags ("
        " name TEXT NOT NULL REFERENCES names(name) ON DELETE CASCADE,"
        " tag TEXT NOT NULL,"
        " PRIMARY KEY (name, tag)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS tags_by_tag ON tags(tag)",
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.spec = f"sqlite:{self.path}"
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = self._open()

    def __repr__(self) -> str:
        return f"<SqliteStorage {self.path}>"

    def _open(self) -> sqlite3.Connection:
        """Connect, check the file really is a writable lonja name store, and create the tables.

        A missing file is a new, empty registry; an existing one must be a lonja name store.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the folder of name server storage {self.path}: "
                               f"{exc.strerror or exc}") from None
        move_away = "move it away to start with an empty registry"
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise StorageError(f"name server storage {self.path} is empty (0 bytes): it may have been "
                               f"truncated; {move_away}")
        db = None
        try:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.execute("ROLLBACK")
                raise StorageError(f"name server storage {self.path} has schema version {version}; "
                                   f"this lonja understands up to {SCHEMA_VERSION}")
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 and tables:
                db.execute("ROLLBACK")
                raise StorageError(f"name server storage {self.path} is a SQLite database but not a lonja "
                                   f"name store (it has tables {', '.join(sorted(tables)[:5])}); "
                                   f"use another --storage path, or {move_away}")
            for statement in self._SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
                raise StorageError(f"name server storage {self.path} is not a SQLite database; {move_away}"
                                   ) from None
            raise StorageError(f"cannot use name server storage {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise StorageError(f"cannot use name server storage {self.path}: {exc}") from None
        except StorageError:
            if db is not None:
                db.close()
            raise
        return db

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and turn SQLite failures into a StorageError naming the file."""
        with self._lock:
            if self._db is None:
                raise StorageError(f"name server storage {self.path} is closed")
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StorageError(f"name server storage {self.path} failed: {exc}") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Like `_reading`, inside one transaction that is committed (or rolled back) before returning."""
        with self._reading() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def __getitem__(self, name: str) -> Entry:
        if not _storable(name):
            raise KeyError(name)
        with self._reading() as db:
            row = db.execute("SELECT uri FROM names WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            tags = {tag for (tag,) in db.execute("SELECT tag FROM tags WHERE name = ?", (name,))}
        return row[0], tags

    def __setitem__(self, name: str, value: tuple[str, Iterable[str] | None]) -> None:
        """Store or replace a registration; unlike the memory store, only str names, URIs and tags fit."""
        uri, metadata = value
        tags = set(metadata or ())
        _check_storable(name, uri, tags)
        with self._writing() as db:
            db.execute("DELETE FROM names WHERE name = ?", (name,))
            db.execute("INSERT INTO names (name, uri) VALUES (?, ?)", (name, uri))
            db.executemany("INSERT INTO tags (name, tag) VALUES (?, ?)", [(name, tag) for tag in tags])

    def __delitem__(self, name: str) -> None:
        if not _storable(name):
            raise KeyError(name)
        with self._writing() as db:
            if db.execute("DELETE FROM names WHERE name = ?", (name,)).rowcount == 0:
                raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not _storable(name):
            return False
        with self._reading() as db:
            return db.execute("SELECT 1 FROM names WHERE name = ?", (name,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        with self._reading() as db:
            names = [name for (name,) in db.execute("SELECT name FROM names ORDER BY name")]
        return iter(names)

    def __len__(self) -> int:
        with self._reading() as db:
            return db.execute("SELECT count(*) FROM names").fetchone()[0]

    def clear(self) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM names")

    def _listing(self, return_metadata: bool, condition: str = "", params: Iterable[Any] = (),
                 stop: Callable[[str], bool] | None = None) -> Listing:
        """Run one query over the names (joined with their tags if asked) and build a list() result.

        `condition` is a WHERE clause on `names.name`. Rows arrive sorted by name, and the scan
        ends at the first name for which `stop(name)` is true.
        """
        if return_metadata:
            sql = ("SELECT names.name, names.uri, tags.tag FROM names"
                   f" LEFT JOIN tags ON tags.name = names.name {condition} ORDER BY names.name")
        else:
            sql = f"SELECT names.name, names.uri, NULL FROM names {condition} ORDER BY names.name"
        result: Listing = {}
        with self._reading() as db:
            for name, uri, tag in db.execute(sql, tuple(params)):
                if stop is not None and stop(name):
                    break
                if not return_metadata:
                    result[name] = uri
                    continue
                _, tags = result.setdefault(name, (uri, set()))
                if tag is not None:
                    tags.add(tag)
        return result

    def everything(self, return_metadata: bool = False) -> Listing:
        return self._listing(return_metadata)

    def optimized_prefix_list(self, prefix: str, return_metadata: bool = False) -> Listing:
        """Names for which `name.startswith(prefix)`: case-sensitive, no wildcards.

        In SQLite's binary order all names sharing a prefix sort together, right from the prefix
        itself on, so one indexed range scan finds them and stops at the first name outside.
        """
        return self._listing(return_metadata, "WHERE names.name >= ?", (prefix,),
                             stop=lambda name: not name.startswith(prefix))

    def optimized_regex_list(self, regex: str, return_metadata: bool = False) -> Listing:
        """Names matched by `re.match(regex, name)`, with the same error NameServer.list gives a bad regex."""
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise Pyro5.errors.NamingError("invalid regex: " + str(exc)) from None
        return {name: value for name, value in self.everything(return_metadata).items() if pattern.match(name)}

    def optimized_metadata_search(self, metadata_all: Iterable[str] | None = None,
                                  metadata_any: Iterable[str] | None = None,
                                  return_metadata: bool = False) -> Listing:
        """Names having all tags of `metadata_all`, or any tag of `metadata_any` (the name server passes one)."""
        wanted: Set[str]
        if metadata_any:
            wanted = {tag for tag in frozenset(metadata_any) if isinstance(tag, str)}
            having = ""
        else:
            wanted = frozenset(metadata_all or ())
            if not all(isinstance(tag, str) for tag in wanted):
                return {}
            having = f" GROUP BY name HAVING count(*) = {len(wanted)}"
        if not wanted:
            return {}
        placeholders = ",".join("?" * len(wanted))
        condition = f"WHERE names.name IN (SELECT name FROM tags WHERE tag IN ({placeholders}){having})"
        return self._listing(return_metadata, condition, wanted)

    def remove_items(self, items: Iterable[str]) -> None:
        with self._writing() as db:
            db.executemany("DELETE FROM names WHERE name = ?", [(name,) for name in items])

    def close(self) -> None:
        """Close the file; later calls raise StorageError. Safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


Storage = MemoryStorage | SqliteStorage


def make_storage(spec: str, data_dir: Path) -> Storage:
    """Build the store a `--storage` value names: "memory", "sqlite" (data_dir/names.sqlite) or "sqlite:PATH".

    A relative PATH is taken from the current folder, as a user typing it would expect.
    """
    if spec == "memory":
        return MemoryStorage()
    if spec == "sqlite":
        return SqliteStorage(Path(data_dir) / "names.sqlite")
    if isinstance(spec, str) and spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        return SqliteStorage(spec[len("sqlite:"):])
    raise StorageError(f"invalid name server storage {spec!r}: use {STORAGE_FORMS}")
