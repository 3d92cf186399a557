"""`lonja serve`: custom services, registration, clean unregistering, and names already in use."""

from __future__ import annotations

import signal
import textwrap

import pytest

from lonja.clients import NameServerClient, connect, describe
from lonja.config import load_settings
from lonja.services import ServiceHost, service
from lonja.services.errors import ServiceLoadError
from lonja.services.host import load_target

GREETER = textwrap.dedent('''
    from lonja.services import service

    @service("greeter", metadata={"team:docs"})
    class Greeter:
        """Greets people."""

        def hello(self, name: str, punctuation: str = "!") -> str:
            """Say hello to `name`."""
            return f"hello {name}{punctuation}"
''')


@pytest.fixture
def greeter_module(tmp_path):
    (tmp_path / "greeting.py").write_text(GREETER)
    return "greeting:Greeter"


def test_custom_service_registers_with_metadata_and_unregisters_on_sigterm(lonja, ns, greeter_module):
    server = lonja.start("serve", greeter_module, "--ns", ns)
    assert "serving greeter at PYRO:greeter@127.0.0.1:" in server.output()
    with NameServerClient(ns) as names:
        uri, metadata = names.lookup("greeter")
        assert {"team:docs", "lonja:service", "class:greeting.Greeter"} <= metadata
        with connect("greeter", ns=ns) as greeter:
            assert greeter.hello("ana") == "hello ana!"
            assert describe(greeter)["methods"]["hello"]["signature"] == \
                "(name: str, punctuation: str = '!') -> str"
        assert server.stop(signal.SIGTERM) == 0
        assert "greeter" not in names.list()


def test_several_targets_and_name_override(lonja, ns, greeter_module):
    lonja.start("serve", greeter_module, "echo", "--ns", ns)
    lonja.start("serve", greeter_module, "--name", "greeter2", "--ns", ns)
    with NameServerClient(ns) as names:
        assert {"greeter", "echo", "greeter2"} <= set(names.list())
        greeter_uri = names.lookup("greeter")[0]
        echo_uri = names.lookup("echo")[0]
    assert greeter_uri.split("@")[1] == echo_uri.split("@")[1], "one daemon hosts both"


def test_a_plain_class_without_service_is_served_under_its_name(lonja, ns, tmp_path):
    (tmp_path / "plain.py").write_text(textwrap.dedent('''
        class Greeter:
            def hello(self, name):
                return f"hello {name}"

            def _private(self):
                return "hidden"
    '''))
    lonja.start("serve", "plain:Greeter", "--name", "plain", "--ns", ns)
    assert lonja.run("call", "plain.hello", "ana", "--ns", ns).stdout == "'hello ana'\n"
    with connect("plain", ns=ns) as plain:
        assert set(describe(plain)["methods"]) == {"hello"}


def test_other_class_under_a_live_name_is_refused_a_dead_name_is_taken_over(lonja, ns, greeter_module):
    first = lonja.start("serve", "echo", "--ns", ns)
    refused = lonja.run("serve", greeter_module, "--name", "echo", "--ns", ns)
    assert refused.returncode == 4
    assert "the name 'echo' is already served by PYRO:echo@127.0.0.1:" in refused.stderr
    assert "Traceback" not in refused.stderr
    first.stop(signal.SIGKILL)
    taker = lonja.start("serve", greeter_module, "--name", "echo", "--ns", ns)
    with connect("echo", ns=ns) as proxy:
        assert proxy.hello("x") == "hello x!"
    assert taker.proc.poll() is None


def test_same_class_joins_as_another_instance(lonja, ns):
    first = lonja.start("serve", "echo", "--ns", ns)
    second = lonja.start("serve", "echo", "--ns", ns)
    with NameServerClient(ns) as names:
        instances = names.entries("echo")["echo"]["instances"]
    assert len(instances) == 2 and {i["status"] for i in instances} == {"serving"}
    with connect("echo", ns=ns) as proxy:
        assert {proxy.pid() for _ in range(10)} == {first.pid, second.pid}


def test_bad_targets_exit_2(lonja, ns):
    for target, expected in [("nosuchmodule:X", "cannot import module 'nosuchmodule'"),
                             ("json:Nope", "module 'json' has no attribute 'Nope'"),
                             ("justaword", "expected package.module:Class or a built-in service (echo)"),
                             ("json:JSONDecodeError", "has no service name")]:
        result = lonja.run("serve", target, "--ns", ns)
        assert result.returncode == 2, (target, result.stderr)
        assert expected in result.stderr, (target, result.stderr)
        assert "Traceback" not in result.stderr


def test_serve_without_name_server_exit_3(lonja):
    from harness import free_port
    result = lonja.run("serve", "echo", "--ns", f"127.0.0.1:{free_port()}")
    assert result.returncode == 3 and "no name server answers" in result.stderr


def test_in_process_host_for_tests(ns):
    @service("inproc.counter")
    class Counter:
        def __init__(self) -> None:
            self.value = 0

        def add(self, amount: int = 1) -> int:
            self.value += amount
            return self.value

    with ServiceHost(load_settings(environ={}), ns=ns) as host:
        host.add(Counter)
        with connect("inproc.counter", ns=ns) as counter:
            assert counter.add(2) == 2
            assert counter.add() == 3
        with pytest.raises(ServiceLoadError, match="two services on this host want the name"):
            host.add(Counter)
    with NameServerClient(ns) as names:
        assert "inproc.counter" not in names.list()


def test_service_decorator_validates():
    with pytest.raises(ValueError, match="invalid service name"):
        service("has space")
    with pytest.raises(TypeError, match="collection of tags"):
        service("x", metadata="one-string")
    with pytest.raises(ServiceLoadError):
        load_target("not-a-target")


def test_repeated_signals_do_not_cut_the_clean_up_short(lonja, ns):
    server = lonja.start("serve", "echo", "--ns", ns)
    server.send_signal(signal.SIGINT)
    server.send_signal(signal.SIGINT)
    server.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    with NameServerClient(ns) as names:
        assert "echo" not in names.list()
