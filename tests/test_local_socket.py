"""A host's local socket: lonja clients on the same machine call through it after their first calls, stay on
TCP where it cannot be used (another network namespace, another user, switched off), and find it gone
once the host stops, however it stops."""

from __future__ import annotations

import os
import signal
import socket

import Pyro5.api
import Pyro5.errors
import pytest
from netns import Network, network_fixture  # noqa: F401 (a fixture)

from harness import PYTHON, ROOT, host_stats, wait_until
from lonja.clients import LonjaError, connect, uri
from lonja.clients.proxy import LOCAL_AFTER
from lonja.config import load_settings

CALLS = LOCAL_AFTER + 5  # enough for a client to move to the local socket
LOCAL_LINE = "lonja clients on this machine call it through "


def local_address(host) -> str:
    """The abstract socket a `lonja serve` process announced ("@name"), as `socket.connect` takes it."""
    shown = host.wait_for(LOCAL_LINE).split(LOCAL_LINE, 1)[1]
    assert shown.startswith("@lonja-")
    return "\0" + shown[1:]


def accepts(address: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(address)
        except OSError:
            return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_calls_from_this_machine_go_through_the_local_socket(lonja, ns, sig):
    host = lonja.start("serve", "echo", "--ns", ns)
    address = local_address(host)
    with connect("echo", ns=ns) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert echo.echo.future("f").result(timeout=10) == "f"
        assert uri(echo).startswith("PYRO:echo@127.0.0.1:"), "the proxy still names the host by its TCP address"
        assert host_stats(uri(echo))["local_connections"] >= 1
    assert accepts(address)
    host.send_signal(sig)
    host.proc.wait(10)
    assert not accepts(address), "a host that stopped, even by kill -9, leaves no socket behind"


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


def test_a_host_restarted_on_its_port_is_called_through_its_new_socket(lonja, ns):
    first = lonja.start("serve", "echo", "--ns", ns)
    first_address = local_address(first)
    with connect("echo", ns=ns) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        address = uri(echo)
        first.stop(signal.SIGTERM)
        second = lonja.start("serve", "echo", "--ns", ns, "--port", address.rsplit(":", 1)[1])
        assert local_address(second) != first_address

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
    address = local_address(host)
    with pytest.raises(Pyro5.errors.CommunicationError, match="requires a token"):
        with Pyro5.api.Proxy(f"PYRO:echo@./u:{address}") as plain:
            plain.echo(1)
    with connect("echo", ns=ns, settings=load_settings(environ={"LONJA_AUTH_TOKEN": "readsecret1"})) as echo:
        assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert host_stats(uri(echo), token="readsecret1")["local_connections"] >= 1


def test_plain_pyro5_clients_keep_calling_over_tcp(lonja, ns):
    host = lonja.start("serve", "echo", "--ns", ns)
    local_address(host)
    with Pyro5.api.Proxy(f"PYRONAME:echo@{ns}") as plain:
        assert [plain.echo(i) for i in range(CALLS)] == list(range(CALLS))
    assert host_stats(host.wait_for("serving echo at").split(" at ", 1)[1])["local_connections"] == 0


@pytest.mark.skipif(os.getuid() != 0, reason="running a host as another user needs root")
def test_a_host_of_another_user_is_called_over_tcp():
    """The client makes no call through a local socket whose process runs as another user (SO_PEERCRED)."""
    from lonja.services.builtin.echo import Echo
    from lonja.services.daemon import HostDaemon

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the host: a child that becomes user nobody, then serves
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            daemon = HostDaemon("127.0.0.1", 0, local_socket=True)
            served = daemon.register(Echo(), "echo")
            os.write(writer, f"{served}\n".encode())
            daemon.requestLoop()
        finally:
            os._exit(0)
    os.close(writer)
    try:
        with os.fdopen(reader) as lines:
            served = lines.readline().strip()
        with connect(served) as echo:
            assert [echo.echo(i) for i in range(CALLS)] == list(range(CALLS))
        assert wait_until(lambda: host_stats(served)["local_connections"] == 0)
        assert host_stats(served)["calls"] == CALLS
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_client_in_another_network_namespace_calls_over_tcp(network: Network):
    """An abstract socket belongs to its network namespace: a client on another (simulated) machine never
    reaches it, even though the machines here share one filesystem."""
    a, b, c = network.hosts[:3]
    a.start("ns", "--host", "0.0.0.0", ready="name server listening")
    service = b.start("serve", "echo", "--host", "0.0.0.0", "--ns", f"{a.address}:9090")
    served = service.wait_for("serving echo at ").split(" at ", 1)[1].strip()
    local_address(service)
    program = (f"from lonja.clients import connect\n"
               f"echo = connect('echo', ns='{a.address}:9090')\n"
               f"print(sum(echo.echo(i) for i in range({CALLS})))\n")
    result = c.exec(PYTHON, "-c", program)
    assert result.returncode == 0 and result.stdout.strip() == str(sum(range(CALLS))), result.stderr[-2000:]
    counters = b.exec(PYTHON, "-c", f"from harness import host_stats; print(host_stats('{served}'))",
                      env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])})
    assert "'local_connections': 0" in counters.stdout and "'calls': " in counters.stdout, counters.stderr[-2000:]
