"""Each server type a host can run: the same calls work, and slow calls overlap where the type allows."""

from __future__ import annotations

import threading
import time

import pytest

from harness import wait_until
from lonja.clients import connect
from lonja.config import load_settings
from lonja.services import ServiceHost, load_target


@pytest.mark.parametrize("servertype", ["adaptive", "thread", "multiplex"])
def test_server_type_serves_calls(ns, servertype):
    settings = load_settings(environ={"LONJA_SERVICE_SERVERTYPE": servertype})
    with ServiceHost(settings, ns=ns) as host:
        host.add(load_target("echo"), name=f"echo.{servertype}")
        assert host.daemon.servertype == servertype
        with connect(f"echo.{servertype}", ns=ns) as proxy:
            assert proxy.echo([1, 2]) == [1, 2]
            assert list(proxy.count(3)) == [0, 1, 2]
            results = [f.result(timeout=30) for f in [proxy.echo.future(i) for i in range(50)]]
            assert results == list(range(50))
            started = time.monotonic()
            slow = [proxy.slow.future(0.5) for _ in range(6)]
            [f.result(timeout=30) for f in slow]
            elapsed = time.monotonic() - started
            if servertype == "multiplex":
                assert elapsed >= 6 * 0.5 * 0.9, "multiplex runs one call at a time"
            else:
                assert elapsed < 6 * 0.5 / 2, f"{servertype}: slow calls did not overlap"


def test_adaptive_keeps_serving_fast_calls_while_one_blocks(ns):
    with ServiceHost(load_settings(environ={}), ns=ns) as host:
        host.add(load_target("echo"))
        with connect("echo", ns=ns) as blocked, connect("echo", ns=ns) as other:
            started = host.daemon.stats()["calls"]
            stuck = blocked.slow.future(3)
            assert wait_until(lambda: host.daemon.stats()["calls"] > started)
            started = time.monotonic()
            assert [other.echo(i) for i in range(20)] == list(range(20))
            assert time.monotonic() - started < 2.5, "fast calls waited for the blocked one"
            assert stuck.result(timeout=30) == 3
        assert threading.active_count() < 100


def test_name_server_and_host_in_one_process_keep_their_own_pools(tmp_path):
    """`lonja up` runs both: the name server's thread count must not leak into the host, or back."""
    from Pyro5 import config as pyro_config

    from lonja.nameserver import start_nameserver
    from lonja.nameserver.server import NameServerPolicy

    settings = load_settings(environ={"LONJA_SERVICE_THREADS": "7", "LONJA_LIMITS_MAX_CONNECTIONS": "50"})
    pool_before = pyro_config.THREADPOOL_SIZE
    with start_nameserver(port=0, storage="memory", data_dir=tmp_path,
                          policy=NameServerPolicy.from_settings(settings)) as ns:
        ns.start_in_thread()
        with ServiceHost(settings, ns=(ns.host, ns.port)) as host:
            assert ns.daemon.transportServer.max_threads == 50
            assert host.daemon.transportServer.max_threads == 7
            assert pool_before == pyro_config.THREADPOOL_SIZE
