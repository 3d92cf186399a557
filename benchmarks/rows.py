"""Each measurement of the benchmark: a function that returns rows comparing lonja with plain Pyro5.

A row is a dict: `section`, `name`, `unit`, `lonja` and `plain` (each a summary: median, min, max, reps,
or None where there is no counterpart), and `ratio` (lonja's median / plain's median).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import Pyro5.api

from clients import connect

from .servers import ROOT, Servers, child_env
from .stats import percentile, ratio, summary


@dataclass(frozen=True)
class Counts:
    """How much work each row does: small for --quick, enough for stable medians otherwise."""

    reps: int
    calls: int
    payload_100k: int
    payload_10m: int
    oneway: int
    futures: int
    batches: int
    clients_seconds: float
    first_calls: int


QUICK = Counts(reps=1, calls=300, payload_100k=20, payload_10m=1, oneway=500, futures=100, batches=5,
               clients_seconds=0.5, first_calls=20)
FULL = Counts(reps=3, calls=5000, payload_100k=200, payload_10m=4, oneway=5000, futures=1000, batches=50,
              clients_seconds=2.0, first_calls=200)


def row(section: str, name: str, unit: str, lonja: list[float] | None, plain: list[float] | None,
        **extra: Any) -> dict[str, Any]:
    lonja_s = summary(lonja) if lonja else None
    plain_s = summary(plain) if plain else None
    value = ratio(lonja_s["median"], plain_s["median"]) if lonja_s and plain_s else None
    return {"section": section, "name": name, "unit": unit, "lonja": lonja_s, "plain": plain_s, "ratio": value,
            **extra}


def plain_proxy(uri: str, serializer: str | None = None) -> Pyro5.api.Proxy:
    proxy = Pyro5.api.Proxy(uri)
    if serializer:
        proxy._pyroSerializer = serializer
    return proxy


def _latencies(call: Callable[[], Any], n: int, warm: bool = True) -> list[float]:
    for _ in range(min(200, n) if warm else 0):
        call()
    timings = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return timings


def latency(servers: Servers, counts: Counts, name: str) -> list[dict[str, Any]]:
    """Small-call latency, same serializer both sides, and each side's default.

    Both proxies stay open and take turns in small chunks, so that both meet the same machine state
    (on a VM, whether the other core is idle changes a round trip by 2x or more).
    """
    cases = [("serpent", "serpent", "serpent"), ("msgpack", "msgpack", "msgpack"),
             ("defaults (lonja msgpack, plain serpent)", None, "serpent")]
    rows = []
    for label, lonja_ser, plain_ser in cases:
        medians = {"lonja": [], "plain": []}
        p99s = {"lonja": [], "plain": []}
        for _ in range(counts.reps):
            with connect(name, ns=servers.ns, serializer=lonja_ser) as lonja, \
                    plain_proxy(servers.plain_uri, plain_ser) as plain:
                calls = {"lonja": lambda: lonja.echo("hello world"), "plain": lambda: plain.echo("hello world")}
                timings: dict[str, list[float]] = {"lonja": [], "plain": []}
                for turn in range(20):
                    for side in (("lonja", "plain") if turn % 2 else ("plain", "lonja")):
                        timings[side] += _latencies(calls[side], max(1, counts.calls // 20), warm=turn == 0)
            for side in ("lonja", "plain"):
                medians[side].append(percentile(timings[side], 0.5) * 1e6)
                p99s[side].append(percentile(timings[side], 0.99) * 1e6)
        rows.append(row("latency", f"small call median, {label}", "µs", medians["lonja"], medians["plain"]))
        rows.append(row("latency", f"small call p99, {label}", "µs", p99s["lonja"], p99s["plain"]))
    return rows


def payload(servers: Servers, counts: Counts, name: str) -> list[dict[str, Any]]:
    """Bytes echo throughput with each side's default serializer."""
    rows = []
    for size, calls in ((100_000, counts.payload_100k), (10_000_000, counts.payload_10m)):
        data = os.urandom(size)
        rates = {"lonja": [], "plain": []}
        for _ in range(counts.reps):
            for side in ("lonja", "plain"):
                proxy = connect(name, ns=servers.ns) if side == "lonja" else plain_proxy(servers.plain_uri)
                with proxy:
                    proxy.echo(data)
                    start = time.perf_counter()
                    for _ in range(calls):
                        proxy.echo(data)
                    elapsed = time.perf_counter() - start
                rates[side].append(size * calls / elapsed / 1e6)
        label = "100 KB" if size == 100_000 else "10 MB"
        rows.append(row("payload", f"bytes echo {label}, defaults", "MB/s", rates["lonja"], rates["plain"]))
    return rows


def oneway(servers: Servers, counts: Counts, name: str) -> list[dict[str, Any]]:
    """Oneway calls: how fast the client issues them, how fast the server completes them."""
    issue = {"lonja": [], "plain": []}
    done = {"lonja": [], "plain": []}
    sync = []
    for _ in range(counts.reps):
        for side in ("lonja", "plain"):
            proxy = connect(name, ns=servers.ns) if side == "lonja" else plain_proxy(servers.plain_uri)
            with proxy:
                before = proxy.notified
                send = proxy.notify.oneway if side == "lonja" else proxy.notify
                start = time.perf_counter()
                for i in range(counts.oneway):
                    send(i)
                issued = time.perf_counter() - start
                while proxy.notified - before < counts.oneway:
                    time.sleep(0.001)
                completed = time.perf_counter() - start
                if side == "lonja":
                    t0 = time.perf_counter()
                    for i in range(counts.oneway):
                        proxy.echo(i)
                    sync.append(counts.oneway / (time.perf_counter() - t0))
            issue[side].append(counts.oneway / issued)
            done[side].append(counts.oneway / completed)
    done_summary = summary(done["lonja"])["median"]
    return [row("oneway", "oneway issue rate", "calls/s", issue["lonja"], issue["plain"]),
            row("oneway", "oneway completion rate", "calls/s", done["lonja"], done["plain"]),
            row("oneway", "lonja plain calls (for the ratio below)", "calls/s", sync, None),
            {"section": "oneway", "name": "lonja oneway completions ÷ lonja plain calls", "unit": "×",
             "lonja": None, "plain": None, "ratio": ratio(done_summary, summary(sync)["median"])}]


def concurrency(servers: Servers, counts: Counts, name: str) -> list[dict[str, Any]]:
    """1,000 futures and 1,000 aio calls from one client against the same calls one by one (lonja only)."""
    rows = []
    for label, method, args in (("echo", "echo", ("x",)), ("slow(0.002)", "slow", (0.002,))):
        rates = {"one by one": [], "futures": [], "aio": []}
        for _ in range(counts.reps):
            with connect(name, ns=servers.ns) as proxy:
                remote = getattr(proxy, method)
                remote(*args)
                start = time.perf_counter()
                for _ in range(counts.futures):
                    remote(*args)
                rates["one by one"].append(counts.futures / (time.perf_counter() - start))
                start = time.perf_counter()
                futures = [remote.future(*args) for _ in range(counts.futures)]
                for future in futures:
                    future.result()
                rates["futures"].append(counts.futures / (time.perf_counter() - start))

                async def gather() -> None:
                    await asyncio.gather(*(remote.aio(*args) for _ in range(counts.futures)))
                start = time.perf_counter()
                asyncio.run(gather())
                rates["aio"].append(counts.futures / (time.perf_counter() - start))
        for mode in ("futures", "aio"):
            rows.append(row("futures", f"{counts.futures} {mode} of {label} vs one by one", "calls/s",
                            rates[mode], rates["one by one"], baseline="lonja one by one"))
    return rows


def batch(servers: Servers, counts: Counts, name: str) -> list[dict[str, Any]]:
    """A batch of 100 calls: calls/s for lonja's batch and Pyro5's BatchProxy, and one by one."""
    batched = {"lonja": [], "plain": []}
    single = {"lonja": [], "plain": []}
    for _ in range(counts.reps):
        for side in ("lonja", "plain"):
            proxy = connect(name, ns=servers.ns) if side == "lonja" else plain_proxy(servers.plain_uri)
            with proxy:
                start = time.perf_counter()
                for _ in range(counts.batches):
                    if side == "lonja":
                        with proxy.batch() as calls:
                            for i in range(100):
                                calls.echo(i)
                        calls.results()
                    else:
                        calls = Pyro5.api.BatchProxy(proxy)
                        for i in range(100):
                            calls.echo(i)
                        list(calls())
                batched[side].append(100 * counts.batches / (time.perf_counter() - start))
                start = time.perf_counter()
                for i in range(100 * counts.batches // 5):
                    proxy.echo(i)
                single[side].append(100 * counts.batches // 5 / (time.perf_counter() - start))
    return [row("batch", "batch of 100", "calls/s", batched["lonja"], batched["plain"]),
            row("batch", "the same calls one by one", "calls/s", single["lonja"], single["plain"])]


def _clients(kind: str, target: str, ns: str, processes: int, seconds: float) -> float:
    start = time.time() + 1.0 + 0.12 * processes  # time for every process to start and connect
    workers = [subprocess.Popen([sys.executable, "-m", "benchmarks.worker", kind, target, ns, str(start),
                                 str(seconds)], env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    total = 0
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        total += int(out.strip() or 0)
    return total / seconds


def clients(servers: Servers, counts: Counts, servertypes: list[str]) -> list[dict[str, Any]]:
    """1, 8 and 32 client processes calling `echo` in a loop: total calls/s, per server."""
    rows = []
    plain = {n: [] for n in (1, 8, 32)}
    lonja = {(t, n): [] for t in servertypes for n in (1, 8, 32)}
    for _ in range(counts.reps):
        for n in (1, 8, 32):
            plain[n].append(_clients("plain", servers.plain_uri, servers.ns, n, counts.clients_seconds))
            for servertype in servertypes:
                lonja[(servertype, n)].append(_clients("lonja", f"echo.{servertype}", servers.ns, n,
                                                       counts.clients_seconds))
    for n in (1, 8, 32):
        for servertype in servertypes:
            rows.append(row("clients", f"{n} client processes, lonja {servertype} vs Pyro5 thread", "calls/s",
                            lonja[(servertype, n)], plain[n], servertype=servertype, processes=n))
    for n in (8, 32):
        for servertype in servertypes:
            scale = ratio(summary(lonja[(servertype, n)])["median"], summary(lonja[(servertype, 1)])["median"])
            rows.append({"section": "clients", "name": f"lonja {servertype}: {n} ÷ 1 client", "unit": "×",
                         "lonja": None, "plain": None, "ratio": scale, "servertype": servertype, "processes": n})
        scale = ratio(summary(plain[n])["median"], summary(plain[1])["median"])
        rows.append({"section": "clients", "name": f"plain Pyro5 thread: {n} ÷ 1 client", "unit": "×",
                     "lonja": None, "plain": None, "ratio": scale, "processes": n})
    return rows


def first_call(servers: Servers, counts: Counts, name: str) -> list[dict[str, Any]]:
    """A fresh proxy's first call: through the name (connect(name)) vs through a direct PYRO: URI."""
    with connect(name, ns=servers.ns) as proxy:
        uri = proxy.uri
    by_name, by_uri = [], []
    for _ in range(counts.reps):
        timings = {"name": [], "uri": []}
        for _ in range(counts.first_calls):
            for kind, target in (("name", name), ("uri", uri)):
                start = time.perf_counter()
                with connect(target, ns=servers.ns) as proxy:
                    proxy.echo(1)
                timings[kind].append(time.perf_counter() - start)
        by_name.append(percentile(timings["name"], 0.5) * 1e3)
        by_uri.append(percentile(timings["uri"], 0.5) * 1e3)
    return [row("first call", "first call via connect(name) vs via a direct PYRO: URI", "ms", by_name, by_uri)]
