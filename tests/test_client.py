"""The Python client against real name server and service processes."""

from __future__ import annotations

import signal
import time

import pytest

from harness import free_port
from lonja import clients
from lonja.clients import (
    LonjaError,
    NameNotFound,
    NameServerClient,
    NameServerUnreachable,
    RemoteError,
    ServiceUnreachable,
    close,
    connect,
    uri,
)
from lonja.config import load_settings


def test_plain_calls_attributes_and_streams(ns, echo):
    with connect("echo", ns=ns) as proxy:
        assert proxy.echo({"k": [1, 2]}) == {"k": [1, 2]}
        assert proxy.slow(0, value="v") == "v"
        assert list(proxy.count(4)) == [0, 1, 2, 3]
        assert proxy.wait(0.01, value=7) == 7
        assert isinstance(proxy.notified, int)
        assert {"echo", "slow", "fail", "notify", "count", "notified"} <= set(dir(proxy))
        assert uri(proxy).startswith("PYRO:echo@127.0.0.1:")


def test_pyroname_and_pyro_uris(ns, echo):
    with connect(f"PYRONAME:echo@{ns}") as by_name:
        location = uri(by_name)
        assert by_name.echo(1) == 1
    with connect(location) as direct:
        assert direct.echo(2) == 2


def test_service_exception_carries_type_message_and_traceback(ns, echo):
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(RemoteError) as error:
            proxy.fail("no stock")
    assert error.value.remote_type == "lonja.services.builtin.echo.EchoError"
    assert error.value.message == "no stock"
    assert "raise EchoError(message)" in error.value.remote_traceback
    assert isinstance(error.value, LonjaError)


def test_builtin_exception_is_both_remote_error_and_the_builtin(ns, echo):
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(TypeError) as error:
            proxy.slow("not a number")
    assert isinstance(error.value, RemoteError)
    assert error.value.remote_type == "TypeError"
    assert "time.sleep(seconds)" in error.value.remote_traceback


def test_unknown_name_and_unknown_method(ns, echo):
    with pytest.raises(NameNotFound, match="no service is registered as 'nope'"):
        connect("nope", ns=ns).anything()
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(AttributeError, match="has no remote method or attribute 'nope'"):
            _ = proxy.nope


def test_name_server_unreachable_is_fast_and_clear():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(NameServerUnreachable, match=f"no name server answers at 127.0.0.1:{port}"):
        connect("echo", ns=f"127.0.0.1:{port}").echo(1)
    assert time.monotonic() - started < 2.0


def test_killed_service_is_unreachable(ns, echo):
    proxy = connect("echo", ns=ns)
    assert proxy.echo(1) == 1
    echo.stop(signal.SIGKILL)
    with pytest.raises(ServiceUnreachable, match="does not answer"):
        proxy.echo(1)
    close(proxy)


def test_ns_defaults_come_from_lonja_ns(monkeypatch, ns, echo):
    monkeypatch.setenv("LONJA_NS", ns)
    with connect("echo", settings=load_settings()) as proxy:  # settings as read now, not at the first connect
        assert proxy.echo("env") == "env"


def test_name_server_client(ns, echo):
    with NameServerClient(ns) as names:
        assert names.ping() >= 0
        assert names.lookup("echo")[0].startswith("PYRO:echo@")
        names.register("test.thing", "PYRO:obj@127.0.0.1:1", {"tag"})
        assert names.list("test.") == {"test.thing": ("PYRO:obj@127.0.0.1:1", frozenset({"tag"}))}
        assert names.remove("test.thing") == 1
        with pytest.raises(NameNotFound):
            names.lookup("test.thing")


def test_public_surface():
    for name in ("connect", "LonjaError", "NameServerUnreachable", "NameNotFound", "ServiceUnreachable",
                 "RemoteError", "OutcomeUnknown", "wait", "as_completed"):
        assert hasattr(clients, name)
    assert issubclass(clients.OutcomeUnknown, ServiceUnreachable)
    with pytest.raises(ValueError):
        connect("")
