"""A name server you can trust: dead servers leave, restarts are survived, changes can be watched."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import Pyro5.api
import pytest

from harness import port_of, wait_until
from lonja.clients import NameServerClient, OutcomeUnknown, close, connect
from lonja.clients import resolver as resolver_module
from lonja.clients.resolver import Resolver

URI = "PYRO:thing@127.0.0.1:9"

FAST = {"LONJA_NS_LEASE_TTL": "2", "LONJA_NS_SWEEP_INTERVAL": "0.2", "LONJA_NS_PROBE_INTERVAL": "0.5",
        "LONJA_NS_PROBE_GRACE": "1"}


@pytest.fixture
def fast(lonja):
    """Short leases and sweeps for every process this test starts (the bounds stay generous)."""
    lonja.env.update(FAST)
    return lonja


def names(ns: str) -> dict:
    with NameServerClient(ns) as client:
        return client.entries()


def test_sigkilled_service_leaves_within_the_lease(fast):
    _, ns = fast.nameserver()
    server = fast.start("serve", "echo", "--ns", ns)
    assert names(ns)["echo"]["instances"][0]["status"] == "serving"
    server.stop(signal.SIGKILL)
    assert wait_until(lambda: "echo" not in names(ns), timeout=20), "a dead service's name stayed listed"


def test_graceful_stop_marks_not_serving_then_removes(fast):
    _, ns = fast.nameserver()
    server = fast.start("serve", "echo", "--ns", ns)
    with NameServerClient(ns, timeout=30) as watcher:
        since = watcher.changes(-1, 0)["seq"]
        server.stop(signal.SIGTERM)
        events = []
        while not any(e["kind"] == "removed" for e in events):
            answer = watcher.changes(since, 10)
            since = answer["seq"]
            assert answer["events"], "no change within 10 s"
            events += answer["events"]
    kinds = [(e["kind"], e["status"]) for e in events if e["name"] == "echo"]
    assert kinds[:2] == [("status", "not serving"), ("removed", "not serving")]


def test_a_watcher_of_some_names_hears_of_those_only(fast):
    _, ns = fast.nameserver()
    with NameServerClient(ns, timeout=30) as follower, NameServerClient(ns) as writer:
        since = follower.changes(-1, 0)["seq"]
        for i in range(20):
            writer.register(f"other.{i}", URI)
        quiet = follower.changes(since, 0.5, names=["wanted"])
        assert quiet["events"] == [] and quiet["seq"] >= since + 20
        writer.register("wanted", URI)
        answer = follower.changes(quiet["seq"], 10, names=["wanted", "never.registered"])
        assert [(e["kind"], e["name"]) for e in answer["events"]] == [("added", "wanted")]


def test_a_client_follows_the_names_it_resolved_before_and_after_its_watcher_started(fast, monkeypatch):
    monkeypatch.setattr(resolver_module, "WATCH_POLL", 0.5)
    _, ns = fast.nameserver()
    first = [fast.start("serve", "echo", "--name", name, "--ns", ns) for name in ("early", "late")]
    resolver = Resolver.for_address(ns, 10.0, "")
    resolver.instances("early")
    assert wait_until(lambda: resolver.instances("early") and any(t.name == "lonja-watch" for t in
                                                                   threading.enumerate()), timeout=10)
    resolver.instances("late")  # asked for while the watcher waits: followed from its next request on
    time.sleep(1.0)
    assert len(resolver.instances("late")) == len(resolver.instances("early")) == 1
    for name, server in zip(("early", "late"), first):
        old = resolver.instances(name)
        fast.start("serve", "echo", "--name", name, "--ns", ns)
        server.stop(signal.SIGTERM)
        assert wait_until(lambda name=name, old=old: len(resolver.instances(name)) == 1
                          and resolver.instances(name) != old, timeout=10), f"{name} kept its dead instance"


def _plain_daemon(**kwargs):
    daemon = Pyro5.api.Daemon(**kwargs)

    @Pyro5.api.expose
    class Thing:
        def hello(self):
            return "hi"

    uri = daemon.register(Thing(), "thing")
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    return daemon, uri


def test_plain_registration_whose_object_is_gone_is_removed_and_unreachable_one_kept(fast, tmp_path):
    _, ns = fast.nameserver()
    host, port = ns.split(":")
    daemon, uri = _plain_daemon(host="127.0.0.1")
    unix_daemon, unix_uri = _plain_daemon(unixsocket=str(tmp_path / "plain.sock"))
    try:
        with Pyro5.api.locate_ns(host, int(port)) as plain:
            plain.register("plain.thing", uri)
            plain.register("plain.unix", unix_uri)
            plain.register("plain.nowhere", f"PYRO:thing@./u:{tmp_path / 'missing.sock'}")
        assert wait_until(lambda: names(ns).get("plain.thing", {}).get("instances", [{}])[0].get("status")
                          == "serving", timeout=10)
        daemon.unregister("thing")  # the port still answers, the object is gone
        with socket.create_connection(("127.0.0.1", uri.port), timeout=2):
            pass
        assert wait_until(lambda: "plain.thing" not in names(ns), timeout=20)
        assert wait_until(lambda: names(ns)["plain.nowhere"]["instances"][0]["status"] == "unreachable",
                          timeout=20), "an address nothing answers at is kept, marked unreachable"
        assert names(ns)["plain.unix"]["instances"][0]["status"] == "serving", "a live unix-socket entry stays"
    finally:
        daemon.shutdown()
        unix_daemon.shutdown()


def test_sqlite_restart_revalidates_entries(fast):
    storage = f"sqlite:{fast.tmp_path / 'names.sqlite'}"
    ns_process, ns = fast.nameserver(storage=storage)
    alive = fast.start("serve", "echo", "--ns", ns)
    doomed = fast.start("serve", "echo", "--name", "doomed", "--ns", ns)
    assert {"echo", "doomed"} <= set(names(ns))
    ns_process.stop(signal.SIGKILL)
    doomed.stop(signal.SIGKILL)
    fast.nameserver(storage=storage, port=port_of(ns))
    assert wait_until(lambda: "doomed" not in names(ns), timeout=20), "a dead entry survived the restart"
    assert "echo" in names(ns)
    assert wait_until(lambda: names(ns)["echo"]["instances"][0]["lease"], timeout=20), "the host re-claimed it"
    with connect("echo", ns=ns) as proxy:
        assert proxy.pid() == alive.pid


def test_memory_name_server_restart_services_register_again_and_keep_serving(fast):
    ns_process, ns = fast.nameserver()
    server = fast.start("serve", "echo", "--ns", ns)
    proxy = connect("echo", ns=ns)
    assert proxy.pid() == server.pid
    ns_process.stop(signal.SIGTERM)
    assert proxy.pid() == server.pid, "a service keeps serving while the name server is down"
    fast.nameserver(port=port_of(ns))
    assert wait_until(lambda: "echo" in names(ns), timeout=20), "the host did not register again"
    assert proxy.pid() == server.pid
    close(proxy)


def test_watch_command_prints_changes(fast):
    _, ns = fast.nameserver()
    watcher = fast.start("watch", "--ns", ns, ready="watching")
    server = fast.start("serve", "echo", "--ns", ns)
    assert "added    echo  127.0.0.1:" in watcher.wait_for("added")
    server.stop(signal.SIGTERM)
    watcher.wait_for("removed  echo")
    assert watcher.stop(signal.SIGINT) == 0


def test_failover_across_three_instances(fast):
    _, ns = fast.nameserver()
    servers = [fast.start("serve", "echo", "--ns", ns) for _ in range(3)]
    pids = {s.pid for s in servers}
    results: dict[str, list] = {"idempotent": [], "plain": [], "unknown": [], "failed": []}
    stop = threading.Event()

    def loop(kind: str) -> None:
        with connect("echo", ns=ns) as proxy:
            while not stop.is_set():
                try:
                    if kind == "idempotent":
                        results[kind].append(proxy.pid())
                    else:
                        results[kind].append(proxy.slow(0.01, value=os.getpid()))
                except OutcomeUnknown:
                    results["unknown"].append(kind)
                except Exception as exc:  # any other failure is what this test is about
                    results["failed"].append(repr(exc))

    threads = [threading.Thread(target=loop, args=(kind,)) for kind in ("idempotent", "plain")]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: set(results["idempotent"]) == pids, timeout=20), "calls did not spread"
    victim = servers[0]
    victim.stop(signal.SIGKILL)
    count = len(results["idempotent"])
    assert wait_until(lambda: len(results["idempotent"]) > count + 200, timeout=30)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert results["failed"] == []
    assert results["unknown"].count("idempotent") == 0, "an idempotent call in flight is retried"
    assert results["unknown"].count("plain") <= 1, "only the call in flight to the dead instance may fail"
    assert victim.pid not in results["idempotent"][count + 50:]

    host, port = ns.split(":")
    assert wait_until(lambda: _plain_pid(host, port) in pids - {victim.pid}, timeout=20)


def _plain_pid(host: str, port: str) -> int | None:
    try:
        with Pyro5.api.Proxy(f"PYRONAME:echo@{host}:{port}") as proxy:
            proxy._pyroTimeout = 2
            return proxy.pid()
    except Pyro5.errors.CommunicationError:
        return None


def test_ls_groups_instances(fast):
    _, ns = fast.nameserver()
    fast.start("serve", "echo", "--ns", ns)
    fast.start("serve", "echo", "--ns", ns)
    lines = [line for line in fast.run("ls", "echo", "--ns", ns).stdout.splitlines() if "127.0.0.1:" in line]
    assert len(lines) == 2
    assert lines[0].startswith("echo ") and lines[1].startswith(" ")
    assert all("serving" in line and "ago" in line for line in lines)


def test_acknowledged_register_survives_kill_9_of_the_name_server(fast):
    storage = f"sqlite:{fast.tmp_path / 'names.sqlite'}"
    ns_process, ns = fast.nameserver(storage=storage)
    daemon, uri = _plain_daemon(host="127.0.0.1")
    try:
        with NameServerClient(ns) as client:
            for i in range(20):
                client.register(f"durable.{i}", str(uri), {f"n:{i}"})
        ns_process.stop(signal.SIGKILL)  # right after the last acknowledgement
        fast.nameserver(storage=storage, port=port_of(ns))
        with NameServerClient(ns) as client:
            listing = client.list("durable.")
        assert listing == {f"durable.{i}": (str(uri), frozenset({f"n:{i}"})) for i in range(20)}
    finally:
        daemon.shutdown()
