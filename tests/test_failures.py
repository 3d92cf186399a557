"""Failures a client lives through: a service killed mid-call, restarted elsewhere, or not yet there."""

from __future__ import annotations

import signal
import textwrap
import time

import pytest

from harness import calls_started, wait_until
from lonja.clients import OutcomeUnknown, ServiceUnreachable, close, connect, uri

FLAKY = textwrap.dedent('''
    import time
    from lonja.services import idempotent, service

    @service("flaky")
    class Flaky:
        @idempotent
        def lookup(self, seconds: float) -> str:
            time.sleep(seconds)
            return "looked up"

        def charge(self, seconds: float) -> str:
            time.sleep(seconds)
            return "charged"
''')


def test_outcome_unknown_when_the_service_dies_mid_call(lonja, ns, echo):
    proxy = connect("echo", ns=ns)
    assert proxy.echo(1) == 1
    started = calls_started(uri(proxy))
    future = proxy.slow.future(30)
    assert wait_until(lambda: calls_started(uri(proxy)) > started)  # the request reached the service
    echo.stop(signal.SIGKILL)
    with pytest.raises(OutcomeUnknown, match="the call may or may not have run"):
        future.result(timeout=20)
    close(proxy)


def test_idempotent_call_is_resent_to_a_restarted_service(lonja, ns, tmp_path):
    (tmp_path / "flaky.py").write_text(FLAKY)
    first = lonja.start("serve", "flaky:Flaky", "--ns", ns)
    proxy = connect("flaky", ns=ns)
    assert proxy.lookup(0) == "looked up"
    started = calls_started(uri(proxy))

    charge = proxy.charge.future(30)
    lookup = proxy.lookup.options(retries=12).future(1.5)
    assert wait_until(lambda: calls_started(uri(proxy)) >= started + 2)  # both requests reached the service
    first.stop(signal.SIGKILL)
    lonja.start("serve", "flaky:Flaky", "--ns", ns)
    assert lookup.result(timeout=60) == "looked up", "an idempotent call is re-sent after the failure"
    with pytest.raises(OutcomeUnknown):
        charge.result(timeout=20)  # not idempotent: never re-sent
    close(proxy)


def test_service_restarted_on_a_new_port_is_found_again(lonja, ns):
    first = lonja.start("serve", "echo", "--ns", ns)  # each on a free port of its own (service.port = 0)
    proxy = connect("echo", ns=ns)
    old_uri = uri(proxy)
    assert proxy.pid() == first.pid
    assert first.stop(signal.SIGTERM) == 0
    second = lonja.start("serve", "echo", "--ns", ns)
    assert proxy.pid() == second.pid
    assert uri(proxy) != old_uri
    close(proxy)


def test_calls_wait_for_a_name_that_is_not_registered_yet(lonja, ns):
    server = lonja.start("serve", "echo", "--ns", ns, ready=None)  # not registered yet
    with connect("echo", ns=ns, retries=12) as proxy:
        assert proxy.pid() == server.pid


def test_retries_then_a_clear_error_when_the_service_stays_down(lonja, ns, echo):
    proxy = connect("echo", ns=ns)
    assert proxy.echo(1) == 1
    echo.stop(signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match="does not answer"):
        proxy.echo.options(retries=2)(1)
    assert time.monotonic() - started < 10
    close(proxy)
