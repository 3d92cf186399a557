"""Browsing and editing the name server from the terminal: `lonja ls`, `watch`, `register`, `remove`, `meta`.

Every test runs real name servers and `lonja` processes on 127.0.0.1 and checks what a user sees: the lines
on stdout and stderr and the exit code. Runs that need a terminal get a pseudo-terminal of a known width.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

from harness import PYTHON, Lonja, free_port, port_of, wait_until
from lonja.clients import NameServerClient

FAST = {"LONJA_NS_SWEEP_INTERVAL": "0.2", "LONJA_NS_PROBE_INTERVAL": "0.5"}
AUTH = {"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_ADMIN_TOKENS": "root:rootsecret1",
        "LONJA_AUTH_SERVICE_TOKENS": "shop:shopsecret1"}
LONG_ID = "obj_" + "0123456789abcdef" * 4


def run_in_terminal(lonja: Lonja, *args: str, typed: str = "", columns: int = 80,
                    timeout: float = 60.0) -> tuple[int, str, str]:
    """Run `lonja ARGS` with stdin and stdout on a pseudo-terminal `columns` wide, stderr piped.

    `typed` is what the user types. Returns the exit code, what the terminal showed and stderr.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([PYTHON, "-m", "lonja", *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                            env={**lonja.env, "COLUMNS": str(columns)}, cwd=lonja.tmp_path, start_new_session=True)
    os.close(slave)
    shown = bytearray()
    try:
        if typed:
            os.write(master, typed.encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal: everything is read
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.stderr is not None
        errors = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        os.close(master)
    return code, shown.decode().replace("\r\n", "\n"), errors


def one_error_line(result: subprocess.CompletedProcess, start: str) -> None:
    """The result failed with exactly one line on stderr, starting with `start`, and no traceback."""
    assert result.stderr.startswith(start), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def names_of(ns: str) -> set[str]:
    with NameServerClient(ns) as client:
        return set(client.list())


def test_ls_selects_by_prefix_glob_regex_tags_and_status(lonja: Lonja) -> None:
    lonja.env.update(FAST)
    _, ns = lonja.nameserver()
    lonja.start("serve", "echo", "--ns", ns)
    nowhere = free_port()
    with NameServerClient(ns) as client:
        for hall in ("fish", "fruit"):
            for i in range(1, 13):
                client.register(f"market.{hall}.stall{i:02d}", f"PYRO:stall@127.0.0.1:{nowhere}",
                                {f"hall:{hall}", "open" if i % 2 else "closed"})
        client.register("bakery", f"PYRO:bakery@127.0.0.1:{nowhere}", {"team:bread"})

    def unreachable() -> bool:
        with NameServerClient(ns) as client:
            return all(entry["instances"][0]["status"] == "unreachable"
                       for name, entry in client.entries().items() if name.startswith(("market.", "bakery")))

    assert wait_until(unreachable, timeout=30), "the name server did not probe the registrations"

    def names(*args: str) -> list[str]:
        result = lonja.run("ls", *args, "--names", "--ns", ns)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert names("market.fish") == [f"market.fish.stall{i:02d}" for i in range(1, 13)]
    assert names("market.*.stall0?") == [f"market.{h}.stall{i:02d}" for h in ("fish", "fruit") for i in range(1, 10)]
    assert names("--regex", r"market\.(fish|fruit)\.stall1[01]") == [
        "market.fish.stall10", "market.fish.stall11", "market.fruit.stall10", "market.fruit.stall11"]
    assert names("--meta", "hall:fish", "--meta", "open") == [f"market.fish.stall{i:02d}" for i in range(1, 13, 2)]
    assert names("--any-meta", "team:bread", "--any-meta", "lonja:builtin") == ["bakery", "echo"]
    assert names("--status", "serving") == ["Pyro.NameServer", "echo"]
    assert len(names("market.f*", "--status", "unreachable")) == 24

    listing = json.loads(lonja.run("ls", "market.fruit.stall0[12]", "--json", "--ns", ns).stdout)
    assert sorted(listing) == ["market.fruit.stall01", "market.fruit.stall02"]
    assert listing["market.fruit.stall01"]["uri"] == f"PYRO:stall@127.0.0.1:{nowhere}"

    for args in (["meat.*"], ["meat.*", "--names"], ["--meta", "hall:meat"], ["bak", "--status", "serving"]):
        result = lonja.run("ls", *args, "--ns", ns)
        assert (result.returncode, result.stdout) == (3, ""), (args, result)
        one_error_line(result, "lonja: error: no names ")
    none = lonja.run("ls", "meat.*", "--ns", ns)
    assert none.stderr == "lonja: error: no names matching 'meat.*': `lonja ls` lists them all\n"

    for args, expected in ((["--status", "asleep"], "unknown status 'asleep'"),
                           (["--regex", "market.("], "invalid regex 'market.('"),
                           (["--regex"], "--regex needs a PATTERN")):
        result = lonja.run("ls", *args, "--ns", ns)
        assert result.returncode == 2, (args, result)
        one_error_line(result, f"lonja: error: {expected}")


def test_ls_table_fits_a_terminal_and_is_whole_when_piped(lonja: Lonja, ns: str, echo) -> None:
    with NameServerClient(ns) as client:
        for i in range(50):
            client.register(f"stall.{i:02d}", f"PYRO:{LONG_ID}@127.0.0.1:{40000 + i}", {"hall:fish", "open"})

    piped = lonja.run("ls", "--ns", ns)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "SEEN", "ADDRESS", "TAGS"]
    assert lines[-1].startswith("52 names, 52 instances (")
    echo_row = next(line for line in lines if line.startswith("echo "))
    assert re.search(r" 127\.0\.0\.1:\d+ ", echo_row) and "PYRO:echo@" not in echo_row, "the name is repeated"
    assert f"{LONG_ID}@127.0.0.1:40007" in piped.stdout and "…" not in piped.stdout, "a piped line was cut"

    code, shown, errors = run_in_terminal(lonja, "ls", "--ns", ns, columns=80)
    assert code == 0, errors
    rows = shown.splitlines()
    assert rows[0].startswith("NAME") and rows[-1].startswith("52 names, 52 instances (")
    assert all(len(row) <= 80 for row in rows), [row for row in rows if len(row) > 80]
    stall = next(row for row in rows if row.startswith("stall.07"))
    assert "…@127.0.0.1:40007" in stall, "a long address is cut in its object id, keeping HOST:PORT"


def test_register_meta_and_remove(lonja: Lonja, ns: str) -> None:
    uri = "PYRO:orders@127.0.0.1:1"
    result = lonja.run("register", "shop.orders", uri, "--meta", "team:shop", "--ns", ns)
    assert (result.returncode, result.stdout) == (0, f"registered shop.orders at {uri}\n"), result.stderr

    def meta(*words: str) -> subprocess.CompletedProcess:
        return lonja.run("meta", "shop.orders", *words, "--ns", ns)

    assert meta().stdout == "shop.orders: team:shop\n"
    assert meta("+new", "-team:shop").stdout == "shop.orders: new\n"
    assert meta("-new", "+fresh", "--debug").stdout == "shop.orders: fresh\n", "a -TAG before other options"
    assert lonja.run("meta", "--ns", ns, "shop.orders", "--", "+-h", "+--ns").stdout == "shop.orders: --ns -h fresh\n"
    assert lonja.run("meta", "--ns", ns, "shop.orders", "--", "--h", "---ns").stdout == "shop.orders: fresh\n"

    for result, code, start in (
        (meta("fresh"), 2, "lonja: error: 'fresh' is not a change: write +TAG"),
        (meta("+x", "-x"), 2, "lonja: error: both adding and removing x"),
        (lonja.run("meta", "nosuch", "+x", "--ns", ns), 3, "lonja: error: no service is registered as 'nosuch'"),
        (lonja.run("register", "x", "not-a-uri", "--ns", ns), 2, "lonja: error: invalid URI 'not-a-uri'"),
        (lonja.run("register", "Pyro.NameServer", uri, "--ns", ns), 5, "lonja: access denied: "),
        (lonja.run("remove", "--ns", ns), 2, "lonja: error: say what to remove"),
        (lonja.run("remove", "--prefix", "", "--ns", ns), 2, "lonja: error: say what to remove"),
        (lonja.run("remove", "nosuch", "--ns", ns), 3, "lonja: error: no name 'nosuch'"),
        (lonja.run("remove", "--prefix", "nosuch.", "--ns", ns), 3, "lonja: error: no names starting with"),
        (lonja.run("remove", "Pyro.NameServer", "--ns", ns), 5, "lonja: access denied: "),
    ):
        assert result.returncode == code, result
        one_error_line(result, start)
    assert "shop.orders" in names_of(ns)

    with NameServerClient(ns) as client:
        client.register("shop.basket", uri)
        client.register("shop.till", uri)
    refused = lonja.run("remove", "--prefix", "shop.", "--ns", ns)
    assert refused.returncode == 2, refused
    one_error_line(refused, "lonja: error: 3 names would be removed: add --yes")
    assert {"shop.orders", "shop.basket", "shop.till"} <= names_of(ns), "a refused remove removed something"

    removed = lonja.run("remove", "--regex", r"shop\.(orders|basket)", "--yes", "--ns", ns)
    assert (removed.returncode, removed.stdout) == (0, "removed 2 names\n"), removed.stderr
    removed = lonja.run("remove", "shop.till", "--ns", ns)
    assert (removed.returncode, removed.stdout) == (0, "removed shop.till\n"), removed.stderr
    assert names_of(ns) == {"Pyro.NameServer"}


def test_remove_asks_on_the_terminal(lonja: Lonja, ns: str) -> None:
    with NameServerClient(ns) as client:
        for i in range(3):
            client.register(f"old.{i}", f"PYRO:old@127.0.0.1:{i + 1}")
    code, shown, errors = run_in_terminal(lonja, "remove", "--prefix", "old.", "--ns", ns, typed="n\n")
    assert code == 0 and "old.0, old.1, old.2" in errors and "remove these 3 names? [y/N]" in errors, errors
    assert "nothing was removed" in errors
    assert {"old.0", "old.1", "old.2"} <= names_of(ns)
    code, shown, errors = run_in_terminal(lonja, "remove", "--prefix", "old.", "--ns", ns, typed="y\n")
    assert code == 0 and "removed 3 names" in shown, (shown, errors)
    assert names_of(ns) == {"Pyro.NameServer"}


def test_writes_need_a_token_with_the_right_role(lonja: Lonja) -> None:
    lonja.env.update(AUTH)
    _, ns = lonja.nameserver()
    uri = "PYRO:ledger@127.0.0.1:1"
    root = {"LONJA_AUTH_TOKEN": "rootsecret1"}
    shop = {"LONJA_AUTH_TOKEN": "shopsecret1"}
    assert lonja.run("register", "bank.ledger", uri, "--ns", ns, env=root).returncode == 0
    for args, env in ((["register", "evil", uri], {}), (["meta", "bank.ledger", "+pwned"], {}),
                      (["remove", "bank.ledger"], {}), (["remove", "--prefix", "bank.", "--yes"], {}),
                      (["meta", "bank.ledger", "+pwned"], shop), (["remove", "bank.ledger"], shop)):
        result = lonja.run(*args, "--ns", ns, env=env)
        assert result.returncode == 5, (args, env, result)
        one_error_line(result, "lonja: access denied: the name server at ")
    assert lonja.run("ls", "bank.", "--names", "--ns", ns).stdout == "bank.ledger\n", "anonymous may read"
    assert lonja.run("meta", "bank.ledger", "--ns", ns).stdout == "bank.ledger: (no tags)\n"
    assert lonja.run("meta", "bank.ledger", "+audited", "--ns", ns, env=root).returncode == 0
    assert lonja.run("remove", "bank.ledger", "--ns", ns, env=root).returncode == 0


def test_watch_prints_the_names_then_changes_and_stops_quietly(lonja: Lonja, ns: str) -> None:
    with NameServerClient(ns) as client:
        client.register("stall.a", "PYRO:a@127.0.0.1:1")
    watch = lonja.start("watch", "stall.*", "--ns", ns, ready="watching")
    changes = lonja.start("watch", "stall.", "--json", "--no-snapshot", "--ns", ns, ready="watching")
    assert re.fullmatch(r"\d\d:\d\d:\d\d  present  stall\.a  a@127\.0\.0\.1:1  (unknown|unreachable)",
                        watch.wait_for("present  stall.a"))
    with NameServerClient(ns) as client:
        client.register("other.x", "PYRO:x@127.0.0.1:1")
        client.register("stall.b", "PYRO:b@127.0.0.1:2")
        client.remove("stall.a")
    watch.wait_for("added    stall.b  b@127.0.0.1:2")
    watch.wait_for("removed  stall.a  a@127.0.0.1:1")
    changes.wait_for('"name": "stall.a"')
    assert watch.stop(signal.SIGINT) == 0
    assert changes.stop(signal.SIGTERM) == 0
    assert "other.x" not in watch.output() and "interrupted" not in watch.output()
    events = [json.loads(line) for line in changes.output().splitlines() if line.startswith("{")]
    assert [(e["kind"], e["name"]) for e in events if e["kind"] != "status"] == [("added", "stall.b"),
                                                                                 ("removed", "stall.a")]
    assert events[0]["uri"] == "PYRO:b@127.0.0.1:2"


def test_watch_follows_the_name_server_across_a_restart(lonja: Lonja) -> None:
    storage = f"sqlite:{lonja.tmp_path / 'names.sqlite'}"
    first, ns = lonja.nameserver(storage=storage)
    assert lonja.run("register", "market.a", "PYRO:a@127.0.0.1:1", "--ns", ns).returncode == 0
    watch = lonja.start("watch", "market.", "--ns", ns, ready="watching")
    watch.wait_for("present  market.a")
    first.stop(signal.SIGTERM)
    gone = watch.wait_for("went away")
    assert f"the name server at {ns} went away: reconnecting" in gone
    lonja.nameserver(storage=storage, port=port_of(ns))
    assert lonja.run("register", "market.b", "PYRO:b@127.0.0.1:2", "--ns", ns).returncode == 0
    watch.wait_for("added    market.b  b@127.0.0.1:2", timeout=30)
    assert "is back" in watch.output()
    assert watch.output().count("went away") == 1, "one line while it was away, not one per attempt"
    assert watch.stop(signal.SIGINT) == 0
    assert "Traceback" not in watch.output()
