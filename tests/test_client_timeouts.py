"""No call waits forever: calls have a deadline by default, and an instance that stops answering stops
getting new calls while healthy instances are there."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import wait_until
from lonja.clients import CallTimeout, LonjaError, NameServerClient, close, connect
from lonja.clients.health import InstanceHealth
from lonja.config import load_settings

# -- the default deadline and per-call options ------------------------------------------------------------

def test_calls_have_a_30_second_deadline_by_default():
    assert load_settings()["client.timeout"] == 30.0


def test_the_timeout_setting_applies_and_0_means_no_limit(monkeypatch, ns, echo):
    monkeypatch.setenv("LONJA_CLIENT_TIMEOUT", "0.3")
    with connect("echo", ns=ns, settings=load_settings()) as proxy:  # as read now, not at the first connect
        with pytest.raises(CallTimeout, match=r"did not answer within 0\.3 s"):
            proxy.slow(5)
    monkeypatch.setenv("LONJA_CLIENT_TIMEOUT", "0")
    with connect("echo", ns=ns, settings=load_settings()) as proxy:
        assert proxy.slow(0.5, value="no limit") == "no limit"


def test_per_call_timeout_none_or_0_means_no_limit(ns, echo):
    with connect("echo", ns=ns, timeout=0.3) as proxy:
        with pytest.raises(CallTimeout):
            proxy.slow(5)
        assert proxy.slow.options(timeout=None)(0.5, value="none") == "none"
        assert proxy.slow.options(timeout=0)(0.5, value="zero") == "zero"
        assert proxy.slow.options(retries=1)(0.01, value="kept") == "kept"
        with pytest.raises(CallTimeout):
            proxy.slow.options(retries=1)(5)  # leaving timeout out keeps the proxy's 0.3 s
    with pytest.raises(ValueError, match="a timeout must be positive"):
        connect("echo", ns=ns).slow.options(timeout=-1)


def test_cli_timeout_0_means_no_limit_and_negative_is_a_usage_error(lonja, ns, echo):
    result = lonja.run("call", "echo.slow", "0.5", "value=done", "--timeout", "0", "--ns", ns)
    assert (result.returncode, result.stdout) == (0, "'done'\n"), result.stderr
    result = lonja.run("call", "echo.slow", "0", "--timeout", "-1", "--ns", ns)
    assert result.returncode == 2 and "--timeout must be seconds" in result.stderr


# -- choosing an instance ------------------------------------------------------------------------------------

def _never_answers(uri: str) -> None:
    raise ConnectionError(f"{uri} does not answer")


def test_calls_go_to_the_instance_with_fewest_calls_in_flight():
    health = InstanceHealth()
    calls = [("a", health.started("a")), ("a", health.started("a")), ("b", health.started("b"))]
    assert {health.choose(["a", "b", "c"], _never_answers) for _ in range(6)} == {"c"}
    for uri, call in calls:
        health.ended(uri, call)
    assert {health.choose(["a", "b", "c"], _never_answers) for _ in range(6)} == {"a", "b", "c"}


def test_an_instance_that_timed_out_is_skipped_until_a_ping_answers():
    health = InstanceHealth(suspect_after=0.05)
    health.timed_out("a")
    assert {health.choose(["a", "b"], _never_answers) for _ in range(6)} == {"b"}
    assert health.suspect("a"), "a failed ping keeps it suspect"

    pinged = threading.Event()

    def answers(uri: str) -> None:
        pinged.set()

    assert wait_until(lambda: health.choose(["a", "b"], answers) and pinged.is_set())
    assert wait_until(lambda: not health.suspect("a"))
    assert "a" in {health.choose(["a", "b"], answers) for _ in range(6)}


def test_a_silent_call_makes_its_instance_suspect_until_it_answers():
    health = InstanceHealth(suspect_after=0.05)
    health.started("a")
    assert wait_until(lambda: health.suspect("a"))
    assert {health.choose(["a", "b"], _never_answers) for _ in range(6)} == {"b"}
    health.answered("a")
    assert not health.suspect("a")


def test_when_every_instance_is_suspect_calls_still_go_to_them():
    health = InstanceHealth()
    health.timed_out("a")
    health.timed_out("b")
    assert health.choose(["a", "b"], _never_answers) in {"a", "b"}


# -- the regression: one stopped instance of three ------------------------------------------------------------

def _timed_call(call) -> tuple[object, float]:
    """(result or the LonjaError raised, seconds taken)."""
    started = time.monotonic()
    try:
        outcome = call()
    except LonjaError as exc:
        outcome = exc
    return outcome, time.monotonic() - started


def test_a_stopped_instance_of_three_stops_getting_calls(lonja, ns):
    hosts = [lonja.start("serve", "echo", "--ns", ns) for _ in range(3)]
    with NameServerClient(ns) as names:
        assert wait_until(lambda: len(names.instances("echo")) == 3)
    stopped, healthy = hosts[0], {host.pid for host in hosts[1:]}
    timeout = 20.0
    proxy = connect("echo", ns=ns, timeout=timeout)
    seen: set[int] = set()

    def every_instance_answered() -> bool:
        seen.add(proxy.pid())  # and leaves a pooled connection to it
        return len(seen) == 3

    assert wait_until(every_instance_answered)

    stopped.send_signal(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            futures = [pool.submit(_timed_call, proxy.pid) for _ in range(30)]
            outcomes = [future.result(timeout=4 * timeout) for future in futures]  # no call hangs
        with connect("echo", ns=ns, timeout=timeout) as other:  # shares what this process knows of instances
            fresh = [_timed_call(other.pid) for _ in range(5)]
        cli = [lonja.run("call", "echo.pid", "--timeout", str(timeout), "--ns", ns, timeout=4 * timeout)
               for _ in range(3)]
    finally:
        stopped.send_signal(signal.SIGCONT)
        close(proxy)
    failed = [outcome for outcome, _ in outcomes if not isinstance(outcome, int)]
    assert len(failed) <= 2, f"more than the calls in flight got stuck: {failed}"
    assert all(isinstance(outcome, CallTimeout) for outcome in failed), failed
    answered = [(outcome, seconds) for outcome, seconds in outcomes if isinstance(outcome, int)]
    assert {pid for pid, _ in answered} <= healthy
    assert all(seconds < timeout / 2 for _, seconds in answered), "a call waited for the stopped instance"
    assert all(isinstance(pid, int) and pid in healthy and seconds < timeout / 2 for pid, seconds in fresh), fresh
    for result in cli:
        assert result.returncode == 0 and int(result.stdout) in healthy, result.stderr
    for host in hosts:
        host.stop()
