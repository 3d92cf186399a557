"""Bad input loses nothing: malformed messages and abrupt clients don't stop a server serving others."""

from __future__ import annotations

import socket

import pytest

from lonja.clients import NameServerClient, connect, uri

GARBAGE = [b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PYRO" + b"\x00" * 60, b"\xff" * 4096,
           b"PYRO\x01\x02" + b"\x01" * 34]


def _address(uri: str) -> tuple[str, int]:
    host, port = uri.split("@")[1].rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("target", ["service", "name server"])
def test_garbage_and_hangups_do_not_stop_a_server(ns, echo, target):
    with connect("echo", ns=ns) as proxy:
        assert proxy.echo(1) == 1
        address = _address(uri(proxy)) if target == "service" else tuple(ns.split(":"))
        for payload in GARBAGE:
            with socket.create_connection((address[0], int(address[1])), timeout=5) as sock:
                try:
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(1024)
                except OSError:
                    pass
        assert proxy.echo(2) == 2, "the server stopped serving after bad input"
        assert [f.result(timeout=10) for f in [proxy.echo.future(i) for i in range(10)]] == list(range(10))
    with NameServerClient(ns) as names:
        assert "echo" in names.list()


def test_a_silent_client_does_not_block_the_others(ns, echo):
    with connect("echo", ns=ns) as proxy:
        address = _address(uri(proxy))
    silent = [socket.create_connection(address, timeout=5) for _ in range(3)]  # connect, never speak
    try:
        with connect("echo", ns=ns) as other:
            assert other.echo("still served") == "still served"
            assert [f.result(timeout=10) for f in [other.echo.future(i) for i in range(5)]] == list(range(5))
    finally:
        for sock in silent:
            sock.close()
