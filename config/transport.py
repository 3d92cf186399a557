"""lonja's server transport: a guarded leader/followers loop that the name server and service hosts share.

Pyro5 offers two transports, each good at one thing, and neither protects itself:
- `thread` runs a thread per connection, so slow calls overlap, but every connection holds a thread:
  a few hundred silent connections exhaust the pool, and its throughput falls as threads fight over
  the GIL;
- `multiplex` serves every connection from one thread, which scales with clients, but one slow call,
  or one peer that stalls its handshake, stops everybody;
- both run the TLS handshake inside `accept()` and the Pyro5 handshake right after it, with no deadline.

`GuardedServer` keeps multiplex's single selector and adds:
- **leader/followers**: the leader thread waits for ready sockets and runs each request itself. Before
  a call known to be slow, the daemon hands the loop over (`hand_over`); a watchdog does the same for a
  call that holds the leader longer than `promote_after`. Fast calls never change threads, slow calls
  still run side by side (with one thread, it is Pyro5's multiplex: one call at a time);
- **lanes**: a connection that keeps sending gets a thread of its own while one is spare (at most
  `lanes` of them), which waits on that socket alone, as Pyro5's thread server does: the fewest steps
  per call. It polls for the next request for up to `limits.busy_wait` before it sleeps (see
  `connection`), so a client that calls in a loop finds it awake. A lane quiet for `lane_idle` seconds
  hands its connection back to the selector;
- **handshakes off the accept path**: `accept()` only takes the socket. The TLS handshake and the
  connect message then advance without blocking, each time the socket has data, and a connection that
  has not finished both within `limits.handshake_timeout` is dropped. A silent peer costs a file
  descriptor, never a thread;
- **caps that bite first**: `limits.max_connections` in all; per IP address, `max_pending_per_peer`
  connections still in their handshake (past it, that address's oldest handshake is dropped) and,
  optionally, `max_connections_per_peer` past it. A peer over a cap gets a one-line "too many
  connections (N)" answer to its connect message, so other peers get through while it sits at its cap;
- **a local socket**: optionally (`listen_locally`, Linux) an abstract Unix socket beside the TCP one, for
  clients on the same machine: a round trip through it skips the kernel's TCP stack (on a 2-core VM, a
  60-byte ping-pong took 33-43 µs against 57-72 µs over loopback TCP). An abstract socket has no file: it
  goes with the process, even after kill -9, and belongs to the network namespace, as a port does. Its
  connections meet the same handshake, token check and limits, as peer "unix socket";
- **deadlines**: a peer that stops in the middle of a message is dropped after `limits.receive_timeout`,
  a connection without requests after `limits.idle_timeout` (unless it holds resources of its client's
  session, Pyro5's `track_resource`: a service host's liveness session with the name server).
Only the leader watches the selector, so a connection stays in it while the leader runs its request; it
leaves when the loop is handed over mid-request or it gets a lane. Either way its requests are served in
order, by one thread at a time.
"""

from __future__ import annotations

import collections
import logging
import secrets
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Pyro5 import config, errors, protocol, serializers
from Pyro5.svr_multiplex import SocketServer_Multiplex

from .connection import BufferedConnection
from .limits import LOCAL_PEER, Limits, PeerLog, peer_of
from .wire import receive

log = logging.getLogger("lonja.transport")
peer_log = PeerLog(log)

MAX_REFUSING = 64
"""Connections kept open at once only to answer them with a refusal; past it, they are closed unanswered."""
EXPIRY_INTERVAL = 0.5
"""Seconds between the leader's checks for handshake and idle deadlines."""


@dataclass(eq=False)
class Pending:
    """A connection still in its handshake: what arrived so far, and until when it may take."""

    sock: Any
    peer: str
    deadline: float
    refusal: str | None = None
    tls_done: bool = True
    buffer: bytearray = field(default_factory=bytearray)
    ended: bool = False


@dataclass(eq=False)
class Established:
    """A connection past its handshake, and when it last sent a request; `handed_over` while a request
    of it runs on a thread that is no longer the leader (it is out of the selector then)."""

    peer: str
    last_active: float
    handed_over: bool = False


@dataclass(frozen=True, eq=False)
class Busy:
    """The request the leader is running: its thread, connection and start."""

    thread: int
    conn: Any
    state: Established
    since: float


class _Received:
    """The bytes of one complete message, read back through the `recv(size)` that `wire.receive` uses."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def recv(self, size: int) -> bytes:
        chunk, self._data = self._data[:size], self._data[size:]
        if len(chunk) < size:
            raise errors.ConnectionClosedError("receiving: not enough data")
        return bytes(chunk)


class GuardedServer(SocketServer_Multiplex):
    """Pyro5's multiplex transport as a guarded leader/followers loop (see the module doc)."""

    promote_after = 0.005
    lanes = 8
    """Connections at most that get a thread of their own while they keep sending (a lane): their calls
    skip the selector. The rest share the leader; with one thread (multiplex) there are none. Eight
    client processes calling one host on 2 CPUs made 13 % more calls with 8 lanes than with 2."""
    lane_idle = 1.0
    """Seconds a lane waits for its connection's next request before the connection goes back to the
    selector and the thread to the pool."""

    def start_pool(self, limits: Limits, max_threads: int, answer_handshake: Callable[..., bool]) -> None:
        """Prepare the loop; called once, before it runs. `answer_handshake(conn, message, refusal)`
        answers a complete connect message (the daemon's part of the handshake)."""
        self.limits = limits
        # One address's handshakes may hold at most half of all connections, whatever the settings say.
        self.pending_per_peer = max(1, min(limits.max_pending_per_peer, limits.max_connections // 2))
        self._answer_handshake = answer_handshake
        self.max_threads = max(1, max_threads)
        self._tls = self.sock.context if isinstance(self.sock, ssl.SSLSocket) else None
        self._cond = threading.Condition()
        self._total = 0                                           # connections counted against the caps
        self._handshaking: dict[str, dict[Pending, None]] = {}    # per address, oldest first
        self._established: collections.Counter[str] = collections.Counter()  # past their handshake
        self._refusing = 0
        self._next_expiry = 0.0
        self._leader: int | None = None
        self._leader_wanted = False   # every thread was busy when the leader had to hand over
        self._owner: int | None = None  # the thread that called loop(): it returns only at shutdown
        self._threads = 0
        self._idle = 0
        self._busy: Busy | None = None   # the request the leader runs now
        self._lanes = 0
        self._active = threading.Event()
        self._loop_condition: Callable[[], bool] = lambda: True
        self._local: socket.socket | None = None

    def listen_locally(self) -> str | None:
        """Also accept connections on an abstract Unix socket with a random name; its address (a NUL, then
        the name), or None where there are none (not Linux) or the server speaks TLS (its clients expect TLS)."""
        if self._tls is not None or not sys.platform.startswith("linux"):
            return None
        address = "\0lonja-" + secrets.token_hex(16)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, self)
        except OSError as exc:
            log.warning("no local socket (%s): clients on this machine use TCP", exc)
            sock.close()
            return None
        self._local = sock
        return address

    def close(self) -> None:
        """Close the listening sockets (the local one too) and the connections."""
        super().close()
        local, self._local = self._local, None
        if local is not None:
            local.close()

    def open_connections(self) -> int:
        """Connections accepted and not yet closed (in their handshake, idle, or in a request)."""
        with self._cond:
            return self._total

    def local_connections(self) -> int:
        """Connections past their handshake that came through a Unix socket."""
        with self._cond:
            return self._established[LOCAL_PEER]

    # -- the loop -------------------------------------------------------------------------------------

    def loop(self, loopCondition: Callable[[], bool] = lambda: True) -> None:
        """Run the request loop in this thread (it may serve as leader or follower) until shutdown."""
        self._loop_condition = loopCondition
        with self._cond:
            self._threads += 1
            self._leader = self._owner = threading.get_ident()
        if self.max_threads > 1:
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
            if self._idle >= 2 and self._leader is not None and not self._leader_wanted and me != self._owner:
                return False  # enough idle followers already: let this thread end (never loop()'s own)
            self._idle += 1
            try:
                while self._leader is not None and not self._leader_wanted and self._running():
                    self._cond.wait(1.0)
            finally:
                self._idle -= 1
            if not self._running():
                return False
            if self._busy is not None:  # taking over from a leader still in a request: not its socket
                self._take_out(self._busy)
            self._leader, self._leader_wanted = me, False
            return True

    def _lead_once(self, me: int) -> None:
        try:
            events = self.selector.select(min(config.POLLTIMEOUT, EXPIRY_INTERVAL))
        except (OSError, ValueError):
            events = []
        for key, _ in events:
            if self._leader != me or self.shutting_down:
                return  # demoted while busy: the new leader sees the remaining sockets itself
            if key.data is self:  # a listening socket: TCP, or the local one
                self._accept(key.fileobj)
            elif isinstance(key.data, Pending):
                self._advance(key.data)
            else:
                self._serve_request(key.fileobj, key.data, me)
        if self._leader == me and not self.shutting_down:
            self._expire()
            self.daemon._housekeeping()

    # -- new connections ------------------------------------------------------------------------------

    def _accept(self, listening: Any) -> None:
        """Take one connection off a listening socket (no handshake here) and start its handshake."""
        try:
            raw, address = socket.socket.accept(listening)  # the plain accept, also under TLS
            raw.setblocking(False)
            sock = raw if self._tls is None else self._tls.wrap_socket(raw, server_side=True,
                                                                       do_handshake_on_connect=False)
        except OSError:  # gone already (a reset while accepting, or before TLS could start)
            return
        peer = address[0] if isinstance(address, tuple) else LOCAL_PEER
        with self._cond:
            refusal = self._refusal()
            if refusal and self._refusing >= MAX_REFUSING:
                drop, evicted, pending = True, None, None
            else:
                drop = False
                handshaking = self._handshaking.setdefault(peer, {})
                evicted = next(iter(handshaking)) if len(handshaking) >= self.pending_per_peer else None
                pending = Pending(sock, peer, time.monotonic() + self.limits.handshake_timeout, refusal,
                                  tls_done=self._tls is None)
                handshaking[pending] = None
                if refusal:
                    self._refusing += 1
                else:
                    self._total += 1
        if drop or pending is None:
            peer_log.warning(peer, f"connection closed unanswered: {refusal}")
            _close(sock)
            return
        if evicted is not None:
            self._end_pending(evicted, f"evicted: more than {self.pending_per_peer} connections from this "
                                       f"address were in their handshake (limits.max_pending_per_peer)")
        if refusal:
            peer_log.warning(peer, f"refusing a connection: {refusal}")
        try:
            self.selector.register(sock, selectors.EVENT_READ, pending)
        except (ValueError, OSError):  # the selector closed: the server is shutting down
            self._end_pending(pending, "the server is shutting down")

    def _release(self, pending: Pending, kept: bool) -> None:
        """A handshake is over (called under the lock): `kept`, the connection goes on as established."""
        handshaking = self._handshaking.get(pending.peer, {})
        handshaking.pop(pending, None)
        if not handshaking:
            self._handshaking.pop(pending.peer, None)
        if pending.refusal:
            self._refusing -= 1
        elif kept:
            self._established[pending.peer] += 1
        else:
            self._total -= 1

    def _refusal(self) -> str | None:
        """Why a new connection is refused at once (called under the lock), or None."""
        if self._total >= self.limits.max_connections:
            return (f"too many connections ({self._total}): the server is at its limit "
                    f"(limits.max_connections), try again later")
        return None

    def _peer_refusal(self, peer: str) -> str | None:
        """Why a handshake from `peer` is refused although it completed (called under the lock), or None.

        Only connections past their handshake count here: an address's silent connections are bounded by
        `max_pending_per_peer` instead, so they never lock out that address's real clients.
        """
        per_peer = self.limits.max_connections_per_peer
        if per_peer and self._established[peer] >= per_peer:
            return (f"too many connections from {peer} ({self._established[peer]}): the server's limit per "
                    f"address is {per_peer} (limits.max_connections_per_peer)")
        return None

    def _advance(self, pending: Pending) -> None:
        """Move a handshake on with what the socket has now; answer it once the connect message is whole."""
        if pending.ended:
            return None
        try:
            if not pending.tls_done:
                pending.sock.do_handshake()
                pending.tls_done = True
            while not self._connect_message_complete(pending):
                chunk = pending.sock.recv(65536)
                if not chunk:
                    return self._end_pending(pending, "the peer closed the connection during its handshake")
                pending.buffer += chunk
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None  # more will come: the selector says when
        except ssl.SSLError as exc:
            return self._end_pending(pending, f"the TLS handshake failed: {exc.reason or exc}")
        except _BadConnect as exc:
            return self._end_pending(pending, str(exc), answer=exc.seq is not None)
        except OSError as exc:
            return self._end_pending(pending, f"connection lost during the handshake: {exc}")
        return self._complete(pending)

    def _connect_message_complete(self, pending: Pending) -> bool:
        """True once the buffer holds a whole connect message; _BadConnect if it cannot be one."""
        header_size = protocol._header_size
        if len(pending.buffer) < header_size:
            return False
        header = bytes(pending.buffer[:header_size])
        try:
            protocol.ReceivingMessage.validate(header)
        except errors.ProtocolError:
            raise _BadConnect("not a Pyro5 connect message (invalid header)") from None
        (_, _, msg_type, _, _, seq, data_size, annotations_size, *_rest) = struct.unpack(protocol._header_format,
                                                                                        header)
        if msg_type != protocol.MSG_CONNECT:
            raise _BadConnect(f"expected a connect message, got message type {msg_type}")
        declared = data_size + annotations_size
        if declared > self.limits.max_connect_size:
            raise _BadConnect(f"connect message too large ({declared} > {self.limits.max_connect_size} bytes, "
                              f"limits.max_connect_size)", seq)
        if len(pending.buffer) > header_size + declared:
            raise _BadConnect("data sent before the handshake was answered")
        return len(pending.buffer) == header_size + declared

    def _complete(self, pending: Pending) -> None:
        """The connect message is whole: let the daemon answer it; keep the connection if it accepted."""
        pending.ended = True
        self._unregister(pending.sock)
        sock = pending.sock
        sock.setblocking(True)
        conn = BufferedConnection(sock)
        conn.settimeout(self.limits.receive_timeout)
        conn.busy_wait = self.limits.busy_wait  # a lane's poll for its connection's next request
        with self._cond:
            refusal = pending.refusal or self._peer_refusal(pending.peer)
        if refusal and not pending.refusal:
            peer_log.warning(pending.peer, f"refusing a connection: {refusal}")
        try:
            message = receive(_Received(bytes(pending.buffer)), [protocol.MSG_CONNECT],
                              self.limits.max_connect_size)
            accepted = self._answer_handshake(conn, message, refusal)
        except Exception as exc:  # a bad message, or the peer left: one line, never the loop's end
            peer_log.warning(pending.peer, f"handshake refused: {exc}")
            accepted = False
        with self._cond:
            self._release(pending, kept=accepted)
        if not accepted:
            conn.close()
            return
        state = Established(pending.peer, time.monotonic())
        try:
            self.selector.register(conn, selectors.EVENT_READ, state)
        except (ValueError, OSError):  # the selector closed: the server is shutting down
            self._close_established(conn, state)

    def _end_pending(self, pending: Pending, reason: str, answer: bool = False) -> None:
        """Close a connection whose handshake failed or ran out of time (answering it first if it can be)."""
        if pending.ended:
            return
        pending.ended = True
        peer_log.warning(pending.peer, f"connection dropped: {reason}")
        self._unregister(pending.sock)
        if answer:
            self._answer_bad_connect(pending, reason)
        with self._cond:
            self._release(pending, kept=False)
        _close(pending.sock)

    def _answer_bad_connect(self, pending: Pending, reason: str) -> None:
        """Tell a peer whose connect message is refused unread why, in serpent (what every Pyro5 peer reads)."""
        header = struct.unpack(protocol._header_format, bytes(pending.buffer[:protocol._header_size]))
        serpent = serializers.serializers["serpent"]
        reply = protocol.SendingMessage(protocol.MSG_CONNECTFAIL, 0, header[5], serpent.serializer_id,
                                        serpent.dumps(reason))
        try:
            pending.sock.setblocking(True)
            pending.sock.settimeout(1.0)
            pending.sock.sendall(reply.data)
        except OSError:
            pass

    # -- requests -------------------------------------------------------------------------------------

    def _serve_request(self, conn: Any, state: Established, me: int) -> None:
        """Run the requests `conn` has sent, on this (the leader's) thread.

        The connection stays in the selector, which only the leader watches: a quick call costs no selector
        change. Only when the loop is handed to another thread is it taken out (`_take_out`), and put back
        here once its request is done.
        """
        try:
            if self.selector.get_key(conn).data is not state:
                return
        except (KeyError, ValueError):
            return  # closed or taken out since the selector saw it
        busy = Busy(me, conn, state, time.monotonic())
        with self._cond:
            if self._leader != me:
                return  # demoted meanwhile: the new leader sees this socket itself
            self._busy = busy
        if not self._active.is_set():
            self._active.set()
        active = False
        try:
            active = self.handleRequest(conn)
            while active and conn.pending():  # read along with the last request, or decrypted already
                active = self.handleRequest(conn)
        finally:
            with self._cond:
                if self._busy is busy:
                    self._busy = None
                handed_over, state.handed_over = state.handed_over, False
        state.last_active = time.monotonic()
        if active and not self.shutting_down:
            if not handed_over:
                if self._open_lane(conn, me):
                    self._lane(conn, state)
                return
            try:
                self.selector.register(conn, selectors.EVENT_READ, state)
                return
            except (KeyError, ValueError, OSError):
                pass
        elif not handed_over:
            self._unregister(conn)
        self._close_established(conn, state)

    def _open_lane(self, conn: Any, me: int) -> bool:
        """Give `conn` a thread of its own (this one) if a lane is free and another thread can lead."""
        with self._cond:
            if self._lanes >= self.lanes or self._leader != me or self._leader_wanted or \
                    not (self._idle or self._threads < self.max_threads) or not self._unregister(conn):
                return False
            self._lanes += 1
            self._promote(me)
            return True

    def _lane(self, conn: Any, state: Established) -> None:
        """Serve `conn` on this thread, blocking in a `recv` on its socket alone, until it is quiet for
        `lane_idle` seconds; then it goes back to the selector (or is closed, if it ended)."""
        active = True
        while active and self._running():
            if not conn.wait(self.lane_idle):
                break
            active = self.handleRequest(conn)
            state.last_active = time.monotonic()
        with self._cond:
            self._lanes -= 1
        if active and self._running():
            try:
                self.selector.register(conn, selectors.EVENT_READ, state)
                return
            except (KeyError, ValueError, OSError):
                pass
        self._close_established(conn, state)

    def _take_out(self, busy: Busy) -> None:
        """The leader is handing the loop over mid-request: its connection leaves the selector until the
        request is done (called under the lock)."""
        if self._busy is busy:
            self._busy = None
        if self._unregister(busy.conn):
            busy.state.handed_over = True

    def handleRequest(self, conn: Any) -> bool:
        """Handle one request on `conn`; False when the connection is done (gone, too slow, or garbled)."""
        try:
            self.daemon.handleRequest(conn)
            return True
        except errors.SecurityError:
            return True  # already answered: a refusal keeps the connection, as any other error answer does
        except errors.TimeoutError:
            peer_log.warning(peer_of(conn), f"connection dropped: a message was not completed within "
                                          f"{self.limits.receive_timeout:g} s (limits.receive_timeout)")
        except errors.ProtocolError as exc:
            peer_log.warning(peer_of(conn), f"connection dropped: {exc}")
        except (OSError, errors.CommunicationError):
            pass  # the peer went away
        except Exception as exc:  # the loop must outlive any one request
            peer_log.warning(peer_of(conn), f"connection dropped after an error: {type(exc).__name__}: {exc}")
        return False

    def _close_established(self, conn: Any, state: Established) -> None:
        with self._cond:
            self._total -= 1
            self._established[state.peer] -= 1
            if not self._established[state.peer]:
                del self._established[state.peer]
        try:
            self.daemon._clientDisconnect(conn)
        except Exception as exc:
            log.warning("error in clientDisconnect: %s", exc)
        conn.close()

    def _expire(self) -> None:
        """Drop handshakes past their deadline and connections idle past `limits.idle_timeout`."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + EXPIRY_INTERVAL
        with self._cond:
            late = [pending for handshaking in self._handshaking.values() for pending in handshaking
                    if now > pending.deadline]
        for pending in late:
            self._end_pending(pending, f"no handshake within {self.limits.handshake_timeout:g} s "
                                       f"(limits.handshake_timeout)")
        idle = self.limits.idle_timeout
        if not idle:
            return
        try:  # busy threads put connections back meanwhile: a changing map is read again next time
            keys = list(self.selector.get_map().values())
        except (RuntimeError, KeyError, ValueError, AttributeError):
            return
        for key in keys:
            state = key.data
            if isinstance(state, Established) and now - state.last_active > idle \
                    and not key.fileobj.tracked_resources:  # a client's session (e.g. a host's) stays open
                log.info("closing the connection from %s: idle for %.0f s (limits.idle_timeout)", state.peer, idle)
                self._unregister(key.fileobj)
                self._close_established(key.fileobj, state)

    def _unregister(self, fileobj: Any) -> bool:
        """Take `fileobj` out of the selector; False if it was not in it (any more)."""
        try:
            self.selector.unregister(fileobj)
            return True
        except (KeyError, ValueError):
            return False

    # -- handing the loop over ------------------------------------------------------------------------

    def hand_over(self) -> None:
        """Called by the daemon before a call known to be slow: if this thread leads, let another lead now."""
        me = threading.get_ident()
        with self._cond:
            busy = self._busy
            if self._leader == me and busy is not None and busy.thread == me:
                self._take_out(busy)
                self._promote(me)

    def _watch(self) -> None:
        """Promote a new leader when the current one has been stuck in one request too long.

        It sleeps while the server is idle; a request wakes it only if it is asleep, so a busy server
        wakes it once per `promote_after`, not once per request.
        """
        while not self.shutting_down:
            self._active.wait(1.0)
            self._active.clear()
            time.sleep(self.promote_after)
            busy = self._busy
            if busy is None or time.monotonic() - busy.since < self.promote_after:
                continue
            with self._cond:
                if self._busy is busy and busy.thread == self._leader:
                    self._take_out(busy)
                    self._promote(busy.thread)

    def _promote(self, busy: int | None) -> None:
        """Give the socket loop to an idle follower or a new thread (called under the lock)."""
        self._leader = None
        if self._idle:
            self._cond.notify()
        elif self._threads < self.max_threads:
            self._threads += 1
            threading.Thread(target=self._start_follower, name="lonja-leader", daemon=True).start()
        else:  # every thread is busy: the first to finish its call takes the loop over
            self._leader = busy
            self._leader_wanted = True

    def _start_follower(self) -> None:
        with self._cond:
            if self._leader is None:
                self._leader = threading.get_ident()
            else:
                self._threads -= 1
                return
        self._serve()


class _BadConnect(Exception):
    """A connect message that is refused unread; `seq` is set when it can still be answered."""

    def __init__(self, reason: str, seq: int | None = None) -> None:
        super().__init__(reason)
        self.seq = seq


def _close(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass
