"""The socket connection both ends of a lonja link use: a message in one system call, timeouts set once.

Pyro5's `SocketConnection` reads a message in three `recv` calls (header, then annotations and body, then
what is left) and, once a socket has a timeout, Python adds a `poll` before every `recv` and `send`;
setting the timeout again on every call adds an `ioctl`. `BufferedConnection` is a drop-in subclass that:
- reads whatever the socket has (up to `READ_SIZE` bytes) into a buffer and serves `recv(size)` from it,
  so a small message costs one `recv`, and messages that arrive together are read together
  (`pending()` says when the buffer still holds bytes the selector cannot see);
- keeps plain sockets blocking and enforces timeouts in the kernel (`SO_RCVTIMEO`/`SO_SNDTIMEO`),
  set only when the timeout changes, so a call is one `send` and one `recv`. TLS sockets keep
  Python's timeouts (the TLS layer needs them);
- polls for a message for up to `busy_wait` seconds before sleeping in `recv` (a client for its reply, a
  server's lane for the next request): a thread that sleeps must be woken, which on a VM costs 20–40 µs
  per message, as much as a small call's own work.
The bytes on the wire are Pyro5's, unchanged: plain Pyro5 peers see no difference.
"""

from __future__ import annotations

import errno
import itertools
import os
import resource
import select
import socket
import ssl
import struct
import threading
import time
from typing import Any

from Pyro5 import errors, socketutil

READ_SIZE = 256 * 1024
"""Bytes asked of the socket at once: a small message and whatever follows it arrive in one `recv`, and
a message of up to this size in one or two. They land in a scratch buffer kept per thread."""

DIRECT_SIZE = 32 * 1024
"""Bytes still to come past which a message is read straight into a buffer of its own (the kernel's copy
is then the only one) instead of through the scratch buffer."""

_scratch = threading.local()

_TIMED_OUT = (errno.EAGAIN, errno.EWOULDBLOCK)

_KERNEL_TIMEOUTS = {socket.AF_INET, socket.AF_INET6, getattr(socket, "AF_UNIX", socket.AF_INET)}

_NO_WAIT = getattr(socket, "MSG_DONTWAIT", 0)

_CAN_POLL = bool(_NO_WAIT) and (os.cpu_count() or 1) > 1
"""Polling can pay off: there is a non-blocking `recv` flag and more than one CPU, so the peer can run while
this thread polls. A process pinned to one CPU of several still polls: its peer may run on another, and one
that shares its CPU is seen at the first poll, which then gives way."""

LOST_CPU = 20e-6
"""Seconds between two turns of the busy-wait loop (normally 1–2 µs apart) past which it asks the kernel
whether this thread was switched out (to another process, or to a thread holding the GIL): if so, the
CPU is wanted, so sleep. A VM's own hiccups make such gaps too, without a switch."""

MAX_SKIP = 63
"""Replies awaited by sleeping, at most, after busy-waits that ended without one (1, 3, 7, ... in a row)."""


class BufferedConnection(socketutil.SocketConnection):
    """A Pyro5 socket connection that reads ahead into a buffer and keeps timeouts in the kernel."""

    def __init__(self, sock: socket.socket, objectId: str | None = None, keep_open: bool = False) -> None:
        super().__init__(sock, objectId, keep_open)
        self._buffer = bytearray()
        self._offset = 0
        self._kernel_timeouts = not isinstance(sock, ssl.SSLSocket) and sock.family in _KERNEL_TIMEOUTS
        self._timeout: float | None = sock.gettimeout()
        self._receive_timeout: float | None = None  # the kernel's SO_RCVTIMEO, when `wait` changed it
        self._peer: Any = None
        self._busy_wait = 0.0
        self._skip = self._misses = 0  # replies to await by sleeping, and busy-waits that found none
        if self._kernel_timeouts:
            timeout, self._timeout = self._timeout, None
            sock.settimeout(None)  # blocking: the kernel enforces the timeout, Python adds no poll
            self.settimeout(timeout)

    @classmethod
    def adopt(cls, connection: socketutil.SocketConnection) -> BufferedConnection:
        """The same socket, now buffered (for a connection Pyro5 made; its buffer must be empty)."""
        adopted = cls(connection.sock, connection.objectId, connection.keep_open)
        adopted.pyroInstances = connection.pyroInstances
        connection.keep_open = True  # the old wrapper must not close the socket when it is collected
        return adopted

    def __del__(self) -> None:
        """Pyro5 closes a connection when it is collected, even one closed already; at interpreter exit its
        close fails (its module is half torn down) and Python prints that as a traceback. Nothing is left
        to do by then."""
        try:
            self.close()
        except Exception:
            pass

    # -- reading --------------------------------------------------------------------------------------

    def recv(self, size: int) -> bytes | bytearray:
        """Exactly `size` bytes: from the buffer, topped up from the socket as needed (a large message is
        read straight into its own bytearray, with no copy after the kernel's)."""
        available = len(self._buffer) - self._offset
        if available == size >= DIRECT_SIZE:  # a large message that is the rest of the buffer: no copy
            whole = self._buffer
            del whole[:self._offset]  # a bytearray drops its head without moving the rest
            self._buffer, self._offset = bytearray(), 0
            return whole
        if available >= size:
            start = self._offset
            self._offset += size
            with memoryview(self._buffer) as view:
                chunk = bytes(view[start:self._offset])
            if self._offset == len(self._buffer):
                self._buffer.clear()
                self._offset = 0
            return chunk
        if size - available > DIRECT_SIZE:
            data = bytearray(size)
            with memoryview(self._buffer) as view:
                data[:available] = view[self._offset:]
            self._buffer.clear()
            self._offset = 0
            self._read_into(memoryview(data)[available:])
            return data
        if self._offset:
            del self._buffer[:self._offset]
            self._offset = 0
        while len(self._buffer) < size:
            self._fill()
        with memoryview(self._buffer) as view:
            chunk = bytes(view[:size])
        if len(self._buffer) == size:
            self._buffer.clear()
        else:
            self._offset = size
        return chunk

    def wait(self, timeout: float) -> bool:
        """True once bytes are buffered (or the peer has closed); False after `timeout` seconds of silence.

        The wait is the `recv` itself (after polling for up to `busy_wait`), its bytes kept for the next
        `recv`: a thread that serves one connection needs no `poll` before each request.
        """
        if self.pending():
            return True
        if not self._kernel_timeouts:
            readable, _, _ = select.select([self.sock], [], [], timeout)
            return bool(readable)
        self._set_receive_timeout(timeout)
        try:
            self._fill(waiting=True)
        except errors.TimeoutError:
            return False
        except errors.ConnectionClosedError:
            return True  # the next `recv` reports it
        return True

    def pending(self) -> int:
        """Bytes already read (or decrypted) that a selector cannot see: handle them before waiting."""
        buffered = len(self._buffer) - self._offset
        if buffered:
            return buffered
        ssl_pending = getattr(self.sock, "pending", None)
        return ssl_pending() if ssl_pending is not None else 0

    def _fill(self, waiting: bool = False) -> None:
        """Append whatever the socket has now (waiting for at least a byte) to the buffer; `waiting`: for
        `wait`, under its timeout."""
        scratch = getattr(_scratch, "buffer", None)
        if scratch is None:
            scratch = _scratch.buffer = bytearray(READ_SIZE)
        count = self._receive_into(scratch, 0, waiting)
        if not count:
            raise errors.ConnectionClosedError("receiving: not enough data")
        with memoryview(scratch) as view:
            self._buffer += view[:count]

    def _receive_into(self, buffer: Any, size: int, waiting: bool = False) -> int:
        """One `recv_into` (a Pyro5 error if it fails). After a `wait`, whose short timeout the kernel still
        has, the rest of a message is first taken without waiting; only if it has not all arrived is the
        connection's own timeout set again: a message that came whole costs no `setsockopt`."""
        try:
            if waiting or self._receive_timeout is None:
                if self._busy_wait:
                    count = self._poll_into(buffer, size)
                    if count is not None:
                        return count
                return self.sock.recv_into(buffer, size)
            try:
                return self.sock.recv_into(buffer, size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                self._set_receive_timeout(self._timeout)
            return self.sock.recv_into(buffer, size)
        except OSError as exc:
            raise _failure(exc, "receiving") from None

    def _poll_into(self, buffer: Any, size: int) -> int | None:
        """`recv_into` without sleeping, tried for up to `busy_wait` seconds (yielding the CPU between
        tries); None if nothing came (the caller then sleeps in `recv`). Polling pays only while this thread
        keeps its CPU: once the kernel has switched it out (another process, or a thread holding the GIL,
        wanted the CPU) it stops, even if the reply came meanwhile. After such a miss the next replies are
        awaited by sleeping (1, 3, 7, ... up to MAX_SKIP in a row), so slow calls, or a busy machine, cost
        no more than an occasional try."""
        if self._skip:
            self._skip -= 1
            return None
        clock, receive = time.perf_counter, self.sock.recv_into
        switches = _switches()
        last = clock()
        deadline = last + (self._busy_wait if self._timeout is None else min(self._busy_wait, self._timeout))
        while True:
            try:
                count: int | None = receive(buffer, size, _NO_WAIT)
            except BlockingIOError:
                count = None
            now = clock()
            lost = now - last > LOST_CPU and _switches() != switches
            if count is not None and not lost:
                self._misses = 0
                return count
            if count is not None or lost or now >= deadline:
                break
            last = now
            os.sched_yield()
        self._misses = self._skip = min(self._misses * 2 + 1, MAX_SKIP)
        return count

    def _read_into(self, view: memoryview) -> None:
        got, size = 0, len(view)
        while got < size:
            count = self._receive_into(view[got:], size - got)
            if not count:
                raise errors.ConnectionClosedError("receiving: not enough data")
            got += count

    # -- writing --------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _failure(exc, "sending") from None

    # -- timeouts and the peer ------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Seconds a receive or send may wait (None: no limit); a system call only when it changes."""
        if timeout == self._timeout:
            return
        self._timeout = timeout
        if not self._kernel_timeouts:
            self.sock.settimeout(timeout)
            return
        self._receive_timeout = None
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))

    def _set_receive_timeout(self, timeout: float | None) -> None:
        """The kernel's receive timeout alone, for `wait`; None again once it is the connection's own."""
        current = self._timeout if self._receive_timeout is None else self._receive_timeout
        if timeout != current:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
        self._receive_timeout = None if timeout == self._timeout else timeout

    @property
    def busy_wait(self) -> float:
        """Seconds a receive (or `wait`) polls for its message before sleeping (0: it sleeps at once). TLS
        sockets always sleep (their layer reads records, not bytes), as does everything on one CPU."""
        return self._busy_wait

    @busy_wait.setter
    def busy_wait(self, seconds: float) -> None:
        self._busy_wait = seconds if self._kernel_timeouts and _CAN_POLL else 0.0

    def gettimeout(self) -> float | None:
        return self._timeout

    timeout = property(gettimeout, settimeout)

    @property
    def peer_address(self) -> Any:
        """The peer's socket address, asked of the system once (None if it is gone already)."""
        if self._peer is None:
            try:
                self._peer = self.sock.getpeername()
            except OSError:
                return None
        return self._peer


if hasattr(resource, "RUSAGE_THREAD"):
    def _switches() -> int:
        """How many times the kernel has switched this thread out."""
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_nvcsw + usage.ru_nivcsw
else:  # no count per thread: every long gap counts as a switch
    _switches = itertools.count().__next__


def _timeval(timeout: float | None) -> bytes:
    """A socket timeout as the kernel's `struct timeval` (zero: no limit)."""
    seconds = 0.0 if timeout is None else max(timeout, 0.000001)
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def _failure(exc: OSError, doing: str) -> errors.CommunicationError:
    """Pyro5's error for a failed socket operation: a timeout (Python's, or the kernel's EAGAIN on a
    blocking socket with SO_RCVTIMEO/SO_SNDTIMEO), or a lost connection."""
    if isinstance(exc, TimeoutError) or exc.errno in _TIMED_OUT:
        return errors.TimeoutError(f"{doing}: timeout")
    return errors.ConnectionClosedError(f"{doing}: connection lost: {exc}")


def peer_address(connection: Any) -> Any:
    """The socket address of `connection`'s peer (any Pyro5 connection), or None if it is gone."""
    if isinstance(connection, BufferedConnection):
        return connection.peer_address
    try:
        return connection.sock.getpeername()
    except OSError:
        return None
