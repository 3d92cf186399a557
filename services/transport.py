"""The `adaptive` server type: one thread does all the work until a call blocks, then another takes over.

Pyro5 offers two transports, each good at one thing:
- `thread` runs a thread per connection, so slow calls overlap, but with many clients the threads fight
  over the GIL and total throughput falls (to about 0.77x of one client's at 8 clients);
- `multiplex` serves every connection from one thread, which scales with clients, but one slow call
  stops everybody.

`adaptive` is the leader/followers pattern on top of the multiplex transport. The leader thread waits
for ready sockets and runs each request itself, as multiplex does. Before a call to a method whose recent
calls were slow, the daemon hands the socket loop over (`hand_over`); a watchdog does the same for a call
that holds the leader longer than `promote_after` seconds unexpectedly. Another thread (an idle
follower, or a new one up to `max_threads`) then leads; the busy thread finishes its call, puts its
connection back into the selector and becomes a follower. Fast calls therefore never change threads, and
slow calls still run side by side. A connection is out of the selector while one of its requests runs,
so its requests are served in order.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
from typing import Any, Callable

from Pyro5 import config, socketutil
from Pyro5.svr_multiplex import SocketServer_Multiplex

log = logging.getLogger("lonja.services")


class LimitedMultiplex(SocketServer_Multiplex):
    """Pyro5's multiplex transport, refusing connections past `max_connections` with a clear reason."""

    max_connections = 256
    refuse_timeout = 2.0
    """Seconds a refused client has to send its handshake (the refusal is its answer)."""

    def open_connections(self) -> int:
        return len(self.selector.get_map()) - 1  # one thread: every connection is in the selector

    def _handleConnection(self, sock: Any) -> Any:
        if sock is not None and self.open_connections() >= self.max_connections:
            return self._refuse(sock)
        return super()._handleConnection(sock)

    def _refuse(self, sock: Any) -> None:
        """Accept one connection only to answer its handshake with a clear refusal, then close it."""
        try:
            csock, caddr = sock.accept()
        except OSError:
            return None
        csock.settimeout(self.refuse_timeout)
        count = self.open_connections()
        log.warning("refused a connection from %s: %d connections open, limits.max_connections is %d",
                    "%s:%s" % caddr[:2] if isinstance(caddr, tuple) else caddr, count, self.max_connections)
        conn = socketutil.SocketConnection(csock)
        try:
            self.daemon._handshake(conn, denied_reason=(
                f"too many connections ({count}): the server is at its limit "
                f"(limits.max_connections), try again later"))
        except Exception:  # the client may be gone already
            pass
        conn.close()
        return None


class AdaptiveServer(LimitedMultiplex):
    """Pyro5's multiplex transport, with the leader handed over when a call blocks (see the module doc)."""

    promote_after = 0.005

    def start_pool(self, max_threads: int, max_connections: int = 256) -> None:
        """Prepare the follower pool; called once, before the request loop starts."""
        self._max_threads = max(1, max_threads)
        self.max_connections = max(1, max_connections)
        self._connections = 0
        self._cond = threading.Condition()
        self._leader: int | None = None
        self._threads = 0
        self._idle = 0
        self._busy_since: float | None = None
        self._busy_thread: int | None = None
        self._active = threading.Event()
        self._loop_condition: Callable[[], bool] = lambda: True

    def loop(self, loopCondition: Callable[[], bool] = lambda: True) -> None:
        """Run the request loop in this thread (it may serve as leader or follower) until shutdown."""
        self._loop_condition = loopCondition
        with self._cond:
            self._threads += 1
            self._leader = threading.get_ident()
        threading.Thread(target=self._watch, name="lonja-watchdog", daemon=True).start()
        self._serve()

    def shutdown(self) -> None:
        self.shutting_down = True
        self._active.set()
        with self._cond:
            self._cond.notify_all()
        super().shutdown()

    def _running(self) -> bool:
        return not self.shutting_down and self._loop_condition()

    def _serve(self) -> None:
        """Lead while this thread is the leader; follow (wait to be promoted) otherwise."""
        me = threading.get_ident()
        try:
            while self._running():
                if self._leader == me:
                    self._lead_once(me)
                elif not self._follow(me):
                    return
        finally:
            with self._cond:
                self._threads -= 1
                if self._leader == me:
                    self._leader = None
                    self._cond.notify()

    def _follow(self, me: int) -> bool:
        """Wait until promoted; False if this thread is not needed any more."""
        with self._cond:
            if self._idle >= 2 and self._leader is not None:
                return False  # enough idle followers already: let this thread end
            self._idle += 1
            try:
                while self._leader is not None and self._running():
                    self._cond.wait(1.0)
            finally:
                self._idle -= 1
            if not self._running():
                return False
            self._leader = me
            return True

    def _lead_once(self, me: int) -> None:
        try:
            events = self.selector.select(config.POLLTIMEOUT)
        except (OSError, ValueError):
            events = []
        for key, mask in events:
            if self._leader != me or self.shutting_down:
                return  # demoted while busy: the new leader sees the remaining sockets itself
            sock = key.fileobj
            if not mask & selectors.EVENT_READ:
                continue
            if sock is self.sock:
                self._accept(me)
            else:
                self._serve_request(sock, me)
        if self._leader == me:
            self.daemon._housekeeping()

    def open_connections(self) -> int:
        return self._connections  # connections being served are out of the selector

    def _accept(self, me: int) -> None:
        """Accept and handshake a new connection, or refuse it past `max_connections`.

        A client that stalls its handshake holds only this thread: the watchdog promotes a new leader.
        """
        with self._cond:
            self._busy_since, self._busy_thread = time.monotonic(), me
            full = self._connections >= self.max_connections
            if not full:
                self._connections += 1  # taken before the handshake: two leaders may accept at once
        if not self._active.is_set():
            self._active.set()
        conn = None
        try:
            conn = self._refuse(self.sock) if full else SocketServer_Multiplex._handleConnection(self, self.sock)
        finally:
            with self._cond:
                if self._busy_thread == me:
                    self._busy_since = self._busy_thread = None
                if not full and not conn:
                    self._connections -= 1
        if conn:
            self.selector.register(conn, selectors.EVENT_READ, self)

    def _serve_request(self, conn: Any, me: int) -> None:
        try:
            self.selector.unregister(conn)
        except (KeyError, ValueError):
            return
        with self._cond:
            self._busy_since, self._busy_thread = time.monotonic(), me
        if not self._active.is_set():
            self._active.set()
        try:
            active = self.handleRequest(conn)
        finally:
            with self._cond:
                if self._busy_thread == me:
                    self._busy_since = self._busy_thread = None
        if active and not self.shutting_down:
            try:
                self.selector.register(conn, selectors.EVENT_READ, self)
                return
            except (KeyError, ValueError, OSError):
                pass
        with self._cond:
            self._connections -= 1
        try:
            self.daemon._clientDisconnect(conn)
        except Exception as exc:
            log.warning("error in clientDisconnect: %s", exc)
        conn.close()

    def hand_over(self) -> None:
        """Called by the daemon before a call known to be slow: if this thread leads, let another lead now."""
        me = threading.get_ident()
        with self._cond:
            if self._leader == me and self._busy_thread == me:
                self._busy_thread = None
                self._promote(me)

    def _watch(self) -> None:
        """Promote a new leader when the current one has been stuck in one request too long."""
        while not self.shutting_down:
            self._active.wait(1.0)  # idle servers cost no wake-ups: sleep until a request starts
            self._active.clear()
            time.sleep(self.promote_after)
            with self._cond:
                since, busy = self._busy_since, self._busy_thread
                if since is None or busy != self._leader or time.monotonic() - since < self.promote_after:
                    continue
                self._busy_thread = None
                self._promote(busy)

    def _promote(self, busy: int) -> None:
        """Give the socket loop to an idle follower or a new thread (called under the lock)."""
        self._leader = None
        if self._idle:
            self._cond.notify()
        elif self._threads < self._max_threads:
            self._threads += 1
            threading.Thread(target=self._start_follower, name="lonja-leader", daemon=True).start()
        else:
            self._leader = busy  # every thread is busy: wait for one to finish

    def _start_follower(self) -> None:
        with self._cond:
            if self._leader is None:
                self._leader = threading.get_ident()
            else:
                self._threads -= 1
                return
        self._serve()
