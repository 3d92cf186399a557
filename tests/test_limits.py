"""Hard limits: message size after decompression, a clear "too large" answer, a connection cap."""

from __future__ import annotations

import threading
import time

import Pyro5.api
import Pyro5.errors
import pytest

from clients import MessageTooLarge, ServiceUnreachable, connect

LIMITS = {"LONJA_LIMITS_MAX_MESSAGE_SIZE": "100000", "LONJA_LIMITS_MAX_CONNECTIONS": "4"}


@pytest.fixture
def limited(lonja, ns):
    server = lonja.start("serve", "echo", "--ns", ns, env=LIMITS)
    with connect("echo", ns=ns) as proxy:
        uri = proxy.uri
    return ns, uri, server


def test_oversized_argument_gets_a_clear_error_and_the_connection_survives(limited):
    ns, uri, _ = limited
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(MessageTooLarge, match=r"message too large \(\d+ > 100000 bytes\)"):
            proxy.echo(b"x" * 200_000)
        assert proxy.echo("next call works") == "next call works"
    plain = Pyro5.api.Proxy(uri)
    with pytest.raises(Pyro5.errors.MessageTooLargeError, match="message too large"):
        plain.echo("y" * 200_000)


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
        bomb._pyroSerializer = "marshal"
        for _ in range(3):
            before = len(served)
            with pytest.raises(Pyro5.errors.MessageTooLargeError, match="after decompression"):
                bomb.echo("z" * 50_000_000)  # about 50 KB once compressed
            assert len(served) >= before
    finally:
        Pyro5.config.COMPRESSION = False
        time.sleep(0.2)
        stop.set()
        bystander.join(30)
    assert failures == [] and len(served) > 10
    with connect("echo", ns=ns) as proxy:
        assert proxy.echo("small") == "small"


def test_connection_limit_refuses_clearly_and_recovers(limited):
    ns, uri, _ = limited
    held = []
    for _ in range(4):
        proxy = Pyro5.api.Proxy(uri)
        proxy._pyroBind()
        held.append(proxy)
    started = time.monotonic()
    with pytest.raises(Pyro5.errors.CommunicationError, match=r"too many connections \(4\)"):
        Pyro5.api.Proxy(uri)._pyroBind()
    assert time.monotonic() - started < 5
    with pytest.raises(ServiceUnreachable, match="too many connections"):
        connect(uri, retries=1).echo(1)
    held.pop()._pyroRelease()
    time.sleep(0.2)
    with connect(uri) as proxy:
        assert proxy.echo("room again") == "room again"
    for proxy in held:
        proxy._pyroRelease()


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
