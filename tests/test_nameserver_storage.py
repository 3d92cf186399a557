"""The name server's stores: SQLite must answer exactly like memory, and keep what it acknowledged."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import Pyro5.api
import Pyro5.errors
import pytest

from lonja.nameserver import LonjaNameServer, MemoryStorage, SqliteStorage, StorageError, make_storage, start_nameserver

URI = "PYRO:obj@127.0.0.1:1"
NS_NAME = "Pyro.NameServer"
REPO = Path(__file__).resolve().parents[1]

TRICKY_NAMES = ["a", "A", "a%", "a_", "aX", "ab", "a\x00", "a\x00b", "e", "é", "éa", "日本", "日本語",
                "\U0010ffff", "a\U0010ffff", "a\U0010ffffz", "svc.one", "Svc.one", "svc_x", "svcXx", "svc%y"]


@pytest.fixture(params=["memory", "sqlite"])
def ns(request, tmp_path) -> LonjaNameServer:
    """A name server object (no network) over each kind of store."""
    storage = make_storage(request.param, tmp_path)
    server = LonjaNameServer(storage)
    yield server
    storage.close()


def register_all(ns, names, metadata=None) -> None:
    for name in names:
        if name == NS_NAME:  # only the name server's daemon writes its own entry
            ns._register_self(URI, set(metadata or ()))
        else:
            ns.register(name, URI, metadata=metadata)


def test_prefix_is_case_sensitive(ns):
    register_all(ns, ["svc.two", "Svc.one", "svcthree"])
    assert set(ns.list(prefix="svc.")) == {"svc.two"}


def test_prefix_treats_underscore_and_percent_literally(ns):
    register_all(ns, ["svc_a", "svcXa", "svc%a", "svcYYa"])
    assert set(ns.list(prefix="svc_")) == {"svc_a"}
    assert set(ns.list(prefix="svc%")) == {"svc%a"}
    assert ns.remove(prefix="svc_") == 1
    assert set(ns.list()) == {"svcXa", "svc%a", "svcYYa"}


def test_prefix_listing_matches_startswith_for_every_prefix(ns):
    register_all(ns, TRICKY_NAMES)
    prefixes = {name[:i] for name in TRICKY_NAMES for i in range(1, len(name) + 1)} | {"b", "\U0010fffe", "a\x01"}
    for prefix in prefixes:
        expected = {name for name in TRICKY_NAMES if name.startswith(prefix)}
        assert set(ns.list(prefix=prefix)) == expected, prefix


def test_prefix_listing_with_metadata(ns):
    ns.register("svc.a", URI, metadata=["x", "y"])
    ns.register("svc.b", URI)
    ns.register("other", URI, metadata=["x"])
    assert ns.list(prefix="svc.", return_metadata=True) == {"svc.a": (URI, {"x", "y"}), "svc.b": (URI, set())}


def test_remove_by_prefix_never_removes_the_name_server_entry(ns):
    register_all(ns, [NS_NAME, "Pyro.other"])
    assert ns.remove(prefix="Pyro.") == 1
    assert ns.remove(NS_NAME) == 0
    assert set(ns.list()) == {NS_NAME}


def test_regex_list_and_remove(ns):
    register_all(ns, ["svc.a", "svc.b1", "xsvc.c", "SVC.d"])
    assert set(ns.list(regex=r"svc\.[a-z]$")) == {"svc.a"}
    assert set(ns.list(regex=r"svc")) == {"svc.a", "svc.b1"}
    assert ns.list(regex=r"svc\.b", return_metadata=True) == {"svc.b1": (URI, set())}
    assert ns.remove(regex=r"svc\.") == 2
    assert set(ns.list()) == {"xsvc.c", "SVC.d"}


def test_invalid_regex_gives_naming_error(ns):
    with pytest.raises(Pyro5.errors.NamingError, match="invalid regex"):
        ns.list(regex="(")


def test_prefix_and_regex_together_is_an_error(ns):
    with pytest.raises(ValueError):
        ns.list(prefix="a", regex="a")


def test_yplookup_all_and_any(ns):
    ns.register("one", URI, metadata={"red", "big"})
    ns.register("two", URI, metadata={"red"})
    ns.register("three", URI, metadata={"Red", "small"})
    ns.register("four", URI)
    assert set(ns.yplookup(meta_all=["red"])) == {"one", "two"}
    assert set(ns.yplookup(meta_all=["red", "big"])) == {"one"}
    assert set(ns.yplookup(meta_all=["red", "red"])) == {"one", "two"}
    assert ns.yplookup(meta_all=["red", "nope"]) == {}
    assert set(ns.yplookup(meta_any=["big", "small"])) == {"one", "three"}
    assert ns.yplookup(meta_any=["nope"]) == {}
    assert ns.yplookup(meta_any=["big"], return_metadata=False) == {"one": URI}
    assert ns.yplookup(meta_all=["small"]) == {"three": (URI, {"Red", "small"})}
    assert ns.yplookup() == {}


def test_metadata_is_a_plain_set(ns):
    ns.register("tagged", URI, metadata=["t"])
    ns.register("untagged", URI)
    for name, (_, metadata) in ns.list(return_metadata=True).items():
        assert type(metadata) is set, name
    assert ns.lookup("untagged", return_metadata=True) == (Pyro5.api.URI(URI), set())


def test_register_lookup_set_metadata_remove(ns):
    ns.register("svc", URI, metadata=["a"])
    assert ns.count() == 1
    assert ns.lookup("svc") == Pyro5.api.URI(URI)
    with pytest.raises(Pyro5.errors.NamingError, match="already registered"):
        ns.register("svc", URI, safe=True)
    ns.register("svc", "PYRO:other@127.0.0.1:2")
    assert ns.lookup("svc", return_metadata=True) == (Pyro5.api.URI("PYRO:other@127.0.0.1:2"), set())
    ns.set_metadata("svc", ["b", "c"])
    assert ns.lookup("svc", return_metadata=True)[1] == {"b", "c"}
    ns.set_metadata("svc", None)
    assert ns.lookup("svc", return_metadata=True)[1] == set()
    with pytest.raises(Pyro5.errors.NamingError, match="unknown name"):
        ns.set_metadata("missing", ["x"])
    assert ns.remove("svc") == 1
    assert ns.remove("svc") == 0
    with pytest.raises(Pyro5.errors.NamingError, match="unknown name"):
        ns.lookup("svc")


def test_concurrent_registrations(ns):
    def register_batch(thread_no: int) -> None:
        for i in range(20):
            ns.register(f"t{thread_no}.{i}", URI, metadata=[f"t{thread_no}"])

    threads = [threading.Thread(target=register_batch, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ns.count() == 80
    assert len(ns.yplookup(meta_any=["t0", "t3"])) == 40


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_semantics_over_the_network(storage, tmp_path):
    with start_nameserver(port=0, storage=storage, data_dir=tmp_path).start_in_thread() as server:
        with Pyro5.api.Proxy(server.uri) as ns:
            register_all(ns, ["svc.one", "Svc.one", "svc_x", "svcXx"])
            ns.register("tagged", URI, metadata=["t"])
            assert set(ns.list(prefix="svc.")) == {"svc.one"}
            assert ns.remove(prefix="svc_") == 1
            assert "svcXx" in ns.list()
            assert set(ns.yplookup(meta_all=["t"])) == {"tagged"}
            ns._pyroSerializer = "msgpack"
            listing = ns.list(return_metadata=True)
            assert sorted(listing["tagged"][1]) == ["t"]
            assert list(listing["svc.one"][1]) == []


def test_sqlite_registrations_survive_reopen(tmp_path):
    path = tmp_path / "names.sqlite"
    ns = LonjaNameServer(SqliteStorage(path))
    ns.register("kept", URI, metadata=["a", "b"])
    ns.register("gone", URI)
    ns.remove("gone")
    ns.storage.close()
    reopened = SqliteStorage(path)
    assert LonjaNameServer(reopened).list(return_metadata=True) == {"kept": (URI, {"a", "b"})}
    reopened.close()


def test_sqlite_registration_survives_kill_9(tmp_path):
    path = tmp_path / "names.sqlite"
    script = ("import os, signal, sys; from lonja.nameserver import SqliteStorage;"
              "s = SqliteStorage(sys.argv[1]); s['kept'] = ('PYRO:obj@127.0.0.1:1', {'t'});"
              "os.kill(os.getpid(), signal.SIGKILL)")
    result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, timeout=30)
    assert result.returncode == -9
    storage = SqliteStorage(path)
    assert storage["kept"] == (URI, {"t"})
    storage.close()


def test_sqlite_uses_wal_journal(tmp_path):
    storage = SqliteStorage(tmp_path / "names.sqlite")
    with sqlite3.connect(storage.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    storage.close()


def test_closed_sqlite_storage_raises_storage_error(tmp_path):
    storage = SqliteStorage(tmp_path / "names.sqlite")
    storage.close()
    storage.close()
    with pytest.raises(StorageError, match="closed"):
        len(storage)


def test_sqlite_rejects_non_str_tags(tmp_path):
    storage = SqliteStorage(tmp_path / "names.sqlite")
    with pytest.raises(TypeError):
        storage["x"] = (URI, {1})
    storage.close()


def test_make_storage_forms(tmp_path):
    assert isinstance(make_storage("memory", tmp_path), MemoryStorage)
    default = make_storage("sqlite", tmp_path / "deep" / "data")
    assert default.path == tmp_path / "deep" / "data" / "names.sqlite"
    assert default.path.exists()
    assert default.spec == f"sqlite:{default.path}"
    default.close()
    explicit = make_storage(f"sqlite:{tmp_path / 'other.db'}", tmp_path / "unused")
    assert explicit.path == tmp_path / "other.db"
    explicit.close()


@pytest.mark.parametrize("spec", ["", "sql:names.db", "sqlite:", "disk", "SQLITE", "memory:x"])
def test_make_storage_rejects_bad_spec(spec, tmp_path):
    with pytest.raises(StorageError) as info:
        make_storage(spec, tmp_path)
    message = str(info.value)
    assert repr(spec) in message and '"memory"' in message and '"sqlite:PATH"' in message


def test_corrupt_file_gives_storage_error_naming_it(tmp_path):
    path = tmp_path / "names.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=str(path)):
        SqliteStorage(path)


def test_unusable_paths_give_storage_error_naming_them(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(StorageError, match=str(folder)):
        SqliteStorage(folder)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StorageError, match=str(blocker / "names.sqlite")):
        SqliteStorage(blocker / "names.sqlite")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_read_only_file_gives_storage_error(tmp_path):
    path = tmp_path / "names.sqlite"
    SqliteStorage(path).close()
    path.chmod(0o444)
    with pytest.raises(StorageError, match=str(path)):
        SqliteStorage(path)
