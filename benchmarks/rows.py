"""Each measurement of the benchmark: a function that returns rows comparing lonja with plain Pyro5.

Every row (see `measure.row`) has a stable `id`, a `name` for the table, a `unit`, a `lonja` and a `plain`
summary (median, min, max over the repetitions; None where a side has no counterpart) and a `ratio`
(lonja ÷ plain unless `ratio_of` says otherwise). lonja and plain Pyro5 take turns within every
repetition, and the side that goes first alternates, so that both meet the same machine state.

Single-client rows talk to lonja's host of the default server type and to the plain Pyro5 server (a thread
server with Pyro5's defaults).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import Pyro5.api
from Pyro5 import config as pyro_config

from lonja.clients import batch as lonja_batch
from lonja.clients import close, connect

from .measure import alternate, latencies, percentile, rate, row, summary, wait_until
from .servers import LONJA_SERVERTYPES, ROOT, Servers, child_env

SMALL = "hello world"
CLIENT_PROCESSES = (1, 8, 32)


@dataclass(frozen=True)
class Counts:
    """How much work each row does: tiny for --quick, enough for stable medians otherwise."""

    reps: int               # repetitions of every row (medians and spreads are over these)
    latency_calls: int      # small calls per side per repetition
    payload_100k: int       # 100 KB echoes per side per repetition
    payload_10m: int        # 10 MB echoes per side per repetition
    oneway: int             # oneway calls per side per repetition
    futures: int            # calls made at once as futures / aio, and one by one
    batches: int            # batches of 100 per side per repetition
    clients_seconds: float  # length of each client-process measurement
    first_calls: int        # fresh proxies per kind per repetition, in this process
    cold_calls: int         # fresh processes per kind per repetition


QUICK = Counts(reps=1, latency_calls=400, payload_100k=10, payload_10m=1, oneway=300, futures=100, batches=3,
               clients_seconds=0.3, first_calls=20, cold_calls=3)
FULL = Counts(reps=3, latency_calls=5000, payload_100k=200, payload_10m=4, oneway=10000, futures=1000, batches=50,
              clients_seconds=3.0, first_calls=200, cold_calls=15)


@dataclass
class Context:
    servers: Servers
    counts: Counts
    servertype: str          # lonja's default server type: the host single-client rows use
    serializer: str          # lonja's default serializer
    servertypes: list[str] = field(default_factory=lambda: list(LONJA_SERVERTYPES))
    progress: Callable[[str], None] = lambda text: None
    client_pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.servers.lonja_name(self.servertype)

    def lonja(self, serializer: str | None = None):
        return connect(self.name, ns=self.servers.ns, serializer=serializer)

    def plain(self, serializer: str | None = None) -> Pyro5.api.Proxy:
        proxy = Pyro5.api.Proxy(self.servers.plain_uri)
        if serializer:
            proxy._pyroSerializer = serializer
        return proxy


def _close(proxy: Any) -> None:
    if isinstance(proxy, Pyro5.api.Proxy):
        proxy._pyroRelease()
    else:
        close(proxy)


# -- 1. small-call latency --------------------------------------------------------------------------------

def latency(ctx: Context) -> list[dict[str, Any]]:
    """Small `echo` calls: the same serializer on both sides (serpent, msgpack), then each side's default.

    Both proxies stay open and take turns in 20 chunks per repetition.
    """
    plain_default = pyro_config.SERIALIZER
    cases = [("serpent", "serpent", "serpent", "serpent"), ("msgpack", "msgpack", "msgpack", "msgpack"),
             ("defaults", f"defaults (lonja {ctx.serializer}, plain {plain_default})", None, None)]
    chunk = max(1, ctx.counts.latency_calls // 20)
    rows = []
    for key, label, lonja_ser, plain_ser in cases:
        medians: dict[str, list[float]] = {"lonja": [], "plain": []}
        p99s: dict[str, list[float]] = {"lonja": [], "plain": []}
        for rep in range(ctx.counts.reps):
            proxies = {"lonja": ctx.lonja(lonja_ser), "plain": ctx.plain(plain_ser)}
            try:
                calls = {side: (lambda p=p: p.echo(SMALL)) for side, p in proxies.items()}
                for side in proxies:
                    latencies(calls[side], 200)  # connect and warm up
                timings: dict[str, list[float]] = {"lonja": [], "plain": []}
                for turn in range(20):
                    for side in alternate(rep + turn):
                        timings[side] += latencies(calls[side], chunk)
            finally:
                for proxy in proxies.values():
                    _close(proxy)
            for side in ("lonja", "plain"):
                medians[side].append(percentile(timings[side], 0.5) * 1e6)
                p99s[side].append(percentile(timings[side], 0.99) * 1e6)
        rows.append(row("latency", f"small call median, {label}", "µs", medians["lonja"], medians["plain"],
                        id=f"latency.median.{key}"))
        rows.append(row("latency", f"small call p99, {label}", "µs", p99s["lonja"], p99s["plain"],
                        id=f"latency.p99.{key}"))
    return rows


# -- 2. payloads --------------------------------------------------------------------------------------------

def payload(ctx: Context) -> list[dict[str, Any]]:
    """`echo(bytes)` with each side's default serializer: MB/s = payload bytes ÷ round-trip time.

    Plain Pyro5's serpent returns the bytes as a base64 dict: that is what its user gets, so it is timed so.
    """
    rows = []
    for key, label, size, calls in (("100KB", "100 KB", 100_000, ctx.counts.payload_100k),
                                    ("10MB", "10 MB", 10_000_000, ctx.counts.payload_10m)):
        data = os.urandom(size)
        rates: dict[str, list[float]] = {"lonja": [], "plain": []}
        for rep in range(ctx.counts.reps):
            for side in alternate(rep):
                proxy = ctx.lonja() if side == "lonja" else ctx.plain()
                try:
                    back = proxy.echo(data)  # connect and warm up
                    if side == "lonja" and back != data:
                        raise RuntimeError(f"lonja's echo of {label} came back changed")
                    rates[side].append(rate(lambda: proxy.echo(data), calls) * size / 1e6)
                finally:
                    _close(proxy)
        rows.append(row("payload", f"bytes echo {label}, defaults", "MB/s", rates["lonja"], rates["plain"],
                        id=f"payload.{key}"))
    return rows


# -- 3. oneway ----------------------------------------------------------------------------------------------

def oneway(ctx: Context) -> list[dict[str, Any]]:
    """N oneway `notify` calls: how fast the client issues them, how fast the server completes them
    (until its `notified` counter has grown by N), and plain `echo` calls/s on the same proxy."""
    n = ctx.counts.oneway
    issue: dict[str, list[float]] = {"lonja": [], "plain": []}
    done: dict[str, list[float]] = {"lonja": [], "plain": []}
    sync: dict[str, list[float]] = {"lonja": [], "plain": []}
    for rep in range(ctx.counts.reps):
        for side in alternate(rep):
            proxy = ctx.lonja() if side == "lonja" else ctx.plain()
            try:
                send = proxy.notify.oneway if side == "lonja" else proxy.notify
                before = proxy.notified
                for i in range(50):  # warm up
                    send(i)
                wait_until(lambda: proxy.notified - before >= 50, 30, what=f"{side}: 50 oneway calls done")
                before = proxy.notified
                start = time.perf_counter()
                for i in range(n):
                    send(i)
                issued = time.perf_counter() - start
                wait_until(lambda: proxy.notified - before >= n, max(60.0, n / 100),
                           what=f"{side}: {n} oneway calls done")
                completed = time.perf_counter() - start
                sync[side].append(rate(lambda: proxy.echo(SMALL), max(100, n // 2)))
            finally:
                _close(proxy)
            issue[side].append(n / issued)
            done[side].append(n / completed)
    per_sync = {side: [d / s for d, s in zip(done[side], sync[side])] for side in done}
    return [row("oneway", f"{n:,} oneway calls: client issue rate", "calls/s", issue["lonja"], issue["plain"],
                id="oneway.issue"),
            row("oneway", f"{n:,} oneway calls: server completion rate", "calls/s", done["lonja"], done["plain"],
                id="oneway.completion"),
            row("oneway", "plain (synchronous) echo calls, same proxy", "calls/s", sync["lonja"], sync["plain"],
                id="oneway.sync"),
            row("oneway", "oneway completions/s ÷ plain calls/s (each side its own)", "×", per_sync["lonja"],
                per_sync["plain"], id="oneway.completion_per_sync")]


# -- 4. futures and asyncio ---------------------------------------------------------------------------------

def futures(ctx: Context) -> list[dict[str, Any]]:
    """N calls at once as futures, and as `aio` calls gathered in asyncio, against the same N one by one.

    Two methods: `echo` (a quick, CPU-bound call) and `slow(0.002)` (2 ms of waiting in the service).
    Plain Pyro5 has neither futures nor asyncio; its one-by-one rate is shown for reference.
    """
    n = ctx.counts.futures
    rows = []
    for key, label, method, args in (("echo", "echo", "echo", (SMALL,)), ("slow", "slow(0.002)", "slow", (0.002,))):
        rates: dict[str, list[float]] = {"one": [], "futures": [], "aio": [], "plain": []}
        for rep in range(ctx.counts.reps):
            lonja, plain = ctx.lonja(), ctx.plain()
            try:
                remote, plain_remote = getattr(lonja, method), getattr(plain, method)
                for _ in range(10):  # connect and warm up (futures and asyncio start their workers)
                    remote(*args)
                    plain_remote(*args)
                    remote.future(*args).result()
                asyncio.run(_gather(remote, args, 10))

                def one_by_one() -> float:
                    return rate(lambda: remote(*args), n)

                def as_futures() -> float:
                    start = time.perf_counter()
                    pending = [remote.future(*args) for _ in range(n)]
                    for future in pending:
                        future.result()
                    return n / (time.perf_counter() - start)

                def as_aio() -> float:
                    start = time.perf_counter()
                    asyncio.run(_gather(remote, args, n))
                    return n / (time.perf_counter() - start)

                def plain_one_by_one() -> float:
                    return rate(lambda: plain_remote(*args), n)

                steps = [("one", one_by_one), ("futures", as_futures), ("aio", as_aio), ("plain", plain_one_by_one)]
                shift = rep % len(steps)
                for mode, measure in steps[shift:] + steps[:shift]:
                    rates[mode].append(measure())
            finally:
                _close(lonja)
                _close(plain)
        one = summary(rates["one"])["median"]
        rows.append(row("futures", f"{n:,} calls of {label} one by one", "calls/s", rates["one"], rates["plain"],
                        id=f"futures.{key}.one_by_one"))
        for mode, what in (("futures", "futures"), ("aio", "aio calls")):
            rows.append(row("futures", f"{n:,} {what} of {label} at once", "calls/s", rates[mode], None,
                            value=summary(rates[mode])["median"] / one, ratio_of="÷ lonja one by one",
                            id=f"futures.{key}.{mode}"))
    return rows


async def _gather(remote: Any, args: tuple, n: int) -> None:
    await asyncio.gather(*(remote.aio(*args) for _ in range(n)))


# -- 5. batches ---------------------------------------------------------------------------------------------

def batch(ctx: Context) -> list[dict[str, Any]]:
    """Batches of 100 `echo` calls (lonja's `batch()`, plain Pyro5's `BatchProxy`) against calls one by one."""
    batched: dict[str, list[float]] = {"lonja": [], "plain": []}
    single: dict[str, list[float]] = {"lonja": [], "plain": []}
    for rep in range(ctx.counts.reps):
        for side in alternate(rep):
            proxy = ctx.lonja() if side == "lonja" else ctx.plain()
            try:
                def one_batch() -> None:
                    if side == "lonja":
                        with lonja_batch(proxy) as calls:
                            for i in range(100):
                                calls.echo(i)
                        results = calls.results()
                    else:
                        calls = Pyro5.api.BatchProxy(proxy)
                        for i in range(100):
                            calls.echo(i)
                        results = list(calls())
                    if len(results) != 100:
                        raise RuntimeError(f"{side}: a batch of 100 gave {len(results)} results")

                one_batch()  # connect and warm up
                batched[side].append(100 * rate(one_batch, ctx.counts.batches))
                single[side].append(rate(lambda: proxy.echo(SMALL), min(2000, 100 * ctx.counts.batches)))
            finally:
                _close(proxy)
    speedup = {side: [b / s for b, s in zip(batched[side], single[side])] for side in batched}
    return [row("batch", "batch of 100 echo calls", "calls/s", batched["lonja"], batched["plain"],
                id="batch.batch100"),
            row("batch", "the same calls one by one", "calls/s", single["lonja"], single["plain"],
                id="batch.one_by_one"),
            row("batch", "batch ÷ one by one (each side its own)", "×", speedup["lonja"], speedup["plain"],
                id="batch.speedup")]


# -- 6. client processes ------------------------------------------------------------------------------------

def client_processes(ctx: Context) -> list[dict[str, Any]]:
    """1, 8 and 32 client processes calling `echo` in a loop: total calls/s, for plain Pyro5's thread server
    and lonja's host of each server type. The servers take turns in a rotating order."""
    servers = ["plain", *ctx.servertypes]
    totals: dict[tuple[str, int], list[float]] = {(s, n): [] for s in servers for n in CLIENT_PROCESSES}
    for rep in range(ctx.counts.reps):
        for i, n in enumerate(CLIENT_PROCESSES):
            shift = (rep + i) % len(servers)
            for server in servers[shift:] + servers[:shift]:
                totals[(server, n)].append(_load(ctx, server, n))
                ctx.progress(f"  rep {rep + 1}, {n:>2} client processes, {server:>9}: "
                             f"{totals[(server, n)][-1]:,.0f} calls/s")
    rows = []
    for servertype in ctx.servertypes:
        for n in CLIENT_PROCESSES:
            rows.append(row("clients", f"{n} client process{'es' if n > 1 else ''}: lonja {servertype} vs plain "
                            f"Pyro5 thread server", "calls/s", totals[(servertype, n)], totals[("plain", n)],
                            id=f"clients.{servertype}.{n}", servertype=servertype, processes=n))
    for servertype in ctx.servertypes:
        for n in CLIENT_PROCESSES[1:]:
            scale = {s: [many / one for many, one in zip(totals[(s, n)], totals[(s, 1)])]
                     for s in (servertype, "plain")}
            rows.append(row("clients", f"{n} ÷ 1 client processes: lonja {servertype} vs plain Pyro5 thread "
                            f"server", "×", scale[servertype], scale["plain"], id=f"clients.{servertype}.scale{n}",
                            servertype=servertype, processes=n))
    return rows


def _load(ctx: Context, server: str, processes: int) -> float:
    """Total calls/s of `processes` client processes against one server (see benchmarks.loadgen)."""
    if server == "plain":
        kind, target = "plain", ctx.servers.plain_uri
    else:
        kind, target = "lonja", ctx.servers.lonja_name(server)
    command = [sys.executable, "-m", "benchmarks.loadgen", kind, target, ctx.servers.ns, str(processes),
               str(ctx.counts.clients_seconds)]
    answer = _run_child(ctx, command, timeout=120 + ctx.counts.clients_seconds)
    ctx.client_pids += answer["pids"]
    return answer["calls"] / answer["seconds"]


def _run_child(ctx: Context, command: list[str], timeout: float) -> dict[str, Any]:
    """Run a client-side child process, record its pid, return the JSON it prints; stop it on a timeout."""
    process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx.client_pids.append(process.pid)
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        process.terminate()  # it kills its own children
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed ({process.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


# -- 7. first call ------------------------------------------------------------------------------------------

def first_call(ctx: Context) -> list[dict[str, Any]]:
    """A fresh proxy's first call (making the proxy, finding the service, connecting, calling), by name and by
    direct PYRO: URI; lonja's `connect()` against plain Pyro5's `Proxy("PYRONAME:...")`/`Proxy("PYRO:...")`.

    In this process (many fresh proxies: lonja keeps the names it resolved, Pyro5 asks the name server for
    every PYRONAME proxy), and in fresh processes (nothing resolved or connected yet).
    """
    servers = ctx.servers
    kinds = {"lonja-name": ctx.name, "lonja-uri": servers.lonja_uris[ctx.servertype],
             "plain-name": f"PYRONAME:{servers.plain_name}@{servers.ns}", "plain-uri": servers.plain_uri}

    def once(kind: str, target: str) -> float:
        start = time.perf_counter()
        proxy = connect(target, ns=servers.ns) if kind.startswith("lonja") else Pyro5.api.Proxy(target)
        proxy.echo(1)
        elapsed = time.perf_counter() - start
        _close(proxy)
        return elapsed

    warm: dict[str, list[float]] = {kind: [] for kind in kinds}
    cold: dict[str, list[float]] = {kind: [] for kind in kinds}
    order = list(kinds.items())
    for _ in range(ctx.counts.reps):
        timings: dict[str, list[float]] = {kind: [] for kind in kinds}
        for attempt in range(ctx.counts.first_calls + 5):
            shift = attempt % len(order)
            for kind, target in order[shift:] + order[:shift]:
                elapsed = once(kind, target)
                if attempt >= 5:  # the first few warm up both libraries' code paths
                    timings[kind].append(elapsed)
        for kind in kinds:
            warm[kind].append(percentile(timings[kind], 0.5) * 1e3)
        answer = _run_child(ctx, [sys.executable, "-m", "benchmarks.coldcall", servers.ns, str(ctx.counts.cold_calls),
                                  *(f"{kind}={target}" for kind, target in kinds.items())], timeout=300)
        ctx.client_pids += answer.pop("pids")
        for kind in kinds:
            cold[kind].append(percentile(answer[kind], 0.5) * 1e3)
    rows = []
    for key, where, times in (("", "", warm), ("cold.", ", fresh process", cold)):
        per_kind = {side: [n / u for n, u in zip(times[f"{side}-name"], times[f"{side}-uri"])]
                    for side in ("lonja", "plain")}
        rows += [row("first call", f"first call via name{where}: connect(name) vs Proxy('PYRONAME:…')", "ms",
                     times["lonja-name"], times["plain-name"], id=f"first_call.{key}name"),
                 row("first call", f"first call via direct PYRO: URI{where}: connect(uri) vs Proxy(uri)", "ms",
                     times["lonja-uri"], times["plain-uri"], id=f"first_call.{key}uri"),
                 row("first call", f"first call, via name ÷ via direct URI{where}", "×", per_kind["lonja"],
                     per_kind["plain"], id=f"first_call.{key}name_vs_uri")]
    return rows


PHASES: list[tuple[str, Callable[[Context], list[dict[str, Any]]], bool]] = [
    # (label, measurement, whether the client and the servers are pinned to different CPUs)
    ("small-call latency", latency, True),
    ("payloads", payload, True),
    ("oneway", oneway, True),
    ("futures and aio", futures, True),
    ("batches", batch, True),
    ("first call", first_call, True),
    ("client processes", client_processes, False),
]
