"""A delaying TCP relay: listens on one address, forwards every connection to another, and holds each
chunk for a fixed delay in each direction (this kernel has no netem to add latency).

Every chunk is stamped when it arrives and sent once its own delay has passed, so the delay adds latency
without serializing throughput: ten chunks that arrive together leave together, `delay` later.

Run it as a program (`python relay.py LISTEN_HOST:PORT TARGET_HOST:PORT --delay SECONDS`, e.g. inside a
test's network namespace: it prints "relay listening on HOST:PORT" once ready) or start `Relay` in a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time


class Relay:
    """A TCP relay from `listen` to `target` adding `delay` seconds each way; `port` is known once started."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
        self.listen = listen
        self.target = target
        self.delay = delay
        self.port = listen[1]
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    async def serve(self) -> None:
        """Accept and relay connections until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._relay, *self.listen)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> Relay:
        """Serve in a background thread; returns once listening."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run_quietly()), name="relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"relay on {self.listen} did not start")
        return self

    def stop(self) -> None:
        """Stop listening and drop every relayed connection."""
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(5)

    async def _run_quietly(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.serve()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))
        finally:
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy `reader` to `writer`, each chunk `delay` after it arrived; half-close at the end."""
        pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await pending.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(chunk)
                with contextlib.suppress(OSError):
                    await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                try:
                    chunk = await reader.read(65536)
                except OSError:
                    chunk = b""
                pending.put_nowait((time.monotonic() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main() -> None:
    """Run a relay in the foreground until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen", help="HOST:PORT to listen on (port 0: a free one)")
    parser.add_argument("target", help="HOST:PORT to forward to")
    parser.add_argument("--delay", type=float, default=0.002, help="seconds added in each direction")
    args = parser.parse_args()
    relay = Relay(_address(args.listen), _address(args.target), args.delay)

    async def run() -> None:
        task = asyncio.ensure_future(relay.serve())
        while not relay._ready.is_set():
            await asyncio.sleep(0.01)
        print(f"relay listening on {relay.listen[0]}:{relay.port}", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
