"""No stall before authentication: handshake deadlines, connection caps that bite first, idle and
receive deadlines, the connect message under the size limit, marshal refused unless enabled.

Each test attacks a real name server or service host over real sockets on 127.0.0.1 (the second
address 127.0.0.2 plays another peer) while a bystander checks that everybody else is still served.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from pathlib import Path

import Pyro5.api
import Pyro5.errors
import pytest
from Pyro5 import protocol, serializers

from harness import wait_until
from lonja.clients import connect
from lonja.clients import uri as uri_of
from lonja.config.serializers import check_marshal

FAST = {"LONJA_LIMITS_HANDSHAKE_TIMEOUT": "1", "LONJA_LIMITS_RECEIVE_TIMEOUT": "1"}
SERPENT = serializers.serializers["serpent"]


def _address(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def _silent(address: tuple[str, int], source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection that sends nothing."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(address)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except OSError:  # reset by the peer
        return True


def _connect_message(payload: bytes, serializer_id: int = SERPENT.serializer_id, flags: int = 0) -> bytes:
    return protocol.SendingMessage(protocol.MSG_CONNECT, flags, 1, serializer_id, payload).data


def _answer(sock: socket.socket) -> tuple[int, object]:
    """The type and decoded body of the one message the server answers with."""
    header = _recv_exactly(sock, protocol._header_size)
    fields = struct.unpack(protocol._header_format, header)
    msg_type, serializer_id, size = fields[2], fields[3], fields[6] + fields[7]
    body = _recv_exactly(sock, size)[fields[7]:]
    return msg_type, serializers.serializers_by_id[serializer_id].loads(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _lookup_works(ns: str) -> bool:
    with Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}") as plain:
        plain._pyroTimeout = 5
        return plain.ping() is None


@pytest.fixture
def fast_ns(lonja):
    lonja.env.update(FAST)
    return lonja.nameserver()


def test_silent_connections_are_dropped_after_the_handshake_deadline(fast_ns):
    process, ns = fast_ns
    silent = [_silent(_address(ns)) for _ in range(40)]
    assert _lookup_works(ns)  # they cost no thread: others are served at once
    assert wait_until(lambda: all(_closed_by_peer(sock) for sock in silent), timeout=15)
    process.wait_for("no handshake within 1 s (limits.handshake_timeout)")
    for sock in silent:
        sock.close()


def test_one_silent_connection_does_not_block_a_tls_name_server(lonja, tmp_path):
    certs = tmp_path / "certs"
    assert lonja.run("certs", "init", str(certs)).returncode == 0
    tls = {"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(certs / "ca.pem"),
           "LONJA_TLS_CERT": str(certs / "server.pem"), "LONJA_TLS_KEY": str(certs / "server.key")}
    lonja.env.update({**FAST, **tls})
    _, ns = lonja.nameserver()
    silent = _silent(_address(ns))
    client_tls = {**tls, "LONJA_TLS_CERT": str(certs / "client.pem"), "LONJA_TLS_KEY": str(certs / "client.key")}
    result = lonja.run("ping", "--ns", ns, env=client_tls, timeout=20)
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: _closed_by_peer(silent), timeout=15)
    silent.close()


def _handshake(address: tuple[str, int], source: str) -> tuple[socket.socket, int, object]:
    """A connection from `source` that sends its connect message: the socket and the server's answer."""
    sock = _silent(address, source)
    sock.sendall(_connect_message(SERPENT.dumps({"handshake": "hello", "object": "echo"})))
    return (sock, *_answer(sock))


def test_a_peer_at_its_cap_leaves_room_for_others(lonja, ns):
    server = lonja.start("serve", "echo", "--ns", ns, env={
        **FAST, "LONJA_LIMITS_MAX_CONNECTIONS": "16", "LONJA_LIMITS_MAX_CONNECTIONS_PER_PEER": "4"})
    with connect("echo", ns=ns) as proxy:
        address = _address(Pyro5.api.URI(uri_of(proxy)).location)
    held = [_handshake(address, "127.0.0.2") for _ in range(6)]
    assert [answer for _, answer, _ in held[:4]] == [protocol.MSG_CONNECTOK] * 4
    for _, answer, reason in held[4:]:  # past its per-peer cap
        assert answer == protocol.MSG_CONNECTFAIL
        assert "too many connections from 127.0.0.2 (4)" in str(reason) and "max_connections_per_peer" in str(reason)
    silent = [_silent(address, source="127.0.0.1") for _ in range(6)]  # still in their handshake: not counted
    with connect("echo", ns=ns) as proxy:  # the bystander on 127.0.0.1 gets through
        assert proxy.echo("still served") == "still served"
    server.wait_for("refusing a connection: too many connections from 127.0.0.2")
    for sock in [sock for sock, _, _ in held] + silent:
        sock.close()


def test_over_the_total_cap_a_peer_gets_one_clear_line(lonja, ns):
    lonja.start("serve", "echo", "--ns", ns, env={"LONJA_LIMITS_MAX_CONNECTIONS": "3"})
    with connect("echo", ns=ns) as proxy:
        uri = uri_of(proxy)
    held = []
    for _ in range(3):
        proxy = Pyro5.api.Proxy(uri)
        proxy._pyroBind()
        held.append(proxy)
    with pytest.raises(Pyro5.errors.CommunicationError, match=r"rejected: too many connections \(3\)"):
        Pyro5.api.Proxy(uri)._pyroBind()
    for proxy in held:
        proxy._pyroRelease()


def test_idle_connections_are_closed_and_lonja_clients_reconnect(lonja, ns):
    server = lonja.start("serve", "echo", "--ns", ns,
                         env={"LONJA_LIMITS_IDLE_TIMEOUT": "1", "LONJA_LOG_LEVEL": "info"})
    with connect("echo", ns=ns) as proxy:
        assert proxy.echo(1) == 1
        server.wait_for("idle for 1 s (limits.idle_timeout)")
        assert proxy.echo(2) == 2


def test_a_declared_but_unsent_body_is_dropped_after_the_receive_deadline(lonja, ns):
    lonja.start("serve", "echo", "--ns", ns, env=FAST)
    with connect("echo", ns=ns) as proxy:
        uri = uri_of(proxy)
    plain = Pyro5.api.Proxy(uri)
    plain._pyroBind()
    sock = plain._pyroConnection.sock
    header = struct.pack(protocol._header_format, b"PYRO", protocol.PROTOCOL_VERSION, protocol.MSG_INVOKE,
                         SERPENT.serializer_id, 0, 9, 1000, 0, bytes(16), 0, protocol._magic_number)
    sock.sendall(header + b"x" * 10)
    sock.settimeout(10)
    assert wait_until(lambda: _closed_by_peer(sock), timeout=10)
    with connect("echo", ns=ns) as proxy:
        assert proxy.echo("others carry on") == "others carry on"
    plain._pyroRelease()


def test_marshal_is_refused_before_it_is_decoded(fast_ns):
    process, ns = fast_ns
    bomb = b"[" + struct.pack("<i", 2**31 - 1)  # a list of 2**31 items, in 5 bytes
    for _ in range(4):
        with _silent(_address(ns)) as sock:
            started = time.monotonic()
            sock.sendall(_connect_message(bomb, serializer_id=2))
            msg_type, reason = _answer(sock)
            assert msg_type == protocol.MSG_CONNECTFAIL and "marshal" in reason
            assert time.monotonic() - started < 5
    assert _lookup_works(ns)
    plain = Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}")
    plain._pyroSerializer = "marshal"
    with pytest.raises(Pyro5.errors.CommunicationError, match="does not accept the marshal serializer"):
        plain._pyroBind()


def test_marshal_when_enabled_is_checked_before_it_allocates():
    with pytest.raises(ValueError, match="declares more than it carries"):
        check_marshal(b"[" + struct.pack("<i", 2**31 - 1))
    with pytest.raises(ValueError, match="nested more than"):
        check_marshal(b"[\x01\x00\x00\x00" * 500 + b"N")
    check_marshal(serializers.serializers["marshal"].dumps({"a": [1, 2.5, "x", b"y", (None, True)]}))


@pytest.mark.parametrize("compressed_size", ["over the connect cap", "under it"])
def test_a_compressed_connect_message_cannot_blow_up_the_name_server(fast_ns, compressed_size):
    process, ns = fast_ns
    before = _rss_kib(process.pid)
    zeros = 300_000_000 if compressed_size == "over the connect cap" else 50_000_000
    bomb = zlib.compress(b"[" + b"0," * (zeros // 2) + b"]", 9)
    with _silent(_address(ns)) as sock:
        sock.sendall(_connect_message(bomb, flags=protocol.FLAGS_COMPRESSED))
        sock.settimeout(10)
        try:
            msg_type, reason = _answer(sock)
            assert msg_type == protocol.MSG_CONNECTFAIL and "too large" in str(reason)
        except (AssertionError, OSError):
            assert _closed_by_peer(sock)
    assert _lookup_works(ns)
    assert _rss_kib(process.pid) - before < 100_000


def test_a_huge_compressed_name_is_refused_by_the_name_servers_own_limit(fast_ns):
    _, ns = fast_ns
    try:
        Pyro5.config.COMPRESSION = True
        with Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}") as plain:
            started = time.monotonic()
            with pytest.raises(Pyro5.errors.MessageTooLargeError, match=r"> 1048576 bytes after decompression"):
                plain.lookup("n" * 50_000_000)
            assert time.monotonic() - started < 10
            assert plain.count() == 1  # and the connection goes on
    finally:
        Pyro5.config.COMPRESSION = False


def test_a_refused_write_keeps_the_connection(lonja):
    lonja.env.update({"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_ADMIN_TOKENS": "root:secret-admin-token"})
    _, ns = lonja.nameserver()
    with Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}") as plain:
        with pytest.raises(Pyro5.errors.SecurityError):
            plain.register("mine", "PYRO:x@127.0.0.1:1")
        connection = plain._pyroConnection
        assert "Pyro.NameServer" in plain.list()
        assert plain._pyroConnection is connection
