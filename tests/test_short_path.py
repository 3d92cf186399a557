"""The short path of one call: `lonja call NAME.METHOD` asks the name server once and connects to the
service once, starts no thread, and imports only what it needs; a program using the client library reads
its settings once per process and gets lonja's Pyro5 settings on its first connect().

The counts come from child processes that record what they do: TCP connects (an audit hook), Pyro5
requests (a wrapper around `Proxy._pyroInvoke`), the threads alive at the end, and the modules loaded.
"""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from Pyro5.api import Proxy
from Pyro5.core import DAEMON_NAME

from harness import PYTHON
from lonja.clients import CallTimeout, NameServerClient, close, connect
from lonja.config import load_settings

RECORDER = """
import collections, json, sys, threading

connects = collections.Counter()
def audit(event, args):
    if event == "socket.connect":
        connects["%s:%s" % args[1][:2]] += 1
sys.addaudithook(audit)

import Pyro5.client
requests = collections.Counter()
invoke = Pyro5.client.Proxy._pyroInvoke
def counted(self, method, *args, **kwargs):
    requests[kwargs["objectId"] + "." + method if kwargs.get("objectId") else method] += 1
    return invoke(self, method, *args, **kwargs)
Pyro5.client.Proxy._pyroInvoke = counted

def report(**extra):
    print(json.dumps({"connects": dict(connects), "requests": dict(requests),
                      "threads": threading.active_count(), "modules": sorted(sys.modules), **extra}),
          file=sys.stderr)
"""


def _recorded(lonja, script: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run RECORDER + `script` in a child process; its result and what it recorded."""
    result = subprocess.run([PYTHON, "-c", RECORDER + script], capture_output=True, text=True, timeout=60,
                            env=lonja.env, cwd=lonja.tmp_path, stdin=subprocess.DEVNULL)
    assert result.stderr.strip(), result.stdout
    return result, json.loads(result.stderr.strip().splitlines()[-1])


def _command(lonja, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `lonja ARGS` in a recording child process (as `python -m lonja` would)."""
    return _recorded(lonja, f"""
from lonja.cli import main
try:
    code = main({list(args)!r})
finally:
    report()
sys.exit(code)
""")


def _host_requests(ns: str) -> int:
    """Calls the echo host has served, as its daemon object counts them (not its own `stats` requests)."""
    with NameServerClient(ns) as names:
        location = names.lookup("echo")[0].split("@", 1)[1]
    with Proxy(f"PYRO:{DAEMON_NAME}@{location}") as daemon:
        return daemon.stats()["calls"]


def test_call_connects_once_to_the_name_server_and_once_to_the_service(lonja, ns, echo):
    served_before = _host_requests(ns)
    result, record = _command(lonja, "call", "echo.echo", "hi", "--ns", ns)
    assert (result.returncode, result.stdout) == (0, "'hi'\n"), result.stderr

    ns_port = ns.split(":")[1]
    ns_connects = sum(n for address, n in record["connects"].items() if address.endswith(":" + ns_port))
    service_connects = sum(n for address, n in record["connects"].items() if not address.endswith(":" + ns_port))
    assert (ns_connects, service_connects) == (1, 1), record["connects"]
    assert record["requests"] == {"echo": 1}, record["requests"]  # the lookup rode on the handshake
    assert record["threads"] == 1, "a one-shot command starts no thread"
    assert _host_requests(ns) - served_before == 1  # the host served the one call


def test_show_and_ping_of_a_service_connect_once_to_each(lonja, ns, echo):
    ns_port = ns.split(":")[1]
    for args, request in ((["show", "echo"], "Pyro.Daemon.describe"), (["ping", "echo"], "Pyro.Daemon.ping")):
        result, record = _command(lonja, *args, "--ns", ns)
        assert result.returncode == 0, result.stderr
        assert sorted(record["connects"].values()) == [1, 1], record["connects"]
        assert any(address.endswith(":" + ns_port) for address in record["connects"])
        assert record["requests"] == {request: 1}, record["requests"]  # the lookup rode on the handshake
        assert record["threads"] == 1


def test_wrong_arguments_are_still_a_usage_error_without_a_describe_up_front(lonja, ns, echo):
    result, record = _command(lonja, "call", "echo.slow", "1", "2", "3", "--ns", ns)
    assert result.returncode == 2 and "too many positional arguments" in result.stderr, result.stderr
    assert record["requests"].get("Pyro.Daemon.describe") == 1  # asked only once the call was refused
    result, record = _command(lonja, "call", "echo.notify", "1", "2", "--ns", ns)  # oneway: checked first
    assert result.returncode == 2 and "too many positional arguments" in result.stderr, result.stderr
    assert "notify" not in record["requests"]


def test_the_command_imports_only_what_its_subcommand_needs(lonja, ns):
    heavy = {"lonja.clients.proxy", "lonja.clients.resolver", "lonja.nameserver.server", "lonja.nameserver.names",
             "lonja.nameserver.storage", "lonja.services.host", "lonja.services.daemon", "lonja.config.certs",
             "sqlite3", "asyncio"}
    result, record = _command(lonja, "--help")
    assert result.returncode == 0 and "usage: lonja" in result.stdout
    assert heavy.isdisjoint(record["modules"]), heavy & set(record["modules"])

    result, record = _command(lonja, "ping", "--ns", ns)
    assert result.returncode == 0, result.stderr
    assert "lonja.clients.naming" in record["modules"]
    assert heavy.isdisjoint(record["modules"]), heavy & set(record["modules"])


def test_a_one_shot_proxy_starts_no_thread_and_a_lasting_one_follows_changes(ns, echo):
    before = set(threading.enumerate())
    with connect("echo", ns=ns, follow_changes=False) as once:
        assert once.echo(1) == 1
    assert set(threading.enumerate()) - before == set()
    with connect("echo", ns=ns) as lasting:
        assert lasting.echo(2) == 2
    assert len(set(threading.enumerate()) - before) == 1  # the resolver's watcher, one per name server


def test_a_library_reads_settings_once_and_applies_them_to_pyro5_on_first_connect(lonja, ns, echo):
    result, record = _recorded(lonja, f"""
from Pyro5 import config as pyro_config
from lonja.config import settings as settings_module

loads = []
load = settings_module.load_settings
def counted(*args, **kwargs):
    loads.append(1)
    return load(*args, **kwargs)
settings_module.load_settings = counted

from lonja.clients import connect
nodelay_before = pyro_config.SOCK_NODELAY
for number in range(20):
    with connect("echo", ns={ns!r}) as echo:
        assert echo.echo(number) == number
report(loads=len(loads), nodelay_before=nodelay_before, nodelay_after=pyro_config.SOCK_NODELAY)
""")
    assert result.returncode == 0, result.stderr
    assert record["loads"] == 1
    assert (record["nodelay_before"], record["nodelay_after"]) == (False, True)


def test_settings_are_read_only():
    settings = load_settings()
    with pytest.raises(AttributeError, match="read-only"):
        settings.client = None


def test_a_proxy_uses_the_settings_passed_to_it(monkeypatch, ns, echo):
    monkeypatch.setenv("LONJA_CLIENT_TIMEOUT", "0.3")
    quick = load_settings()
    monkeypatch.setenv("LONJA_CLIENT_TIMEOUT", "30")
    proxy = connect("echo", ns=ns, settings=quick, follow_changes=False)
    with pytest.raises(CallTimeout, match=r"within 0\.3 s"):
        proxy.slow(5)
    close(proxy)
