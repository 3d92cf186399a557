"""Seconds per call of each of lonja's call modes against one service: sync calls, futures, `aio`, a batch
and oneway calls. Run in a host of the harness (tests/netns.py), usually through a delaying relay:
`python latency_modes.py --ns HOST:PORT [--calls N]`; prints one JSON object {mode: seconds per call}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from lonja.clients import batch, connect


def per_call(run: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / calls


def main() -> None:
    """Measure every mode once (after a warm-up that fills the connection pool) and print the row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", required=True)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    n = args.calls
    echo = connect("echo", ns=args.ns)
    assert [f.result() for f in [echo.echo.future(i) for i in range(n)]] == list(range(n))

    def sync() -> None:
        for i in range(n):
            echo.echo(i)

    def futures() -> None:
        assert [f.result() for f in [echo.echo.future(i) for i in range(n)]] == list(range(n))

    def aio() -> None:
        async def gather() -> list:
            return await asyncio.gather(*(echo.echo.aio(i) for i in range(n)))
        assert asyncio.run(gather()) == list(range(n))

    def batched() -> None:
        with batch(echo) as calls:
            for i in range(n):
                calls.echo(i)
        assert calls.results() == list(range(n))

    def oneway() -> None:
        for i in range(n):
            echo.notify.oneway(i)
        echo.echo(None)

    row = {name: per_call(run, n) for name, run in
           (("sync", sync), ("futures", futures), ("aio", aio), ("batch", batched), ("oneway", oneway))}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
