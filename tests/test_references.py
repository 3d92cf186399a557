"""Objects by reference (issue 10 §1): a service returns objects that stay on its host; the client gets
lonja proxies with every call mode, which hold those objects exactly as long as the client keeps them.

Every test runs a real name server and `lonja serve sharing_service:Carts` (tests/sharing_service.py) with
a 2-second reference lease, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys

import Pyro5.api
import pytest

from harness import PYTHON, ROOT, LonjaProcess, clean_env, run_in_threads, wait_until
from lonja.clients import (
    ReferenceGone,
    ServiceProxy,
    UsageError,
    batch,
    close,
    connect,
    shared_objects,
    uri,
)
from lonja.clients.references import shared_keeper

TESTS_PATH = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
LEASE = "2"


def serve(lonja, ns: str, *targets: str) -> LonjaProcess:
    return lonja.start("serve", *targets, "--ns", ns,
                       env={"PYTHONPATH": TESTS_PATH, "LONJA_REFERENCES_LEASE": LEASE})


@pytest.fixture
def carts(lonja, ns) -> str:
    """The carts service in its own process; returns the name server's address."""
    serve(lonja, ns, "sharing_service:Carts")
    return ns


def settled(proxy: ServiceProxy, expected: int, timeout: float = 30.0) -> bool:
    """True once the carts host counts `expected` shared objects (waiting for the client's releases)."""
    def check() -> bool:
        gc.collect()
        return shared_objects(proxy) == expected
    if wait_until(check, timeout=timeout, interval=0.2):
        return True
    print(f"{shared_objects(proxy)} shared objects, expected {expected}")
    return False


def test_a_returned_object_stays_on_the_server_and_takes_every_call_mode(carts):
    with connect("carts", ns=carts) as service:
        cart = service.new("ana")
        assert isinstance(cart, ServiceProxy)
        assert cart.add("apple") == 1                                  # plain
        cart.note.oneway()                                              # oneway (forced)
        cart.note()                                                     # oneway (the method's own flag)
        assert wait_until(lambda: cart.notes() == 2)
        assert cart.add.future("pear").result(timeout=10) == 2          # future
        assert asyncio.run(cart.add.aio("plum")) == 3                   # asyncio
        with batch(cart) as calls:                                      # batch
            calls.add("fig")
            calls.items()
        assert calls.results() == [4, ["apple", "pear", "plum", "fig"]]
        assert list(cart.walk()) == ["apple", "pear", "plum", "fig"]    # a stream
        other = service.new("bo")
        assert other.add("kiwi") == 1 and len(cart.items()) == 4          # each reference is its own object
        assert "add" in dir(cart) and "Add `item`" in cart.add.__doc__


def test_one_reference_serves_many_threads(carts):
    with connect("carts", ns=carts) as service:
        cart = service.new()

        def add_many(worker: int) -> None:
            for item in range(25):
                cart.add(f"{worker}.{item}")

        errors = run_in_threads(add_many, 8)
        assert errors == []
        assert len(cart.items()) == 200


def test_references_inside_lists_dicts_streams_and_marked_classes(carts):
    with connect("carts", ns=carts) as service:
        many = service.many(3)
        assert [cart.add("x") for cart in many] == [1, 1, 1]
        owners = service.by_owner("ana", "bo")
        assert sorted(owners) == ["ana", "bo"] and owners["bo"].add("y") == 1
        assert owners["ana"].items() == []                              # each is its own object
        assert service.coupon(15).value() == 15                         # a @remote class's instance
        streamed = list(service.stream(2))
        assert [cart.add("z") for cart in streamed] == [1, 1]


def test_pyro5_autoproxy_of_a_registered_object_arrives_as_a_lonja_proxy(carts):
    with connect("carts", ns=carts) as service:
        registered = service.pyro_registered()
        assert isinstance(registered, ServiceProxy)
        assert [registered.hit(), registered.hit.future().result(timeout=10)] == [1, 2]


def test_a_plain_pyro5_client_gets_a_pyro5_proxy_it_can_call(carts):
    host, port = carts.split(":")
    with Pyro5.api.locate_ns(host, int(port)) as ns_proxy:
        uri = ns_proxy.lookup("carts")
    with Pyro5.api.Proxy(uri) as service:
        cart = service.new("plain")
        assert isinstance(cart, Pyro5.api.Proxy)
        assert cart.add("apple") == 1


def test_a_reference_passed_home_arrives_as_the_object_and_elsewhere_as_a_proxy(lonja, ns):
    serve(lonja, ns, "sharing_service:Carts")
    lonja.start("serve", "sharing_service:Carts", "--name", "depot", "--ns", ns,
                env={"PYTHONPATH": TESTS_PATH, "LONJA_REFERENCES_LEASE": LEASE})
    with connect("carts", ns=ns) as service, connect("depot", ns=ns) as depot:
        kept = service.kept_cart()
        assert service.is_kept(kept) is True                            # home: the very object
        assert service.kind_of(kept) == "sharing_service.Cart"
        assert service.is_kept(service.new()) is False
        assert depot.kind_of(kept) == "lonja.clients.proxy.ServiceProxy"  # elsewhere: a proxy...
        assert depot.add_through(kept, "from depot") == 1               # ...that service can call
        assert kept.items() == ["from depot"]


def test_closing_a_reference_releases_it_and_later_calls_say_so(carts):
    with connect("carts", ns=carts) as service:
        baseline = shared_objects(service)
        with service.new() as cart:
            cart.add("apple")
            assert shared_objects(service) == baseline + 1
        assert settled(service, baseline)
        with pytest.raises(UsageError, match="closed"):
            cart.add("pear")
        other = service.new()
        close(other)
        assert settled(service, baseline)


def test_ten_thousand_dropped_references_are_all_released(carts, lonja):
    with connect("carts", ns=carts) as service:
        baseline = shared_objects(service)
        held = service.many(100)
        assert shared_objects(service) == baseline + 100
        del held
        for _ in range(100):
            assert sum(cart.add("x") for cart in service.many(100)) == 100
        assert settled(service, baseline)
    shown = lonja.run("show", "carts", "--ns", carts)
    assert shown.returncode == 0, shown.stderr
    assert f"shared objects on its host: {baseline}" in shown.stdout


def test_a_killed_client_loses_its_references_after_the_lease(carts, tmp_path):
    with connect("carts", ns=carts) as service:
        baseline = shared_objects(service)
        holder = subprocess.Popen([PYTHON, str(ROOT / "tests" / "reference_holder.py"), carts, "carts", "1000"],
                                  env=clean_env(tmp_path, PYTHONPATH=TESTS_PATH), stdout=subprocess.PIPE,
                                  text=True, start_new_session=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "holding 1000"
            assert shared_objects(service) == baseline + 1000
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(10)
            assert settled(service, baseline)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(10)


def test_a_client_that_exits_releases_its_references_at_once(carts, tmp_path):
    script = ("import sys; from lonja.clients import connect\n"
              "carts = connect('carts', ns=sys.argv[1]); held = carts.many(50); print(len(held))\n")
    with connect("carts", ns=carts) as service:
        baseline = shared_objects(service)
        done = subprocess.run([sys.executable, "-c", script, carts], env=clean_env(tmp_path, PYTHONPATH=TESTS_PATH),
                              capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == "50", done.stderr
        assert shared_objects(service) == baseline  # released at exit, not after a lease


def test_the_benchmark_rows_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.reference_rows", "--rounds", "1", "--calls", "20"],
                          cwd=ROOT, env=clean_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for row in ("call on an object by reference", "callback round trip, listener kept by the service",
                "create and drop 1,000 references, in one call"):
        assert row in done.stdout


def test_a_reference_its_host_dropped_says_so(carts):
    with connect("carts", ns=carts) as service:
        cart = service.new()
        cart.add("apple")
        location, object_id = Pyro5.api.URI(uri(cart)).location, Pyro5.api.URI(uri(cart)).object
        with Pyro5.api.Proxy(f"PYRO:Pyro.Daemon@{location}") as daemon:  # as a lapsed lease would

            def dropped() -> bool:  # (again, if this process's retain arrived after the release)
                daemon.shared_hold(shared_keeper().holder, {}, {object_id: 1}, [])
                return bool(daemon.shared_missing([object_id]))

            assert wait_until(dropped)
        with pytest.raises(ReferenceGone, match="no longer exists on its host"):
            cart.add("pear")
        assert service.new().add("pear") == 1       # the service and its other objects are fine
