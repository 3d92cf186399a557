"""The fast subset of the adversarial suite (`python -m benchmarks.stress`): what a user sees under attack.

Most tests share one hardened name server and echo host (small caps and deadlines, set through LONJA_*
variables); each test first checks that they still answer, and starts them again if not.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import Pyro5.api
import Pyro5.errors
import pytest

from benchmarks import stress_kit as kit
from harness import wait_until

CAP = 32
PER_PEER = 16
DEADLINE = 1.0
IDLE = 2.0
HARDENED = kit.settings_env(limits_max_connections=CAP, limits_max_connections_per_peer=PER_PEER,
                            limits_max_pending_per_peer=4, limits_handshake_timeout=DEADLINE,
                            limits_receive_timeout=DEADLINE, limits_idle_timeout=IDLE,
                            limits_max_message_size=10 * 1024 * 1024)
TARGETS = ["name server", "service host"]


class Hardened:
    """The shared cluster, restarted if an earlier test left it unable to answer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.runs = 0
        self.cluster: kit.Cluster | None = None

    def ready(self) -> kit.Cluster:
        if self.cluster is None or not kit.answers(self.cluster.ns, self.cluster.echo_uri(), timeout=5):
            self.stop()
            self.runs += 1
            self.cluster = kit.Cluster(self.folder / f"run{self.runs}", HARDENED)
            try:
                self.cluster.start_ns()
                self.cluster.start_echo()
            except BaseException:
                self.stop()
                raise
        return self.cluster

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    hardened = Hardened(tmp_path_factory.mktemp("adversarial"))
    yield hardened
    hardened.stop()


@pytest.fixture
def cluster(shared: Hardened) -> kit.Cluster:
    return shared.ready()


def target(cluster: kit.Cluster, which: str) -> tuple[kit.Address, str, int]:
    """(address, object id, pid) of the name server or the echo host."""
    if which == "name server":
        return cluster.ns_address, kit.NS_OBJECT, cluster.ns_process.pid
    return cluster.echo_address(), "echo", cluster.hosts[0].pid


def assert_bystander_served(bystander: kit.Bystander, cluster: kit.Cluster, worst: float = kit.LATENCY_BAR) -> None:
    assert bystander.failures == [], f"the bystander failed {len(bystander.failures)} of {bystander.calls} calls"
    assert bystander.calls > 0
    assert bystander.worst < worst, f"the bystander waited {bystander.worst:.2f} s for one call"
    assert kit.answers(cluster.ns, cluster.echo_uri()), "the servers no longer answer a new client"


@pytest.mark.parametrize("which", TARGETS)
def test_fuzzed_input_gets_an_error_answer_or_a_close_never_a_hang(cluster, which):
    address, object_id, pid = target(cluster, which)
    probes = kit.fuzz_probes(object_id, random_inputs=10, header_flips=10, bombs=False, body_wait=DEADLINE + 3)
    with kit.Bystander(cluster.ns) as bystander:
        result = kit.fuzz(address, object_id, probes, pid, deadline=40)
    assert result.server_alive
    assert result.tried == len(probes)
    assert result.hangs == [], {label: result.outcomes[label] for label in result.hangs}
    assert result.errors == []
    assert_bystander_served(bystander, cluster)


@pytest.mark.parametrize("which", TARGETS)
def test_compression_bombs_do_not_grow_the_servers_memory(cluster, which):
    address, object_id, pid = target(cluster, which)
    bombs = [p for p in kit.fuzz_probes(object_id, 0, 0) if "bomb" in p.label]
    assert len(bombs) == 2  # in the connect message and in a call
    with kit.Bystander(cluster.ns) as bystander:
        result = kit.fuzz(address, object_id, bombs, pid)
    assert result.hangs == [] and result.errors == [], result.outcomes
    for label, growth in result.growth_mb.items():
        assert growth < 200, f"{label}: the server grew by {growth:.0f} MB ({result.outcomes[label]})"
    assert "too large" in result.outcomes[bombs[0].label] or result.outcomes[bombs[0].label].startswith("closed")
    assert_bystander_served(bystander, cluster)


@pytest.mark.parametrize("which", TARGETS)
def test_marshal_is_refused_at_connect_without_freezing_the_server(cluster, which):
    address, object_id, _ = target(cluster, which)
    probe = next(p for p in kit.fuzz_probes(object_id, 0, 0, bomb_mb=1) if "marshal list" in p.label)
    with kit.Bystander(cluster.ns, period=0.01) as bystander:
        assert wait_until(lambda: bystander.calls >= 10)
        started = time.monotonic()
        outcome, what = kit.send_probe(address, probe, object_id)
        elapsed = time.monotonic() - started
        served = bystander.calls
        assert wait_until(lambda: bystander.calls >= served + 10)  # and it goes on being served
    assert outcome == "closed" or what.startswith("CONNECTFAIL"), (outcome, what)
    assert elapsed < 2.0, f"the refusal took {elapsed:.1f} s"
    assert_bystander_served(bystander, cluster, worst=1.0)


@pytest.mark.parametrize("which", TARGETS)
def test_silent_and_slow_connections_are_dropped_after_the_handshake_deadline(cluster, which):
    address, _, _ = target(cluster, which)
    result = kit.flood(address, 6, watch=DEADLINE + 3, slow_every=2)
    assert result.opened == 6
    assert result.still_open == 0, f"{result.still_open} connections still open {DEADLINE + 3:.0f} s later"
    assert result.slowest_drop < DEADLINE + 2.5


@pytest.mark.parametrize("which", TARGETS)
def test_idle_connection_is_dropped_after_the_idle_timeout(cluster, which):
    address, object_id, _ = target(cluster, which)
    result = kit.flood(address, 2, watch=IDLE + 3, idle_object=object_id)
    assert result.opened == 2, "the handshakes should have succeeded"
    assert result.still_open == 0, f"idle connections still open {IDLE + 3:.0f} s later"
    assert result.slowest_drop >= IDLE * 0.5, "dropped long before limits.idle_timeout"


@pytest.mark.parametrize("which", TARGETS)
def test_a_peer_over_the_cap_gets_a_one_line_too_many_connections_answer(cluster, which):
    address, object_id, _ = target(cluster, which)
    held, refusals = [], []
    try:
        for source in [f"127.0.0.{n}" for n in range(2, 2 + 2 * CAP // PER_PEER + 2)]:
            for _ in range(PER_PEER + 1):
                try:
                    held.append(kit.session(address, object_id, source, timeout=3))
                except ConnectionError as exc:
                    refusals.append(str(exc))
                    break
            if any("too many connections (" in r for r in refusals):
                break
        assert any(f"too many connections from 127.0.0.2 ({PER_PEER})" in r for r in refusals), refusals
        assert any("too many connections (" in r for r in refusals), refusals
        uri = cluster.echo_uri() if which == "service host" else f"PYRO:{kit.NS_OBJECT}@{cluster.ns}"
        with pytest.raises(Pyro5.errors.CommunicationError, match=r"too many connections \(\d+\)") as refused:
            with Pyro5.api.Proxy(uri) as proxy:
                proxy._pyroTimeout = 5
                proxy._pyroBind()
        assert "\n" not in str(refused.value).strip()
    finally:
        for sock in held:
            sock.close()
    assert kit.answers(cluster.ns, cluster.echo_uri()), "no room again after the held connections closed"


@pytest.mark.parametrize("which", TARGETS)
def test_a_flood_from_another_address_does_not_lock_out_a_client(cluster, which):
    address, _, _ = target(cluster, which)
    with kit.Bystander(cluster.ns, cluster.echo_uri(), fresh=True, period=0.05) as bystander:
        result = kit.flood(address, CAP + 8, watch=2.0, source=kit.OTHER_PEER)
    assert result.opened + result.refused_at_connect == CAP + 8
    assert_bystander_served(bystander, cluster)


def test_registration_churn_loses_no_acknowledged_name(cluster):
    with kit.Bystander(cluster.ns) as bystander:
        ledger = kit.churn(cluster.ns, cluster.echo_uri(), threads=4, seconds=2.0)
    assert cluster.ns_process.proc.poll() is None, "the name server exited during the churn"
    names = kit.listed(cluster.ns, "churn.")
    assert ledger.acknowledged > 50 and ledger.failed == 0
    assert ledger.lost(names) == []
    assert ledger.ghosts(names) == []
    assert_bystander_served(bystander, cluster)


def test_kill_9_of_the_name_server_loses_no_acknowledged_registration(lonja, tmp_path):
    storage = f"sqlite:{tmp_path / 'names.sqlite'}"
    process, ns = lonja.nameserver(storage=storage)
    lonja.start("serve", "echo", "--ns", ns)
    uri = kit.plain_call(f"PYRO:{kit.NS_OBJECT}@{ns}", "lookup", "echo")
    ledger, stop = kit.Ledger(), threading.Event()
    registrars = [threading.Thread(target=kit.register_until, args=(ns, str(uri), stop, ledger, f"durable.{t}."))
                  for t in range(2)]
    with kit.Bystander(ns, lookups=False) as bystander:
        for thread in registrars:
            thread.start()
        try:
            assert wait_until(lambda: ledger.acknowledged > 20)
            process.send_signal(signal.SIGKILL)
            process.proc.wait(10)
            before_restart = ledger.acknowledged
            lonja.nameserver(storage=storage, port=int(ns.rsplit(":", 1)[1]))
            assert wait_until(lambda: ledger.acknowledged > before_restart + 20)  # registrations go on
        finally:
            stop.set()
            for thread in registrars:
                thread.join(10)
    assert ledger.acknowledged > 20
    assert ledger.lost(kit.listed(ns, "durable.")) == []
    time.sleep(2.0)  # past the first sweep, which probes what was reloaded from the file
    assert ledger.lost(kit.listed(ns, "durable.")) == []
    assert bystander.failures == []


def test_kill_9_of_one_of_three_instances_fails_only_calls_in_flight(lonja, ns):
    hosts = [lonja.start("serve", "echo", "--ns", ns) for _ in range(3)]
    clients = 4

    def kill_one() -> None:
        time.sleep(1.0)
        hosts[1].send_signal(signal.SIGKILL)

    load = kit.hammer(ns, clients, seconds=3.0, during=kill_one)
    assert hosts[1].proc.wait(10) == -signal.SIGKILL
    assert load.calls > 100
    assert len(load.errors) <= clients, load.errors[:3]


@pytest.mark.parametrize("damage", ["0-byte file", "truncated file", "garbage file"])
def test_damaged_storage_stops_the_name_server_with_one_line(lonja, tmp_path, damage):
    store = kit.damaged_stores(tmp_path / "stores")[damage]
    attempt = kit.try_start_ns(store, lonja.env, tmp_path)
    assert not attempt.started, "the name server started on a damaged file"
    assert attempt.exit_code not in (None, 0)
    assert "Traceback" not in attempt.output
    assert attempt.refused_cleanly, attempt.output
