"""Hard limits: message size after decompression, a clear "too large" answer, a connection cap."""

from __future__ import annotations

import logging
import struct
import threading
import time

import Pyro5.api
import Pyro5.errors
import pytest
from Pyro5 import protocol

from harness import wait_until
from lonja import clients
from lonja.clients import MessageTooLarge, ServiceUnreachable, connect
from lonja.config import wire

LIMITS = {"LONJA_LIMITS_MAX_MESSAGE_SIZE": "100000", "LONJA_LIMITS_MAX_CONNECTIONS": "4"}


def _serve(lonja, ns, **env):
    server = lonja.start("serve", "echo", "--ns", ns, env={**LIMITS, **env})
    with connect("echo", ns=ns) as proxy:
        location = clients.uri(proxy)
    return location, server


@pytest.fixture
def limited(lonja, ns):
    uri, server = _serve(lonja, ns)
    return ns, uri, server


def test_oversized_argument_gets_a_clear_error_and_the_connection_survives(limited):
    ns, uri, server = limited
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(MessageTooLarge, match=r"message too large \(2000\d\d > 100000 bytes\): send less"):
            proxy.echo(b"x" * 200_000)
        assert proxy.echo("next call works") == "next call works"
    with Pyro5.api.Proxy(uri) as plain:
        with pytest.raises(Pyro5.errors.MessageTooLargeError, match=r"message too large \(\d+ > 100000 bytes\)"):
            plain.echo("y" * 200_000)
        assert plain.echo("and with plain Pyro5") == "and with plain Pyro5"
    server.wait_for("refused a request: message too large")


def test_oversized_oneway_call_is_dropped_without_an_answer(limited):
    _, uri, server = limited
    with Pyro5.api.Proxy(uri) as plain:  # `notify` is oneway: an answer would put the next reply out of sync
        before = plain.notified
        plain.notify(b"x" * 200_000)
        assert plain.notified == before
        plain.notify("small")
        assert wait_until(lambda: plain.notified == before + 1)
    server.wait_for("refused a oneway request")


def test_compressed_oversized_argument_is_refused_while_others_carry_on(limited):
    ns, uri, _ = limited
    stop = threading.Event()
    served: list[int] = []
    failures: list[str] = []

    def other_client() -> None:
        with connect("echo", ns=ns) as other:
            while not stop.is_set():
                try:
                    served.append(other.echo(len(served)))
                except Exception as exc:  # any failure of the bystander is the bug this test looks for
                    failures.append(repr(exc))

    bystander = threading.Thread(target=other_client)
    bystander.start()
    try:
        Pyro5.config.COMPRESSION = True
        bomb = Pyro5.api.Proxy(uri)
        bomb._pyroSerializer = "serpent"
        for _ in range(3):
            before = len(served)
            with pytest.raises(Pyro5.errors.MessageTooLargeError,
                               match=r"message too large \(5000\d{4} > 100000 bytes after decompression\)"):
                bomb.echo("z" * 50_000_000)  # about 50 KB once compressed
            assert len(served) >= before
        with connect("echo", ns=ns) as proxy:  # what a lonja user sees
            with pytest.raises(MessageTooLarge, match="after decompression"):
                proxy.echo("z" * 1_000_000)
            assert proxy.echo("compressed and small") == "compressed and small"
    finally:
        Pyro5.config.COMPRESSION = False
        stop.set()
        bystander.join(30)
    assert failures == [] and len(served) > 10
    with connect("echo", ns=ns) as proxy:
        assert proxy.echo("small") == "small"


@pytest.mark.parametrize("servertype", ["adaptive", "multiplex"])
def test_connection_limit_refuses_clearly_and_recovers(lonja, ns, servertype):
    uri, server = _serve(lonja, ns, LONJA_SERVICE_SERVERTYPE=servertype)
    held = []
    for _ in range(4):
        proxy = Pyro5.api.Proxy(uri)
        proxy._pyroBind()
        held.append(proxy)
    started = time.monotonic()
    with pytest.raises(Pyro5.errors.CommunicationError,
                       match=r"rejected: too many connections \(4\): the server is at its limit"):
        Pyro5.api.Proxy(uri)._pyroBind()
    assert time.monotonic() - started < 5
    with pytest.raises(ServiceUnreachable, match="refused the connection: too many connections"):
        connect(uri, retries=1).echo(1)
    server.wait_for("refusing a connection: too many connections (4)")
    held.pop()._pyroRelease()
    with connect(uri) as proxy:  # the freed slot is seen at once, or the client's retries cover the gap
        assert proxy.echo("room again") == "room again"
    for proxy in held:
        proxy._pyroRelease()


def test_thread_server_refuses_past_its_pool_with_pyro5s_message(lonja, ns):
    uri, _ = _serve(lonja, ns, LONJA_SERVICE_SERVERTYPE="thread", LONJA_SERVICE_THREADS="3")
    held = [Pyro5.api.Proxy(uri) for _ in range(3)]
    for proxy in held:
        proxy._pyroBind()
    with pytest.raises(Pyro5.errors.CommunicationError, match="rejected: no free workers"):
        Pyro5.api.Proxy(uri)._pyroBind()
    with pytest.raises(ServiceUnreachable, match="refused the connection: no free workers"):
        connect(uri, retries=1).echo(1)
    held.pop()._pyroRelease()
    with connect(uri) as proxy:  # the freed slot is seen at once, or the client's retries cover the gap
        assert proxy.echo("room again") == "room again"
    for proxy in held:
        proxy._pyroRelease()


class _Declaring:
    """A connection whose one message declares `size` bytes of payload (and sends none)."""

    def __init__(self, size: int) -> None:
        header = struct.pack(protocol._header_format, b"PYRO", protocol.PROTOCOL_VERSION, protocol.MSG_INVOKE,
                             4, 0, 7, size, 0, bytes(16), 0, protocol._magic_number)
        self.pending = header
        self.asked = 0

    def recv(self, size: int) -> bytes:
        self.asked += size
        chunk, self.pending = self.pending[:size], self.pending[size:]
        return chunk


def test_a_message_too_large_to_drain_closes_the_connection_at_once(caplog):
    connection = _Declaring(wire.DRAIN_LIMIT + 1)
    with caplog.at_level(logging.WARNING, logger="lonja.wire"):
        with pytest.raises(Pyro5.errors.ConnectionClosedError):
            wire.receive(connection, [protocol.MSG_INVOKE], 100_000)
    assert connection.asked == protocol._header_size  # nothing read past the header
    assert "closing the connection" in caplog.text


def test_name_server_applies_the_limit_after_decompression_too(lonja):
    lonja.env.update(LIMITS)
    _, ns = lonja.nameserver()
    try:
        Pyro5.config.COMPRESSION = True
        plain = Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}")
        with pytest.raises(Pyro5.errors.MessageTooLargeError, match="after decompression"):
            plain.register("big", "PYRO:x@127.0.0.1:1", metadata={"m" * 5_000_000})
    finally:
        Pyro5.config.COMPRESSION = False
    with Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}") as plain:
        plain.register("small", "PYRO:x@127.0.0.1:1")
        assert "small" in plain.list() and "big" not in plain.list()
