"""The buffered connection both ends use, on real TCP sockets over loopback: a lane's `wait` and what it
leaves for the next read."""

from __future__ import annotations

import socket
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
