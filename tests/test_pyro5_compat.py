"""Plain Pyro5 clients and tools work against lonja's name server and services, unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import free_port
from lonja.clients import NameServerClient, ServiceUnreachable, connect

PLAIN_CLIENT = textwrap.dedent('''
    import sys
    import Pyro5.api
    host, port = sys.argv[1], int(sys.argv[2])
    ns = Pyro5.api.locate_ns(host, port)
    print("names", sorted(ns.list()))
    with Pyro5.api.Proxy(f"PYRONAME:echo@{host}:{port}") as echo:
        print("echo", echo.echo([1, "two"]))
        try:
            echo.fail("plain")
        except Exception as exc:
            print("error", type(exc).__name__, exc, exc.lonja_remote_type)
            print("traceback", "raise EchoError" in "".join(exc._pyroTraceback))
''')


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}


def _plain_client(script: str, ns: str) -> list[str]:
    """The lines a plain Pyro5 client script (no lonja, no LONJA_*/PYRO_* settings) prints for `ns`."""
    host, port = ns.split(":")
    result = subprocess.run([sys.executable, "-c", script, host, port], capture_output=True, text=True,
                            timeout=30, env=_plain_env())
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_plain_pyro5_client_resolves_pyroname_and_calls(lonja, ns, echo):
    lines = _plain_client(PLAIN_CLIENT, ns)
    assert lines[0] == "names ['Pyro.NameServer', 'echo']"
    assert lines[1] == "echo [1, 'two']"
    assert lines[2] == "error Exception plain lonja.services.builtin.echo.EchoError"
    assert lines[3] == "traceback True"


SERPENT_VALUES = textwrap.dedent('''
    import math, sys
    import Pyro5.api, Pyro5.errors
    host, port = sys.argv[1], int(sys.argv[2])
    values = [None, True, -0.0, 1e300, -1e30000, 2 ** 100, "plain", "it's", 'say "hi"', "tab\\tnew\\nline", "héllo ☃",
              ("a", 1, (2.5, [None, {"k": {1, 2}}])), {"nested": {"deep": [()]}, 3: "int key", (1, "t"): []},
              b"\\x00bytes", {"__class__": "not.a.Class"}, Pyro5.api.URI("PYRO:obj@127.0.0.1:9")]
    with Pyro5.api.Proxy(f"PYRONAME:echo@{host}:{port}") as echo:
        echo._pyroSerializer = "serpent"
        for value in values:
            try:
                back = echo.echo(value)
            except Pyro5.errors.PyroError as exc:
                back = f"error {type(exc).__name__}"
            if isinstance(value, bytes):
                value = {"data": "AGJ5dGVz", "encoding": "base64"}  # serpent sends bytes as base64
            elif isinstance(value, dict) and "__class__" in value:
                value = "error SerializeError"  # an unknown class is refused, as Pyro5's own server does
            print(repr(value) if back == value and type(back) is type(value) else f"DIFFERS {value!r} {back!r}")
        print("nan", math.isnan(echo.echo(float("nan"))))
''')


def test_plain_pyro5_serpent_values_through_a_lonja_host(lonja, ns, echo):
    """lonja reads serpent with its own fast reader where it can: a plain client gets back what it sent."""
    lines = _plain_client(SERPENT_VALUES, ns)
    assert [line for line in lines if line.startswith("DIFFERS")] == []
    assert len(lines) == 17 and lines[-1] == "nan True"


def test_pyro5_nsc_list_and_lookup(lonja, ns, echo):
    host, port = ns.split(":")
    nsc = Path(sys.executable).with_name("pyro5-nsc")
    command = [str(nsc)] if nsc.exists() else [sys.executable, "-m", "Pyro5.nsc"]
    listing = subprocess.run([*command, "-n", host, "-p", port, "list"], capture_output=True, text=True,
                             timeout=30, env=_plain_env())
    assert listing.returncode == 0, listing.stderr
    assert "echo --> PYRO:echo@127.0.0.1:" in listing.stdout
    lookup = subprocess.run([*command, "-n", host, "-p", port, "lookup", "echo"], capture_output=True,
                            text=True, timeout=30, env=_plain_env())
    assert "PYRO:echo@127.0.0.1:" in lookup.stdout


def test_sqlite_registrations_survive_a_name_server_restart(lonja):
    storage = f"sqlite:{lonja.tmp_path / 'names.sqlite'}"
    server, ns = lonja.nameserver(storage=storage)
    with NameServerClient(ns) as names:
        names.register("kept.one", "PYRO:obj@127.0.0.1:1", {"a"})
        names.register("Kept.two", "PYRO:obj@127.0.0.1:2")
    assert server.stop(signal.SIGTERM) == 0
    port = int(ns.split(":")[1])
    lonja.nameserver(storage=storage, port=port)
    with NameServerClient(ns) as names:
        assert names.list("kept.") == {"kept.one": ("PYRO:obj@127.0.0.1:1", frozenset({"a"}))}
        assert "Kept.two" in names.list()


def test_serialized_blob_reaches_a_lonja_host_intact(ns):
    """Pyro5's SerializedBlob (a marshal-encoded annotation plus an opaque payload) passes a lonja host."""
    import Pyro5.api
    from Pyro5.client import SerializedBlob

    from lonja.config import load_settings
    from lonja.services import ServiceHost, service

    @service("blobs")
    class Blobs:
        def take(self, blob: SerializedBlob) -> list:
            return [blob.info, blob.deserialized()]

    with ServiceHost(load_settings(environ={}), ns=ns) as host:
        hosted = host.add(Blobs)
        with Pyro5.api.Proxy(hosted.uri) as plain:
            plain._pyroSerializer = "serpent"
            assert plain.take(SerializedBlob("some info", {"x": [1, 2]})) == ["some info", {"x": [1, 2]}]


# -- lonja clients against Pyro5's own name server ------------------------------------------------------

PYRO5_NAME_SERVER = textwrap.dedent('''
    import sys
    if sys.argv[2] == "without-msgpack":
        sys.modules["msgpack"] = None  # Pyro5 installed on its own: serpent, json and marshal only
    import Pyro5.nameserver
    Pyro5.nameserver.main(["-n", "127.0.0.1", "-p", sys.argv[1]])
''')

PYRO5_SERVER = textwrap.dedent('''
    import sys
    if sys.argv[2] == "without-msgpack":
        sys.modules["msgpack"] = None
    import Pyro5.api

    @Pyro5.api.expose
    class Greeter:
        def hello(self, who):
            return f"hello {who}"

    daemon = Pyro5.api.Daemon(host="127.0.0.1")
    Pyro5.api.locate_ns("127.0.0.1", int(sys.argv[1])).register("plain.greeter", daemon.register(Greeter()))
    print("serving", flush=True)
    daemon.requestLoop()
''')


@pytest.mark.parametrize("kind", ["with-msgpack", "without-msgpack"])
def test_lonja_clients_use_pyro5s_own_name_server(lonja, kind):
    port = free_port()
    processes = []
    try:
        for script, args, ready in ((PYRO5_NAME_SERVER, [str(port), kind], "NS running"),
                                    (PYRO5_SERVER, [str(port), kind], "serving")):
            process = subprocess.Popen([sys.executable, "-c", script, *args], env=_plain_env(), text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            processes.append(process)
            lines = []
            for line in process.stdout:
                lines.append(line)
                if ready in line:
                    break
            assert ready in "".join(lines), "".join(lines)
        ns = f"127.0.0.1:{port}"
        with connect("plain.greeter", ns=ns) as greeter:  # lonja's default msgpack, or serpent if dropped
            assert greeter.hello("lonja") == "hello lonja"
        if kind == "without-msgpack":  # msgpack asked for by name is never swapped for another serializer
            with connect("plain.greeter", ns=ns, serializer="msgpack", retries=0) as greeter, \
                    pytest.raises(ServiceUnreachable):
                greeter.hello("lonja")
        with NameServerClient(ns) as client:
            assert set(client.list()) == {"Pyro.NameServer", "plain.greeter"}
            assert not client.is_lonja()
        listed = lonja.run("ls", "--ns", ns)
        assert listed.returncode == 0 and "plain.greeter" in listed.stdout, listed.stderr
        called = lonja.run("call", "plain.greeter.hello", "you", "--ns", ns)
        assert (called.returncode, called.stdout.strip()) == (0, "'hello you'"), called.stderr
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(10)
