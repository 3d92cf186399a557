"""A host's local socket: lonja clients on the same machine call through it after their first calls, fall
back to TCP when it cannot be used, and find it gone once the host stops."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import Pyro5.api
import Pyro5.errors
import pytest

from harness import host_stats, wait_until
from lonja.clients import LonjaError, connect, uri
from lonja.clients.proxy import LOCAL_AFTER
from lonja.config import load_settings

CALLS = LOCAL_AFTER + 5  # enough for a client to move to the local socket
LOCAL_LINE = "lonja clients on this machine call it through "


def local_path(host) -> str:
    """The local socket a `lonja serve` process announced."""
    return host.wait_for(LOCAL_LINE).split(LOCAL_LINE, 1)[1]


def test_calls_from_this_machine_go_through_the_local_socket(lonja, ns):
    host = lonja.start("serve", "echo", "--ns", ns)
    path = local_path(host)
    folder = Path(path).parent
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, "only this user may reach the socket"
    with connect("echo", ns=ns) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert echo.echo.future("f").result(timeout=10) == "f"
        assert uri(echo).startswith("PYRO:echo@127.0.0.1:"), "the proxy still names the host by its TCP address"
        assert host_stats(uri(echo))["local_connections"] >= 1
    host.stop(signal.SIGTERM)
    assert not folder.exists(), "a stopped host removes its socket and its folder"


@pytest.mark.parametrize("side", ["client", "service"])
def test_either_side_can_keep_calls_on_tcp(lonja, ns, monkeypatch, side):
    if side == "service":
        host = lonja.start("serve", "echo", "--ns", ns, env={"LONJA_SERVICE_LOCAL_SOCKET": "false"})
        assert LOCAL_LINE not in host.output()
    else:
        lonja.start("serve", "echo", "--ns", ns)
        monkeypatch.setenv("LONJA_CLIENT_LOCAL_SOCKET", "false")
    with connect("echo", ns=ns, settings=load_settings()) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert host_stats(uri(echo))["local_connections"] == 0


@pytest.mark.parametrize("damage", ["removed", "not a socket", "another user's"])
def test_a_broken_or_foreign_local_socket_leaves_calls_on_tcp(lonja, ns, damage):
    host = lonja.start("serve", "echo", "--ns", ns)
    path = local_path(host)
    if damage == "another user's":  # the client would show its token to whoever owns the socket
        if os.getuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(path, 65534, 65534)
    else:
        os.unlink(path)  # a cleaner of /tmp took it, or something else now sits at its path
    if damage == "not a socket":
        Path(path).write_text("")
    with connect("echo", ns=ns) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert host_stats(uri(echo))["local_connections"] == 0
        assert host_stats(uri(echo))["calls"] == CALLS


def test_a_host_restarted_on_its_port_is_called_through_its_new_socket(lonja, ns):
    first = lonja.start("serve", "echo", "--ns", ns)
    first_path = local_path(first)
    with connect("echo", ns=ns) as echo:
        echo.echo(1), echo.echo(2)
        address = uri(echo)
        port = address.rsplit(":", 1)[1]
        first.stop(signal.SIGTERM)
        second = lonja.start("serve", "echo", "--ns", ns, "--port", port)
        assert local_path(second) != first_path

        def answers() -> bool:
            try:
                return echo.echo(3) == 3
            except LonjaError:  # between the two hosts' registrations
                return False
        assert wait_until(answers, timeout=20)
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert host_stats(address)["local_connections"] >= 1


def test_the_local_socket_asks_for_the_same_token(lonja, ns):
    lonja.env.update({"LONJA_AUTH_SERVICE_TOKENS": "svc:servicesecret1", "LONJA_AUTH_READER_TOKENS": "me:readsecret1"})
    host = lonja.start("serve", "echo", "--ns", ns, env={"LONJA_AUTH_REQUIRE_TOKEN": "true"})
    path = local_path(host)
    with pytest.raises(Pyro5.errors.CommunicationError, match="requires a token"):
        with Pyro5.api.Proxy(f"PYRO:echo@./u:{path}") as plain:
            plain.echo(1)
    with connect("echo", ns=ns, settings=load_settings(environ={"LONJA_AUTH_TOKEN": "readsecret1"})) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert host_stats(uri(echo), token="readsecret1")["local_connections"] >= 1


def test_plain_pyro5_clients_keep_calling_over_tcp(lonja, ns):
    host = lonja.start("serve", "echo", "--ns", ns)
    local_path(host)
    with Pyro5.api.Proxy(f"PYRONAME:echo@{ns}") as plain:
        assert [plain.echo(i) for i in range(CALLS)] == list(range(CALLS))
    assert host_stats(host.wait_for("serving echo at").split(" at ", 1)[1])["local_connections"] == 0
