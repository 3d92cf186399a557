"""The buffered connection both ends use, on real TCP sockets over loopback: a lane's `wait` and what it
leaves for the next read, and a client's busy wait for its reply."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import Pyro5.errors
import pytest

from lonja.config.connection import BufferedConnection


@pytest.fixture
def pair() -> Iterator[tuple[BufferedConnection, socket.socket]]:
    """A buffered connection (5 s timeout) and the plain socket at its other end."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    accepted.settimeout(5.0)
    conn = BufferedConnection(accepted)
    yield conn, peer
    conn.close()
    peer.close()


def test_wait_says_false_after_its_timeout_and_true_when_bytes_came(pair):
    conn, peer = pair
    assert conn.wait(0.05) is False
    peer.sendall(b"hello")
    assert conn.wait(5.0) is True
    assert conn.pending() == 5
    assert conn.recv(5) == b"hello"


def test_the_rest_of_a_message_gets_the_connections_timeout_not_the_waits(pair):
    conn, peer = pair
    peer.sendall(b"head")
    assert conn.wait(0.05)
    threading.Timer(0.3, peer.sendall, args=(b"tail",)).start()  # longer than the wait's 0.05 s
    assert conn.recv(8) == b"headtail"
    assert conn.gettimeout() == 5.0


def test_a_slow_message_still_times_out_after_the_connections_timeout(pair):
    conn, peer = pair
    conn.settimeout(0.2)
    peer.sendall(b"head")
    assert conn.wait(5.0)
    started = time.monotonic()
    with pytest.raises(Pyro5.errors.TimeoutError):
        conn.recv(8)
    assert time.monotonic() - started < 4.0, "the wait's 5 s applied to the rest of the message"


def test_wait_reports_a_closed_peer_and_the_next_read_says_so(pair):
    conn, peer = pair
    peer.close()
    assert conn.wait(5.0) is True
    with pytest.raises(Pyro5.errors.ConnectionClosedError):
        conn.recv(1)


def test_a_large_message_is_read_intact_and_the_buffer_serves_the_next_one(pair):
    conn, peer = pair
    header, body = b"H" * 40, bytes(range(256)) * 400  # 102,400 bytes: taken over from the buffer, not copied
    peer.sendall(header + body)
    time.sleep(0.05)  # all of it in the socket: the first read takes the whole message
    assert conn.recv(6) + conn.recv(34) == header
    assert conn.recv(len(body)) == body
    peer.sendall(b"next")
    assert conn.recv(4) == b"next"


def test_a_busy_waiting_connection_still_reads_late_messages_whole_and_times_out(pair):
    conn, peer = pair
    conn.busy_wait = 0.01
    conn.settimeout(0.3)
    threading.Timer(0.1, peer.sendall, args=(b"late",)).start()  # well past the busy wait
    assert conn.recv(4) == b"late"
    with pytest.raises(Pyro5.errors.TimeoutError):
        conn.recv(4)  # nothing comes: the connection's timeout, not the busy wait, ends it
    peer.close()
    with pytest.raises(Pyro5.errors.ConnectionClosedError):
        conn.recv(4)


SLOW_PEER = """
import socket, sys, time
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as sock:
    while sock.recv(1):
        time.sleep(0.06)
        sock.sendall(b"reply")
"""


def test_replies_slower_than_the_busy_wait_soon_stop_costing_cpu():
    """Ten replies that each come 60 ms late (from another process), with a 30 ms busy wait: polling for
    every one would cost 0.3 s of CPU; after a miss the connection sleeps through the next 1, 3, 7 ..."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10.0)
        peer = subprocess.Popen([sys.executable, "-c", SLOW_PEER, str(server.getsockname()[1])])
        try:
            accepted, _ = server.accept()
            accepted.settimeout(5.0)
            with BufferedConnection(accepted) as conn:
                conn.busy_wait = 0.03
                started = time.thread_time()
                for _ in range(10):
                    conn.send(b"?")
                    assert conn.recv(5) == b"reply"
                assert time.thread_time() - started < 0.15
        finally:
            peer.kill()
            peer.wait()
