"""Callbacks (issue 10 §2): a client passes a local object (`share(obj)`, or an instance of a `@remote`
class) and the service calls it back, plainly and oneway, during the call and afterwards.

Every test runs a real name server and `lonja serve sharing_service:News` (tests/sharing_service.py) on
127.0.0.1; clients that die or hang are separate processes (tests/reference_holder.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from harness import PYTHON, ROOT, clean_env, wait_until
from lonja.clients import connect, remote, share
from lonja.config.sharing import running_callback_endpoint, stop_callback_endpoint

TESTS_PATH = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])


@pytest.fixture
def news(lonja, ns) -> str:
    """The news service in its own process; returns the name server's address."""
    lonja.start("serve", "sharing_service:News", "sharing_service:Carts", "--ns", ns,
                env={"PYTHONPATH": TESTS_PATH, "LONJA_REFERENCES_LEASE": "2"})
    return ns


class Listener:
    """A progress listener and subscriber of the client's."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.ticks: list[int] = []
        self.messages: list[str] = []
        self.threads: set[str] = set()

    def progress(self, step: int) -> int:
        self.steps.append(step)
        self.threads.add(threading.current_thread().name)
        return step * 10

    def tick(self, step: int) -> None:
        self.ticks.append(step)

    def deliver(self, message: str) -> None:
        self.messages.append(message)


def start_holder(tmp_path, ns: str, *args: str) -> subprocess.Popen:
    holder = subprocess.Popen([PYTHON, str(ROOT / "tests" / "reference_holder.py"), ns, "news", *args],
                              env=clean_env(tmp_path, PYTHONPATH=TESTS_PATH), stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "subscribed"
    return holder


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_the_service_calls_a_listener_back_during_the_call_plainly_and_oneway(news):
    listener = Listener()
    with connect("news", ns=news) as service:
        assert service.work(3, share(listener)) == 0 + 10 + 20
        assert listener.steps == [0, 1, 2]
        assert threading.current_thread().name not in listener.threads  # served beside the waiting call
        assert wait_until(lambda: sorted(listener.ticks) == [0, 1, 2])


def test_a_callback_may_call_the_service_again(news):
    class Nested(Listener):
        def progress(self, step: int) -> int:
            return service.count() + step   # a call of the client's own, while the service waits on this one

    with connect("news", ns=news) as service:
        assert service.twice(5, share(Nested())) == 10


def test_instances_of_a_remote_class_go_by_reference(news):
    @remote
    class Counter:
        def __init__(self) -> None:
            self.seen = 0

        def progress(self, step: int) -> int:
            self.seen += 1
            return step

        def tick(self, step: int) -> None:
            pass

    counter = Counter()
    with connect("news", ns=news) as service:
        assert service.work(4, counter) == 0 + 1 + 2 + 3
        assert counter.seen == 4


def test_a_subscription_lasts_until_cancelled_and_then_is_released(news):
    listener = Listener()
    with connect("news", ns=news) as service:
        assert service.subscribe(share(listener)) == 1
        assert service.publish("first")["delivered"] == 1
        assert service.publish("second")["delivered"] == 1
        assert listener.messages == ["first", "second"]
        endpoint = running_callback_endpoint()
        assert endpoint is not None and listener in endpoint.shared
        assert service.unsubscribe(share(listener)) == 0
        assert service.publish("third")["delivered"] == 0
        assert listener.messages == ["first", "second"]
        assert wait_until(lambda: listener not in endpoint.shared, timeout=30)  # the service let go of it


def test_async_callbacks_run_on_the_clients_event_loop(news):
    class AsyncListener:
        def __init__(self) -> None:
            self.loops: list[asyncio.AbstractEventLoop] = []

        async def progress(self, step: int) -> int:
            self.loops.append(asyncio.get_running_loop())
            await asyncio.sleep(0.01)
            return step + 1

    async def main() -> tuple[int, bool]:
        listener = AsyncListener()
        with connect("news", ns=news) as service:
            result = await service.twice.aio(5, share(listener))
        return result, listener.loops == [asyncio.get_running_loop()]

    assert asyncio.run(main()) == (12, True)


def test_a_dead_subscriber_is_dropped_and_the_others_are_still_served(news, tmp_path):
    listener = Listener()
    holder = start_holder(tmp_path, news)
    try:
        with connect("news", ns=news) as service:
            service.subscribe(share(listener))
            assert service.count() == 2
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(10)
            outcome = service.publish("after the crash")
            assert outcome == {"delivered": 1, "unreachable": 1, "timed_out": 0, "subscribers": 1}
            assert listener.messages == ["after the crash"]
    finally:
        stop(holder)


def test_a_hung_subscriber_times_out_while_the_service_serves_everyone_else(news, tmp_path):
    holder = start_holder(tmp_path, news, "hang")
    try:
        with connect("news", ns=news) as service:
            publishing = service.publish.future("into the void", timeout=1.0)
            assert service.count() == 1             # answered while publish waits on the hung client
            assert publishing.result(timeout=60) == {"delivered": 0, "unreachable": 0, "timed_out": 1,
                                                     "subscribers": 0}
    finally:
        stop(holder)


def test_the_callback_endpoint_starts_on_first_need_on_loopback_and_stops_at_exit(news, tmp_path):
    script = """if True:
        import sys
        from lonja.clients import connect, share
        from lonja.config.sharing import running_callback_endpoint, stop_callback_endpoint

        class Listener:
            def progress(self, step): return step
            def tick(self, step): pass

        with connect("news", ns=sys.argv[1]) as service:
            service.count()
            print(running_callback_endpoint() is None)
            service.work(2, share(Listener()))
            print(running_callback_endpoint().location)
    """
    done = subprocess.run([sys.executable, "-c", script, news], env=clean_env(tmp_path, PYTHONPATH=TESTS_PATH),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr   # a quiet exit, endpoint and all
    before, location = done.stdout.split()
    assert before == "True"                        # no endpoint until an object was passed
    assert location.rsplit(":", 1)[0] == "127.0.0.1"


def test_a_stopped_endpoint_refuses_and_the_next_callback_starts_another(news):
    listener = Listener()
    with connect("news", ns=news) as service:
        service.work(1, share(listener))
        endpoint = running_callback_endpoint()
        assert endpoint is not None
        host, port = endpoint.location.rsplit(":", 1)
        stop_callback_endpoint()                   # what happens at exit
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect((host, int(port)))
        assert service.work(2, share(listener)) == 10
        assert running_callback_endpoint() not in (None, endpoint)


def test_a_callback_that_raises_fails_the_call_with_its_error(news):
    class Failing(Listener):
        def progress(self, step: int) -> int:
            raise ValueError(f"no progress at step {step}")

    with connect("news", ns=news) as service:
        with pytest.raises(ValueError, match="no progress at step 0"):
            service.work(2, share(Failing()))
        assert service.count() == 0                 # the service goes on serving
