"""Nothing lost, nobody in: the name server keeps what it should, refuses what it must, survives bad calls.

Each behaviour is checked against a real name server over real sockets (a `lonja ns` process, or one
started in this process), with plain Pyro5 proxies and lonja's own client and commands.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import hypothesis.strategies as st
import Pyro5.api
import Pyro5.errors
import pytest
from hypothesis import HealthCheck, given, settings

from harness import clean_env, free_port, wait_until
from lonja.clients import NameNotFound, NameServerClient
from lonja.clients.errors import NameTaken
from lonja.nameserver import (
    LonjaNameServer,
    MemoryStorage,
    NameServerPolicy,
    SqliteStorage,
    StorageError,
    start_nameserver,
)
from lonja.nameserver.errors import NameAlreadyServed

URI = "PYRO:obj@127.0.0.1:1"
FAST = {"LONJA_NS_LEASE_TTL": "2", "LONJA_NS_SWEEP_INTERVAL": "0.2", "LONJA_NS_PROBE_INTERVAL": "0.5",
        "LONJA_NS_PROBE_GRACE": "1"}
ADMIN, SHOP, VIEWER = "rootsecret1", "shopsecret1", "viewsecret1"
AUTH = {"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_ADMIN_TOKENS": f"root:{ADMIN}",
        "LONJA_AUTH_SERVICE_TOKENS": f"shop:{SHOP}", "LONJA_AUTH_READER_TOKENS": f"viewer:{VIEWER}"}


def plain_ns(address: str, token: str | None = None) -> Pyro5.api.Proxy:
    """A plain Pyro5 proxy on the name server; with `token`, it presents it as lonja's client does."""
    proxy = Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{address}")
    if token:
        proxy._pyroHandshake = {"lonja": 1, "token": token}
    return proxy


def entries(address: str, token: str | None = None) -> dict:
    with NameServerClient(address, token=token) as client:
        return client.entries()


def status_of(address: str, name: str) -> str | None:
    instances = entries(address).get(name, {}).get("instances") or [{}]
    return instances[0].get("status")


def serve_thing(port: int = 0) -> tuple[Pyro5.api.Daemon, Pyro5.api.URI]:
    """A plain Pyro5 daemon in this process serving one object, "thing"."""
    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=port)

    @Pyro5.api.expose
    class Thing:
        def hello(self) -> str:
            return "hi"

    uri = daemon.register(Thing(), "thing")
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    return daemon, uri


@pytest.fixture
def inprocess_ns(tmp_path):
    """A name server in this process with quick sweeps and probes; yields its handle."""
    policy = NameServerPolicy(lease_ttl=2.0, sweep_interval=0.2, probe_interval=0.3, probe_grace=1.0)
    with start_nameserver(port=0, storage="memory", data_dir=tmp_path, policy=policy).start_in_thread() as handle:
        yield handle


# -- 5: remove() with no filter removes nothing ---------------------------------------------------------

def test_remove_without_a_filter_removes_nothing(lonja):
    _, ns = lonja.nameserver()
    with plain_ns(ns) as plain:
        for name in ("a.one", "a.two", "b"):
            plain.register(name, URI)
        assert plain.remove() == 0
        assert plain.remove("") == 0
        assert plain.remove(prefix="") == 0
        assert plain.remove(regex="") == 0
        assert plain.remove(None, "", "") == 0
        assert {"a.one", "a.two", "b"} <= set(plain.list())
        assert plain.remove(prefix="a.") == 2
        assert set(plain.list()) == {"Pyro.NameServer", "b"}


def test_pyro5_nsc_removematching_empty_pattern_keeps_the_registry(lonja):
    _, ns = lonja.nameserver()
    host, port = ns.split(":")
    with plain_ns(ns) as plain:
        plain.register("kept.one", URI)
        plain.register("kept.two", URI)
    nsc = Path(sys.executable).with_name("pyro5-nsc")
    result = subprocess.run([str(nsc), "-n", host, "-p", port, "removematching", ""], input="y\n",
                            capture_output=True, text=True, timeout=30, env=lonja.env)
    assert "0 items removed" in result.stdout, result.stdout + result.stderr
    with plain_ns(ns) as plain:
        assert {"kept.one", "kept.two"} <= set(plain.list())


# -- 6: plain registrations are kept while their address answers, and for a grace period after -----------

def test_unreachable_plain_registration_is_kept_for_its_grace_then_removed(inprocess_ns):
    ns = f"127.0.0.1:{inprocess_ns.port}"
    daemon, uri = serve_thing()
    port = uri.port
    with plain_ns(ns) as plain:
        plain.register("plain.thing", uri)
    assert wait_until(lambda: status_of(ns, "plain.thing") == "serving", timeout=10)
    daemon.shutdown()
    assert wait_until(lambda: status_of(ns, "plain.thing") == "unreachable", timeout=20)

    with plain_ns(ns) as plain:
        assert plain.lookup("plain.thing") == uri, "lookup still answers, so reconnecting clients find it"
        with pytest.raises(Pyro5.errors.NamingError, match="no serving instance"):
            plain.lonja_instances("plain.thing")
    with NameServerClient(ns) as client, pytest.raises(NameNotFound, match="unreachable"):
        client.instances("plain.thing")

    restarted, _ = serve_thing(port)  # the same server back on the same address
    try:
        with Pyro5.api.Proxy(f"PYRONAME:plain.thing@{ns}") as proxy:
            assert proxy.hello() == "hi"
        assert wait_until(lambda: status_of(ns, "plain.thing") == "serving", timeout=10)
        inprocess_ns.daemon.nameserver.unreachable_grace = 0.5
    finally:
        restarted.shutdown()
    assert wait_until(lambda: "plain.thing" not in entries(ns), timeout=20), "gone after the grace period"


# -- 7: a name served under a lease cannot be taken over by a plain register() ---------------------------

def test_plain_register_cannot_take_over_a_leased_name_with_auth_off(lonja):
    _, ns = lonja.nameserver()
    lonja.start("serve", "echo", "--ns", ns)
    echo_uri = entries(ns)["echo"]["uri"]
    with plain_ns(ns) as plain:
        with pytest.raises(Pyro5.errors.NamingError) as refused:
            plain.register("echo", "PYRO:impostor@127.0.0.1:1")
        assert refused.value.served_uri == echo_uri
        assert refused.value.served_class == "lonja.services.builtin.echo.Echo"
        assert echo_uri in str(refused.value) and "Echo" in str(refused.value)
        plain.ping()  # the refusal is an answer: the connection carries on
        assert str(plain.lookup("echo")) == echo_uri


def test_admin_cannot_take_over_a_leased_name(lonja):
    lonja.env.update(AUTH)
    _, ns = lonja.nameserver()
    lonja.start("serve", "echo", "--ns", ns, env={"LONJA_AUTH_TOKEN": SHOP})
    with NameServerClient(ns, token=ADMIN) as admin, pytest.raises(NameTaken, match="already served"):
        admin.register("echo", "PYRO:impostor@127.0.0.1:1")
    assert entries(ns, token=ADMIN)["echo"]["instances"][0]["class"] == "lonja.services.builtin.echo.Echo"


def test_refusal_is_typed_in_process(tmp_path):
    server = LonjaNameServer(MemoryStorage())
    server.lonja_register("svc", URI, ttl=60, class_name="pkg.Svc")
    with pytest.raises(NameAlreadyServed) as refused:
        server.register("svc", "PYRO:other@127.0.0.1:2")
    assert (refused.value.served_uri, refused.value.served_class) == (URI, "pkg.Svc")


# -- 8 and 10a: every argument is checked; bad calls get answers and break nothing -------------------------

BAD_CALLS = [
    ("register", ("a\ud800", URI), ValueError),
    ("register", ("x" * 100_000, URI), ValueError),
    ("register", ("", URI), ValueError),
    ("register", (123, URI), TypeError),
    ("register", ("ok", "not a uri"), Pyro5.errors.PyroError),
    ("register", ("ok", URI, False, "one string"), TypeError),
    ("register", ("ok", URI, False, [1, 2]), TypeError),
    ("register", ("ok", URI, False, [f"t{i}" for i in range(1000)]), ValueError),
    ("lonja_register", ("ok", URI, None, math.nan), ValueError),
    ("lonja_register", ("ok", URI, None, math.inf), ValueError),
    ("lonja_register", ("ok", URI, None, -5), ValueError),
    ("lonja_register", ("ok", URI, None, "10"), TypeError),
    ("lonja_renew", ("not a list",), TypeError),
    ("lonja_renew", ([["ok"]],), TypeError),
    ("lonja_set_status", ("ok", URI, "dancing"), ValueError),
    ("lonja_changes", ("0",), TypeError),
    ("lonja_changes", (0, math.nan), ValueError),
    ("lonja_changes", (0, -1), ValueError),
    ("lonja_changes", (0, 0, 42), TypeError),
    ("lonja_changes", (0, 0, "", "one string"), TypeError),
    ("lonja_changes", (0, 0, "", [1]), TypeError),
    ("lonja_changes", (0, 0, "", [f"n{i}" for i in range(10_001)]), ValueError),
    ("lonja_list", ("\udcff",), ValueError),
    ("list", ("p" * 10_000,), ValueError),
    ("yplookup", (["a\udc00"],), ValueError),
    ("set_metadata", ("ok", "tags"), TypeError),
    ("lookup", ("\ud800",), ValueError),
    ("remove", (None, "\ud800"), ValueError),
]


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_bad_calls_get_error_answers_and_break_nothing(lonja, storage):
    lonja.env.update(FAST)
    _, ns = lonja.nameserver(storage=f"sqlite:{lonja.tmp_path / 'names.sqlite'}" if storage == "sqlite"
                             else "memory")
    watch = lonja.start("watch", "--ns", ns, ready="watching")
    with NameServerClient(ns, timeout=30) as follower:
        since = follower.changes(-1, 0)["seq"]
        with plain_ns(ns) as plain:
            plain._pyroSerializer = "serpent"  # serpent carries lone surrogates
            for method, args, error in BAD_CALLS:
                with pytest.raises(error) as raised:
                    getattr(plain, method)(*args)
                assert len(str(raised.value)) < 300, f"{method} echoed a huge input"
            assert plain.list().keys() == {"Pyro.NameServer"}, "nothing was stored"
            plain.register("good.name", URI)
        answer = follower.changes(since, 10)
        changes = [(e["kind"], e["name"]) for e in answer["events"]]
        assert changes[0] == ("added", "good.name") and {name for _, name in changes} == {"good.name"}
    watch.wait_for("added    good.name")
    with plain_ns(ns) as plain:
        assert plain.lookup("good.name") == Pyro5.api.URI(URI)


# -- 9: the sweep is never held up by probes -----------------------------------------------------------

STOPPABLE_SERVER = """
import Pyro5.api
from Pyro5 import config
config.SERVERTYPE = "multiplex"

@Pyro5.api.expose
class Thing:
    def hello(self):
        return "hi"

daemon = Pyro5.api.Daemon(host="127.0.0.1")
print(daemon.register(Thing(), "thing"), flush=True)
daemon.requestLoop()
"""


def test_lease_expiry_is_on_time_while_probes_hang(lonja):
    lonja.env.update(FAST)
    _, ns = lonja.nameserver()
    stopped = subprocess.Popen([sys.executable, "-c", STOPPABLE_SERVER], stdout=subprocess.PIPE, text=True,
                               env=clean_env(lonja.tmp_path), start_new_session=True)
    try:
        uri = stopped.stdout.readline().strip()
        with plain_ns(ns) as plain:
            for i in range(30):
                plain.register(f"stopped.{i}", uri)
        stopped.send_signal(signal.SIGSTOP)
        echo = lonja.start("serve", "echo", "--ns", ns)
        assert "echo" in entries(ns)
        echo.stop(signal.SIGKILL)
        assert wait_until(lambda: "echo" not in entries(ns), timeout=20), "a dead host's lease outlived the sweep"
        with plain_ns(ns) as plain:
            with pytest.raises(Pyro5.errors.NamingError, match="unknown name"):
                plain.lookup("echo")
        assert {f"stopped.{i}" for i in range(30)} <= set(entries(ns)), "a stopped server still accepts TCP"
    finally:
        stopped.send_signal(signal.SIGCONT)
        stopped.kill()
        stopped.wait(10)


# -- 10: hidden tags, maintenance, owners, damaged files, loaded count ----------------------------------

def test_owner_tag_never_matches_nor_shows(lonja):
    _, ns = lonja.nameserver()
    with plain_ns(ns) as plain:
        plain.register("tagged", URI, metadata={"team:a"})
        assert plain.yplookup(meta_all=["lonja:owner=anonymous"]) == {}
        assert plain.yplookup(meta_any=["lonja:owner=anonymous"]) == {}
        assert plain.yplookup(meta_all=["team:a", "lonja:owner=anonymous"]) == {}
        assert set(plain.yplookup(meta_any=["team:a", "lonja:owner=anonymous"])) == {"tagged"}
        assert plain.lookup("tagged", return_metadata=True)[1] == {"team:a"}
        assert plain.list(return_metadata=True)["tagged"][1] == {"team:a"}
        assert plain.yplookup(meta_all=["team:a"])["tagged"][1] == {"team:a"}
    assert entries(ns)["tagged"]["metadata"] == ["team:a"]


def test_sweep_and_owners_are_for_admins(lonja):
    lonja.env.update(AUTH)
    _, ns = lonja.nameserver()
    with NameServerClient(ns, token=SHOP) as shop:
        shop.register("shop.orders", URI)
    with plain_ns(ns) as anonymous:
        with pytest.raises(Pyro5.errors.NamingError, match="admin"):
            anonymous.sweep()
        anonymous.ping()  # an error answer, not a dropped connection
    with plain_ns(ns, token=SHOP) as service, pytest.raises(Pyro5.errors.NamingError, match="admin"):
        service.sweep()
    with plain_ns(ns, token=ADMIN) as admin:
        assert admin.sweep() is None
    assert entries(ns, token=VIEWER)["shop.orders"]["instances"][0]["owner"] == ""
    assert entries(ns, token=SHOP)["shop.orders"]["instances"][0]["owner"] == ""
    assert entries(ns, token=ADMIN)["shop.orders"]["instances"][0]["owner"] == "shop"


def test_empty_sqlite_file_is_refused(lonja):
    path = lonja.tmp_path / "names.sqlite"
    path.write_bytes(b"")
    result = lonja.run("ns", "--port", str(free_port()), "--storage", f"sqlite:{path}", timeout=30)
    assert result.returncode != 0
    assert f"{path} is empty (0 bytes)" in result.stderr + result.stdout
    assert "move it away" in result.stderr + result.stdout
    assert path.stat().st_size == 0, "the file was left as it was"


def test_damaged_or_foreign_sqlite_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00not sqlite" * 500)
    with pytest.raises(StorageError, match="is not a SQLite database"):
        SqliteStorage(garbage)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE pyro_names (id INTEGER PRIMARY KEY, name TEXT, uri TEXT)")
    with pytest.raises(StorageError, match="not a lonja name store"):
        SqliteStorage(foreign)
    SqliteStorage(tmp_path / "new" / "names.sqlite").close()  # a path that does not exist yet is fine


def test_loaded_names_are_counted_and_leased_ones_expire_after_a_restart(tmp_path):
    path = tmp_path / "names.sqlite"
    first = LonjaNameServer(SqliteStorage(path))
    first.register("plain.one", URI)
    first.register("plain.two", URI)
    first.lonja_register("leased", "PYRO:leased@127.0.0.1:3", ttl=1.0, class_name="pkg.Svc")
    first.storage.close()
    policy = NameServerPolicy(sweep_interval=0.2, probe_interval=60.0)
    with start_nameserver(port=0, storage=f"sqlite:{path}", data_dir=tmp_path, policy=policy).start_in_thread() \
            as handle:
        assert handle.daemon.nameserver.loaded == 3
        ns = f"127.0.0.1:{handle.port}"
        assert entries(ns)["leased"]["instances"][0]["lease"] is True
        assert wait_until(lambda: "leased" not in entries(ns), timeout=20), "its host never renewed"
        assert {"plain.one", "plain.two"} <= set(entries(ns))


# -- memory and sqlite answer alike, whatever they are asked ----------------------------------------------

NAME_ALPHABET = st.sampled_from(["a", "b", ".", "_", "%", "é", "日", "\x00", "\ud800", "\udfff", "\U0010ffff"])
NAMES = st.one_of(st.just(""), st.text(NAME_ALPHABET, min_size=1, max_size=4), st.just("Pyro.NameServer"))
TAGS = st.lists(st.one_of(st.text(NAME_ALPHABET, max_size=3), st.just("lonja:owner=anonymous")), max_size=3)
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("register"), NAMES, TAGS),
    st.tuples(st.just("lonja_register"), NAMES, TAGS),
    st.tuples(st.just("set_metadata"), NAMES, TAGS),
    st.tuples(st.just("remove"), NAMES),
    st.tuples(st.just("remove_prefix"), NAMES),
    st.tuples(st.just("remove_regex"), st.sampled_from(["", "a", "a.", "(", "[ab]", ".*\\.", "\ud800"])),
    st.tuples(st.just("list_prefix"), NAMES),
    st.tuples(st.just("list_regex"), st.sampled_from(["", "a", "b$", "(", ".*"])),
    st.tuples(st.just("lookup"), NAMES),
    st.tuples(st.just("yplookup_all"), TAGS),
    st.tuples(st.just("yplookup_any"), TAGS),
    st.tuples(st.just("instances"), NAMES),
    st.tuples(st.just("count")),
), max_size=25)


def _apply(server: LonjaNameServer, operation: tuple) -> object:
    kind, *args = operation
    calls = {
        "register": lambda name, tags: server.register(name, URI, metadata=tags),
        "lonja_register": lambda name, tags: server.lonja_register(name, URI, tags, 60.0, "pkg.C"),
        "set_metadata": lambda name, tags: server.set_metadata(name, tags),
        "remove": lambda name: server.remove(name),
        "remove_prefix": lambda prefix: server.remove(prefix=prefix),
        "remove_regex": lambda regex: server.remove(regex=regex),
        "list_prefix": lambda prefix: server.list(prefix=prefix, return_metadata=True),
        "list_regex": lambda regex: server.list(regex=regex, return_metadata=True),
        "lookup": lambda name: server.lookup(name, return_metadata=True),
        "yplookup_all": lambda tags: server.yplookup(meta_all=tags),
        "yplookup_any": lambda tags: server.yplookup(meta_any=tags),
        "instances": lambda name: server.lonja_instances(name),
        "count": lambda: server.count(),
    }
    try:
        return ("ok", calls[kind](*args))
    except Exception as exc:
        return ("error", type(exc))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_memory_and_sqlite_name_servers_answer_alike(tmp_path_factory, operations):
    folder = tmp_path_factory.mktemp("alike")
    memory = LonjaNameServer(MemoryStorage())
    sqlite = LonjaNameServer(SqliteStorage(folder / "names.sqlite"))
    try:
        for operation in operations:
            assert _apply(memory, operation) == _apply(sqlite, operation), operation
        assert memory.list(return_metadata=True) == sqlite.list(return_metadata=True)
        assert _stored(memory) == _stored(sqlite)
    finally:
        sqlite.storage.close()


def _stored(server: LonjaNameServer) -> dict:
    return {name: (uri, frozenset(tags)) for name, (uri, tags) in server.storage.everything(True).items()}
