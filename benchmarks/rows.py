"""The warm rows: measurements made in a client process that is already connected and warmed up.

Each function takes a `Warm` (the system's caller, its endpoints, the counts, a warmed-up proxy) and returns
{row id: value} for the rows of `benchmarks.catalog` it measures, plus details under "extra". The same
work per call on every system: `echo("hello world")`, `notify(i)`, `echo(100 KB of bytes)`, `slow(0.002)`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .callers import Caller, Endpoints
from .catalog import Counts
from .measure import in_fresh_child, latencies, percentile, rate, rotate, seconds, wait_until

SMALL = "hello world"
PAYLOAD = 100_000
PAYLOAD_SECONDS = 0.5
"""The 100 KB row calls for at least this long (a system that echoes 100 KB in 0.2 ms makes thousands of
calls, not the `payload` count's hundred: its figure was a tenth of a second's worth, and as noisy)."""
SLOW = 0.002
Values = dict[str, Any]


@dataclass
class Warm:
    caller: Caller
    ep: Endpoints
    counts: Counts
    proxy: Any
    mode: str
    round: int


def small_calls(w: Warm) -> Values:
    """`calls` echo calls one after another, each timed: the median and the 99th percentile, in µs."""
    echo = w.caller.method(w.proxy, "echo")
    timings = latencies(lambda: echo(SMALL), w.counts.calls)
    return {"call.median": percentile(timings, 0.5) * 1e6, "call.p99": percentile(timings, 0.99) * 1e6}


def small_calls_over_tcp(w: Warm) -> Values:
    """The small calls again, from a lonja proxy that keeps to TCP (`client.local_socket` off): what the
    host's local socket gives a client on its machine."""
    return {"call.median.tcp": _small_calls_with(w, {"client.local_socket": False})}


def small_calls_sleeping(w: Warm) -> Values:
    """The small calls again, from a lonja proxy whose thread sleeps at once for each reply
    (`client.busy_wait` 0): what polling for a quick reply gives."""
    return {"call.median.sleeping": _small_calls_with(w, {"client.busy_wait": 0.0})}


def _small_calls_with(w: Warm, settings: dict[str, Any]) -> float:
    """The small calls' median (µs) from a fresh, warmed-up proxy by name under these settings."""
    other = replace(w, proxy=w.caller.by_name_with(w.ep, settings))
    try:
        warm_up(other)
        return small_calls(other)["call.median"]
    finally:
        w.caller.close(other.proxy)


def oneway(w: Warm) -> Values:
    """`oneway` notify calls sent oneway: completions/s until the server's counter grew by that many."""
    send = w.caller.oneway(w.proxy)
    n = w.counts.oneway

    def sent_and_done(count: int) -> tuple[float, float]:
        before = w.caller.notified(w.proxy)
        start = time.perf_counter()
        for i in range(count):
            send(i)
        issued = time.perf_counter() - start
        wait_until(lambda: w.caller.notified(w.proxy) - before >= count, max(60.0, count / 100),
                   what=f"{count} oneway calls counted by the server")
        return issued, time.perf_counter() - start

    sent_and_done(min(100, n))  # warm up
    issued, done = sent_and_done(n)
    return {"oneway.completions": n / done, "oneway.issue": n / issued}


def payload(w: Warm) -> Values:
    """`echo(bytes)` of 100 KB: MB/s = payload bytes ÷ round-trip time, whatever each system returns
    (Pyro5's serpent turns bytes into a base64 dict: that is what its user gets). The bytes are random:
    RPyC compresses messages over 3,000 bytes with zlib, so compressible bytes would flatter it; with its
    defaults (no TCP_NODELAY) a 100 KB reply also waits on delayed ACKs."""
    data = os.urandom(PAYLOAD)
    echo = w.caller.method(w.proxy, "echo")
    echo(data)
    return {"payload.100KB": rate(lambda: echo(data), w.counts.payload, PAYLOAD_SECONDS) * PAYLOAD / 1e6}


def batch(w: Warm) -> Values:
    """Batches of 100 echo calls (Pyro5's BatchProxy, lonja's batch()): calls/s."""
    send = w.caller.batch(w.proxy)
    if send is None:
        return {}
    if len(send(100)) != 100:
        raise RuntimeError("a batch of 100 calls gave another number of results")
    return {"batch.100": 100 * rate(lambda: send(100), w.counts.batches)}


def at_once(w: Warm) -> Values:
    """lonja: `at_once` aio calls gathered in asyncio, and as many futures, against the same calls one by one
    with the same mechanism (each awaited, or each future's result taken, before the next is made);
    with `echo` and with `slow(0.002)`. The three ways take turns in an order rotated per round."""
    n = w.counts.at_once
    values: Values = {}
    extra: dict[str, float] = {}
    for key, method, args in (("echo", "echo", (SMALL,)), ("slow", "slow", (SLOW,))):
        remote = w.caller.method(w.proxy, method)
        for _ in range(5):
            remote.future(*args).result()
        asyncio.run(_gather(remote, args, 5))
        ways: dict[str, Callable[[], Any]] = {
            "sync": lambda: [remote(*args) for _ in range(n)],
            "futures_one": lambda: [remote.future(*args).result() for _ in range(n)],
            "futures_at_once": lambda: [f.result() for f in [remote.future(*args) for _ in range(n)]],
            "aio_one": lambda: asyncio.run(_one_by_one(remote, args, n)),
            "aio_at_once": lambda: asyncio.run(_gather(remote, args, n)),
        }
        rates = {}
        for way in rotate(list(ways), w.round):
            rates[way] = n / seconds(ways[way])
        values[f"futures.{key}"] = rates["futures_at_once"] / rates["futures_one"]
        values[f"aio.{key}"] = rates["aio_at_once"] / rates["aio_one"]
        extra.update({f"{key}.{way}": rate_ for way, rate_ in rates.items()})
    values["extra"] = {"calls/s": extra}
    return values


def name_server(w: Warm) -> Values:
    """The same plain Pyro5 client against the system's name server: `names` registrations, then as many
    lookups, one after another (each name new; the names are removed afterwards). It runs in a forked
    child, so that the client process is the same for every system (no client library's threads)."""
    return in_fresh_child(lambda: _name_server(w), f"{w.caller.system}: the name-server row")


def _name_server(w: Warm) -> dict[str, float]:
    import Pyro5.api

    ns = Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{w.ep.ns}")
    prefix = f"bench.{w.mode}."
    try:
        for i in range(20):  # connect and warm up
            ns.register(f"{prefix}warm.{i}", f"PYRO:warm{i}@127.0.0.1:9")
            ns.lookup(f"{prefix}warm.{i}")
        names = [f"{prefix}{i}" for i in range(w.counts.names)]
        uris = [f"PYRO:obj{i}@127.0.0.1:9" for i in range(w.counts.names)]
        registering = seconds(lambda: [ns.register(name, uri) for name, uri in zip(names, uris)])
        looking = seconds(lambda: [ns.lookup(name) for name in names])
        try:
            ns.remove(prefix=prefix)
        except Exception:
            pass
        return {"ns.registrations": len(names) / registering, "ns.lookups": len(names) / looking}
    finally:
        ns._pyroRelease()


# (measurement, the row ids it gives): the child runs one if its system has any of these rows
WARM: list[tuple[Callable[[Warm], Values], list[str]]] = [
    (small_calls, ["call.median", "call.p99"]),
    (small_calls_over_tcp, ["call.median.tcp"]),
    (small_calls_sleeping, ["call.median.sleeping"]),
    (oneway, ["oneway.completions", "oneway.issue"]),
    (payload, ["payload.100KB"]),
    (batch, ["batch.100"]),
    (at_once, ["aio.echo", "aio.slow", "futures.echo", "futures.slow"]),
    (name_server, ["ns.registrations", "ns.lookups"]),
]


def warm_up(w: Warm) -> None:
    echo = w.caller.method(w.proxy, "echo")
    for _ in range(w.counts.warmup):
        echo(SMALL)


async def _gather(remote: Any, args: tuple, n: int) -> None:
    await asyncio.gather(*(remote.aio(*args) for _ in range(n)))


async def _one_by_one(remote: Any, args: tuple, n: int) -> None:
    for _ in range(n):
        await remote.aio(*args)

