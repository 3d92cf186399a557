"""A proxy's attribute namespace belongs to the service: `proxy.ping` is the service's `ping`, and lonja's
own operations on a proxy are functions of `lonja.clients` (describe, ping, uri, instances, batch, close)."""

from __future__ import annotations

import asyncio
import os

import pytest

from harness import ROOT
from lonja import clients
from lonja.clients import UsageError, connect
from services_for_tests import PROXY_NAMES


@pytest.fixture
def names_service(lonja, ns) -> str:
    """The `names` test service, served by `lonja serve services_for_tests:Names`; returns the ns address."""
    pythonpath = os.pathsep.join([str(ROOT / "tests"), lonja.env["PYTHONPATH"]])
    lonja.start("serve", "services_for_tests:Names", "--ns", ns, env={"PYTHONPATH": pythonpath})
    return ns


def test_every_proxy_name_reaches_the_remote_method(names_service):
    with connect("names", ns=names_service) as proxy:
        for name in PROXY_NAMES:
            assert getattr(proxy, name)(name.upper()) == [name, name.upper()]
        assert proxy.ping() == ["ping", None]
        assert proxy.close(1) == ["close", 1]
        assert proxy.uri() == ["uri", None]
        assert set(PROXY_NAMES) <= set(dir(proxy))
        assert proxy.describe() == ["describe", None]


def test_call_modes_work_on_remote_methods_with_those_names(names_service):
    with connect("names", ns=names_service) as proxy:
        assert proxy.oneway.future(2).result(timeout=20) == ["oneway", 2]
        assert proxy.future.options(timeout=10)(3) == ["future", 3]
        assert proxy.options.options(retries=0)(4) == ["options", 4]
        assert proxy.aio.future(5).result(timeout=20) == ["aio", 5]
        assert asyncio.run(proxy.close.aio(6)) == ["close", 6]
        assert proxy.ping.oneway() is None


def test_lonja_operations_are_functions_of_the_proxy(names_service):
    with connect("names", ns=names_service) as proxy:
        assert set(PROXY_NAMES) <= set(clients.describe(proxy)["methods"])
        assert clients.ping(proxy) >= 0
        assert clients.uri(proxy).startswith("PYRO:names@127.0.0.1:")
        assert clients.instances(proxy) == [clients.uri(proxy)]
        with clients.batch(proxy) as calls:
            calls.ping(1)
            calls.close(2)
            calls.batch(3)
        assert calls.results() == [["ping", 1], ["close", 2], ["batch", 3]]
    with pytest.raises(TypeError, match="expected a proxy from connect"):
        clients.describe("names")


def test_a_closed_proxy_refuses_calls_clearly(names_service):
    proxy = connect("names", ns=names_service)
    assert proxy.ping(1) == ["ping", 1]
    clients.close(proxy)
    for use in (lambda: proxy.ping(1), lambda: proxy.close.future().result(timeout=20),
                lambda: clients.ping(proxy), lambda: clients.describe(proxy)):
        with pytest.raises(UsageError, match="this proxy for 'names' is closed"):
            use()
    with connect("names", ns=names_service) as fresh:
        assert fresh.instances() == ["instances", None]
    with pytest.raises(UsageError, match="is closed"):
        fresh.instances()


def test_a_proxy_closed_before_its_first_call_refuses_it(names_service):
    proxy = connect("names", ns=names_service)
    clients.close(proxy)
    with pytest.raises(UsageError, match="is closed"):
        proxy.ping()


def test_cli_calls_reach_every_remote_name(lonja, names_service):
    for name in PROXY_NAMES:
        result = lonja.run("call", f"names.{name}", "7", "--ns", names_service)
        assert (result.returncode, result.stdout) == (0, f"[{name!r}, 7]\n"), (name, result.stderr)
    shown = lonja.run("show", "names", "--ns", names_service)
    assert shown.returncode == 0, shown.stderr
    for name in PROXY_NAMES:
        assert f"  {name}(value: Any = None) -> list" in shown.stdout
    ping = lonja.run("ping", "names", "--ns", names_service)
    assert ping.returncode == 0 and "names at PYRO:names@127.0.0.1:" in ping.stdout, ping.stderr
