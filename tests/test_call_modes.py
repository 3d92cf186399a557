"""Clients keep working: oneway, futures, asyncio, batches and one proxy shared by many threads."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from Pyro5.client import Proxy

from harness import run_in_threads, wait_until
from lonja import clients
from lonja.clients import RemoteError, connect, uri


def host_stats(proxy) -> dict:
    """The counters of the daemon hosting `proxy`'s service (oneway done/failed, live threads)."""
    location = uri(proxy).split("@")[1]
    with Proxy(f"PYRO:Pyro.Daemon@{location}") as daemon:
        return daemon.stats()


def test_futures_overlap_in_time(ns, echo):
    with connect("echo", ns=ns) as proxy:
        started = time.monotonic()
        futures = [proxy.slow.future(0.5, value=i) for i in range(10)]
        assert sorted(f.result(timeout=30) for f in futures) == list(range(10))
        assert time.monotonic() - started < 10 * 0.5 / 2, "ten 0.5 s calls ran one after another"


def test_many_futures_of_a_quick_method_travel_in_batches_and_aio_too(ns, echo):
    """The host says which methods are slow; quick ones share batch requests, whatever the client's clock."""
    with connect("echo", ns=ns) as proxy:
        proxy.echo(0)  # the first reply tells the client that echo is quick
        calls_before = host_stats(proxy)["calls"]
        futures = [proxy.echo.future(i) for i in range(1000)]
        assert [f.result(timeout=60) for f in futures] == list(range(1000))

        async def gather() -> list:
            return await asyncio.gather(*(proxy.echo.aio(i) for i in range(1000)))

        assert asyncio.run(gather()) == list(range(1000))
        requests = host_stats(proxy)["calls"] - calls_before
        assert requests < 2000 // 4, f"2,000 quick calls took {requests} requests: they were not batched"


def test_slow_methods_are_never_batched_so_their_calls_overlap(ns, echo):
    with connect("echo", ns=ns) as proxy:
        proxy.slow(0.01)  # now the host knows slow is slow, and says so in its reply
        calls_before = host_stats(proxy)["calls"]
        futures = [proxy.slow.future(0.01, value=i) for i in range(40)]
        assert [f.result(timeout=60) for f in futures] == list(range(40))
        assert host_stats(proxy)["calls"] - calls_before == 40, "slow calls went out in batches"


def test_future_api_wait_as_completed_and_errors(ns, echo):
    with connect("echo", ns=ns) as proxy:
        done_callbacks = []
        future = proxy.echo.future("x")
        future.add_done_callback(lambda f: done_callbacks.append(f.result()))
        assert future.result(timeout=10) == "x"
        assert wait_until(lambda: done_callbacks == ["x"])

        failing = proxy.fail.future("nope")
        assert isinstance(failing.exception(timeout=10), RemoteError)
        assert failing.exception().remote_type == "lonja.services.builtin.echo.EchoError"

        futures = [proxy.slow.future(0.05 * i, value=i) for i in range(5)]
        done, pending = clients.wait(futures, timeout=30)
        assert len(done) == 5 and not pending
        assert sorted(f.result() for f in clients.as_completed(futures)) == list(range(5))

        stream = proxy.count.future(3).result(timeout=10)
        assert list(stream) == [0, 1, 2]


def test_future_cancel_before_it_starts(ns, echo):
    with connect("echo", ns=ns) as proxy:
        blockers = [proxy.slow.future(0.3) for _ in range(64)]  # more than the executor's workers
        late = proxy.notify.future("cancelled")
        assert late.cancel()
        clients.wait(blockers, timeout=60)
        assert late.cancelled()
        assert proxy.last() != "cancelled"


def test_aio_calls_overlap_and_do_not_block_the_loop(ns, echo):
    async def main(proxy):
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(*(proxy.slow.aio(0.5, value=i) for i in range(10)))
        elapsed = time.monotonic() - started
        tick_task.cancel()
        assert results == list(range(10))
        assert elapsed < 10 * 0.5 / 2
        assert ticks >= 10, "the event loop was blocked during the calls"
        assert await proxy.wait.aio(0.01, value="async") == "async"
        with pytest.raises(RemoteError):
            await proxy.fail.aio("x")
        assert [item async for item in await proxy.count.aio(3)] == [0, 1, 2]

    with connect("echo", ns=ns) as proxy:
        asyncio.run(main(proxy))


def test_one_proxy_used_by_16_threads(ns, echo):
    results: dict[int, list] = {}
    with connect("echo", ns=ns) as proxy:
        barrier = threading.Barrier(16)

        def worker(index: int) -> None:
            barrier.wait()
            results[index] = [proxy.echo((index, i)) for i in range(50)]
            results[index].append(list(proxy.count(3)))

        errors = run_in_threads(worker, 16)
    assert not errors, errors[:3]
    for index in range(16):
        assert results[index][:50] == [[index, i] for i in range(50)]
        assert results[index][50] == [0, 1, 2]


def test_ten_thousand_oneway_calls_run_with_bounded_threads(ns, echo):
    with connect("echo", ns=ns) as proxy:
        before = proxy.notified
        threads_before = host_stats(proxy)["threads"]
        for i in range(10_000):
            proxy.notify.oneway(i)
        assert wait_until(lambda: proxy.notified - before == 10_000, timeout=60)
        stats = host_stats(proxy)
        assert stats["threads"] <= threads_before + 16, stats
        assert proxy.last() == 9_999 or proxy.notified - before == 10_000


def test_oneway_of_any_method_returns_at_once_and_errors_are_counted(ns, echo):
    with connect("echo", ns=ns) as proxy:
        started = time.monotonic()
        assert proxy.slow.oneway(2) is None
        assert time.monotonic() - started < 1.0
        failed_before = host_stats(proxy)["oneway_failed"]
        proxy.fail.oneway("lost?")
        assert wait_until(lambda: host_stats(proxy)["oneway_failed"] == failed_before + 1)


def test_a_oneway_call_of_a_method_slow_here_does_not_hold_up_the_next_call(ns, echo):
    """The host runs oneway calls of methods measured quick at once, and the others on its executor."""
    with connect("echo", ns=ns) as proxy:
        proxy.slow(0.3)  # now measured slow on the host
        proxy.slow.oneway(2)
        started = time.monotonic()
        assert proxy.echo("next") == "next"
        assert time.monotonic() - started < 1.5


def test_per_call_options(ns, echo):
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(clients.CallTimeout):
            proxy.slow.options(timeout=0.2)(3)
        assert proxy.slow.options(timeout=5, retries=0)(0.01, value=1) == 1
        assert proxy.echo("still works after a timeout") == "still works after a timeout"


def test_async_def_method(ns, echo):
    with connect("echo", ns=ns) as proxy:
        assert proxy.wait(0.01, value={"a": 1}) == {"a": 1}
        futures = [proxy.wait.future(0.3, value=i) for i in range(10)]
        assert [f.result(timeout=30) for f in futures] == list(range(10))
