"""`lonja show` and `lonja call` on objects that no lonja host serves: a plain Pyro5 daemon's object
registered in a lonja name server, and the name server itself (`Pyro.NameServer`). Their description is
Pyro5's metadata (methods, attributes, oneway), which comes with the connection's handshake."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import PYTHON, clean_env
from lonja.clients import connect, describe

PLAIN_SERVER = '''
import sys
import Pyro5.api


@Pyro5.api.expose
class Thing:
    def __init__(self):
        self.poked = None

    def add(self, a, b):
        return a + b

    @Pyro5.api.oneway
    def poke(self, value):
        self.poked = value

    def last_poke(self):
        return self.poked

    @property
    def size(self):
        return 3


host, port = sys.argv[1].split(":")
daemon = Pyro5.api.Daemon(host="127.0.0.1")
uri = daemon.register(Thing(), "thing")
Pyro5.api.locate_ns(host, int(port)).register("plain.thing", uri)
print("serving", uri, flush=True)
daemon.requestLoop()
'''


@pytest.fixture
def plain(ns: str, tmp_path: Path) -> Iterator[str]:
    """A plain Pyro5 daemon in a child process, its object registered as "plain.thing" in `ns`."""
    script = tmp_path / "plain_server.py"
    script.write_text(PLAIN_SERVER)
    process = subprocess.Popen([PYTHON, str(script), ns], env=clean_env(tmp_path), cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = process.stdout.readline()  # "serving PYRO:...", or the traceback's first line and EOF
        assert line.startswith("serving PYRO:thing@127.0.0.1:"), line + process.stdout.read()
        yield "plain.thing"
    finally:
        process.kill()
        process.wait(10)


def test_show_a_plain_pyro5_object(lonja, ns, plain):
    shown = lonja.run("show", plain, "--ns", ns)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("plain.thing  PYRO:thing@127.0.0.1:")
    assert "  add(...)" in lines and "  poke(...)  [oneway]" in lines and "  size" in lines

    described = json.loads(lonja.run("show", plain, "--json", "--ns", ns).stdout)
    assert sorted(described["methods"]) == ["add", "last_poke", "poke"]
    assert described["methods"]["poke"]["oneway"] is True and described["methods"]["add"]["params"] is None
    assert described["attributes"] == {"size": {"doc": "", "writable": None}}


def test_call_a_plain_pyro5_object(lonja, ns, plain):
    added = lonja.run("call", f"{plain}.add", "2", "3", "--ns", ns)
    assert (added.returncode, added.stdout) == (0, "5\n"), added.stderr
    poked = lonja.run("call", f"{plain}.poke", "'hi'", "--ns", ns)
    assert (poked.returncode, poked.stdout) == (0, ""), poked.stderr
    unknown = lonja.run("call", f"{plain}.nope", "--ns", ns)
    assert unknown.returncode == 2 and "has no method 'nope'" in unknown.stderr
    with connect(plain, ns=ns, follow_changes=False) as thing:
        assert describe(thing)["methods"]["last_poke"]["signature"] == "(...)"
        assert thing.size == 3


def test_show_and_call_the_name_server_itself(lonja, ns, echo):
    shown = lonja.run("show", "Pyro.NameServer", "--ns", ns)
    assert shown.returncode == 0, shown.stderr
    assert f"Pyro.NameServer  PYRO:Pyro.NameServer@{ns}" in shown.stdout
    assert "  count(...)" in shown.stdout.splitlines() and "  lookup(...)" in shown.stdout.splitlines()

    counted = lonja.run("call", "Pyro.NameServer.count", "--ns", ns)
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout) == 2  # the name server and echo
    listed = lonja.run("call", "Pyro.NameServer.list", "prefix=echo", "--json", "--ns", ns)
    assert listed.returncode == 0, listed.stderr
    assert list(json.loads(listed.stdout)) == ["echo"]
