"""Many machines: lonja across hosts that are Linux network namespaces on one bridge (tests/netns.py).

The name server runs on host a (198.18.0.1), echo services on b (.2) and d (.4), clients on c (.3); every
process is real and runs in its host with `ip netns exec`. The scenarios: calls spread over two hosts and
survive a kill -9 (noticed by the name server through the host's session) and a restart; a service bound
to 0.0.0.0 is reachable from another host, and so is `lonja up --host 0.0.0.0`; a loopback URI from
another host is refused, or corrected with ns.correct_uris; the name server restarts under load; mutual
TLS across hosts; a partition (packets dropped with nft, or the link down) fails calls over and heals;
several name servers, the first down (killed, then silent): clients use the second; discovery by UDP
broadcast (only inside these namespaces), on and off; added latency through a delaying relay
(tests/relay.py), and each call mode's cost under it. Each assertion message carries the
figures, which are also printed (`pytest -s` shows them). The tests without the `network` fixture need
no namespaces.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import statistics
import time
from collections import Counter
from typing import Any

import pytest
from netns import Host, NetnsProcess, Network, network_fixture, nft_binary, script  # noqa: F401 (a fixture)

from harness import PYTHON, ROOT, Lonja, wait_until
from lonja.clients.naming import NameServerClient
from lonja.config import ConfigError
from lonja.config.addresses import is_loopback, is_wildcard, nat_options
from lonja.nameserver import session as nameserver_session
from lonja.services import session as host_session

pytestmark = pytest.mark.timeout(240)

NS = "198.18.0.1:9090"
NS_D = "198.18.0.4:9090"
NS_COMMAND = ("ns", "--host", "0.0.0.0")
SERVE_COMMAND = ("serve", "echo", "--host", "0.0.0.0", "--ns", NS)
RELAYED = ("--port", "7101", "--advertise", "198.18.0.3:7100")
LS_COMMAND = ("ls", "--ns", NS)
CALL_COMMAND = ("call", "echo.echo", "hi", "--ns", NS)
REFUSED_COMMAND = ("serve", "echo", "--ns", NS)
CERTS_COMMAND = ("certs", "init", "certs", *(arg for i in range(1, 5) for arg in ("--san", f"198.18.0.{i}")))
SERVE_TWICE_COMMAND = (*SERVE_COMMAND, "--ns", NS_D)
CALL_EITHER_COMMAND = (f"LONJA_NS={NS},{NS_D}", "call", "echo.echo", "hi")
BROADCAST_NS_COMMAND = ("LONJA_NS_BROADCAST=true", *NS_COMMAND)
DISCOVER_COMMAND = ("LONJA_NS_DISCOVER=true", "call", "echo.echo", "hi")
CORRECTING_NS_COMMAND = ("LONJA_NS_CORRECT_URIS=true", *NS_COMMAND)
LOOPBACK_COMMAND = ("serve", "echo", "--host", "0.0.0.0", "--advertise", "127.0.0.1", "--ns", NS)
README_COMMANDS = {NS_COMMAND, SERVE_COMMAND, SERVE_COMMAND + RELAYED, LS_COMMAND, CALL_COMMAND, REFUSED_COMMAND,
                   CERTS_COMMAND, SERVE_TWICE_COMMAND, CALL_EITHER_COMMAND, BROADCAST_NS_COMMAND, DISCOVER_COMMAND,
                   CORRECTING_NS_COMMAND, LOOPBACK_COMMAND}
"""The commands of the README's "Two computers" section, each the `lonja` arguments after any VAR=value
words (`A$ LONJA_NS_BROADCAST=true lonja ns ...`): the tests run exactly these."""
THREADS = 4
CLIENT_TIMEOUT = 5.0
SESSION_NOTICE = 3.0
"""Seconds within which the name server marks a killed host's instances not serving (its session closed;
the lease, 10 s, would take longer). The target is under 1 s; the bound is generous for a busy machine."""


def split_env(command: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
    """A README command's leading VAR=value words as an environment, and the `lonja` arguments after them."""
    words = list(command)
    env = {}
    while words and "=" in words[0] and words[0].split("=", 1)[0].isupper():
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    return env, tuple(words)


def run_readme(host: Host, command: tuple[str, ...], timeout: float = 30.0) -> Any:
    """Run a README command (VAR=value words, then `lonja` arguments) on `host` to completion."""
    env, args = split_env(command)
    return host.run(*args, env=env, timeout=timeout)


def start_readme(host: Host, command: tuple[str, ...], ready: str) -> NetnsProcess:
    """Start a README command (VAR=value words, then `lonja` arguments) on `host`."""
    env, args = split_env(command)
    return host.start(*args, env=env, ready=ready)


def start_ns(host: Host, env: dict[str, str] | None = None) -> NetnsProcess:
    """`lonja ns --host 0.0.0.0` on `host`, as the README's "Two computers" section runs it."""
    return host.start(*NS_COMMAND, ready="name server listening", env=env)


def serve_echo(host: Host, *extra: str, env: dict[str, str] | None = None) -> tuple[NetnsProcess, str]:
    """`lonja serve echo --host 0.0.0.0 --ns A:9090` on `host`: the process and the URI it serves at."""
    process = host.start(*SERVE_COMMAND, *extra, env=env)
    return process, process.wait_for("serving echo at ").split(" at ", 1)[1].strip()


def start_client(host: Host, threads: int = THREADS, timeout: float = CLIENT_TIMEOUT) -> NetnsProcess:
    """The load client (tests/multihost_client.py) on `host`: `threads` callers of echo.slow(0.02)."""
    return host.python(script("multihost_client.py"), "--ns", NS, "--threads", str(threads),
                       "--timeout", str(timeout), ready='"ready"')


def calls(client: NetnsProcess) -> list[dict[str, Any]]:
    """Every call the load client reported so far."""
    return [json.loads(line) for line in client.output().splitlines() if line.startswith('{"thread"')]


def changes(watch: NetnsProcess) -> list[dict[str, Any]]:
    """Every change `lonja watch --json` printed so far."""
    return [json.loads(line) for line in watch.output().splitlines() if line.startswith('{"time"')]


def address_of(uri: str) -> str:
    return uri.split("@", 1)[1]


def first_change(watch: NetnsProcess, uri: str, after: float, gone: bool) -> dict[str, Any] | None:
    """The first change for `uri` after `after`: one that takes it out of service (`gone`), or back in."""
    for change in changes(watch):
        if change["uri"] != uri or change["time"] < after:
            continue
        out = change["kind"] == "removed" or change["status"] != "serving"
        if out == gone:
            return change
    return None


def figures(name: str, values: dict[str, Any]) -> str:
    """One line of figures, printed and used in assertion messages."""
    text = f"{name}: " + ", ".join(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
                                   for key, value in values.items())
    print(text)
    return text


def watch_echo(host: Host) -> NetnsProcess:
    """`lonja watch --json echo` on `host`, once it has printed what is there."""
    return host.start("watch", "--json", "echo", "--ns", NS, ready='"kind"')


# -- without namespaces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback", "wildcard"), [
    ("127.0.0.1", True, False), ("127.9.9.9", True, False), ("::1", True, False), ("[::1]", True, False),
    ("::ffff:127.0.0.1", True, False), ("localhost", True, False), ("0.0.0.0", False, True), ("::", False, True),
    ("198.18.0.2", False, False), ("fe80::1", False, False), ("myhost", False, False)])
def test_loopback_and_wildcard_addresses(host: str, loopback: bool, wildcard: bool):
    assert (is_loopback(host), is_wildcard(host)) == (loopback, wildcard)


def test_what_a_daemon_advertises():
    assert nat_options("127.0.0.1", "", "x") == {}
    assert nat_options("198.18.0.2", "", "x") == {}
    assert nat_options("0.0.0.0", "gw.example:7100", "x") == {"nathost": "gw.example", "natport": 7100}
    assert nat_options("127.0.0.1", "198.18.0.3", "x") == {"nathost": "198.18.0.3", "natport": 0}
    assert nat_options("0.0.0.0", "[fd00::1]:80", "x") == {"nathost": "[fd00::1]", "natport": 80}
    wildcard = nat_options("0.0.0.0", "", "x", ("127.0.0.1", 9090))
    assert wildcard["natport"] == 0 and not is_wildcard(wildcard["nathost"]), wildcard
    with pytest.raises(ConfigError, match="wildcard"):
        nat_options("0.0.0.0", "0.0.0.0:80", "--advertise")


def test_advertising_a_wildcard_is_a_usage_error(lonja: Lonja):
    result = lonja.run("serve", "echo", "--host", "0.0.0.0", "--advertise", "0.0.0.0", "--ns", "127.0.0.1:9")
    assert result.returncode == 2 and "--advertise" in result.stderr and "wildcard" in result.stderr, result.stderr


def test_a_killed_host_is_marked_not_serving_when_its_session_closes(lonja: Lonja, ns: str):
    echo = lonja.start("serve", "echo", "--ns", ns)
    uri = echo.wait_for("serving echo at ").split(" at ", 1)[1].strip()
    with NameServerClient(ns, token="") as client:
        def status() -> str:
            entry = client.entries("echo").get("echo", {})
            found = [i["status"] for i in entry.get("instances", []) if i["uri"] == uri]
            return found[0] if found else "gone"

        assert status() == "serving"
        killed_at = time.monotonic()
        echo.send_signal(signal.SIGKILL)
        assert wait_until(lambda: status() != "serving", 10, 0.01), status()
        noticed = time.monotonic() - killed_at
    summary = figures("kill -9 on one host", {"s to not serving": noticed, "lease s": 10.0})
    assert noticed < SESSION_NOTICE, summary


def test_host_and_name_server_agree_on_the_session_object():
    assert host_session.SESSION_OBJECT == nameserver_session.SESSION_OBJECT


def test_readme_two_computers_runs_the_commands_of_these_tests():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Two computers\n", 1)[1].split("\n## ", 1)[0]
    shown = set()
    for line in section.splitlines():
        match = re.match(r"[A-Z]\$ ((?:[A-Z_]+=\S+ )*)lonja (.*)", line)
        if match:
            shown.add(tuple(shlex.split(match.group(1))) + tuple(shlex.split(match.group(2))))
    assert shown == README_COMMANDS, f"README only: {shown - README_COMMANDS}; tests only: {README_COMMANDS - shown}"


# -- the harness itself -------------------------------------------------------------------------------------


def test_hosts_reach_each_other_and_only_each_other(network: Network):
    a, b = network["a"], network["b"]
    listener = a.spawn("python3", "-c", "import socket; s = socket.create_server(('198.18.0.1', 7000)); "
                                        "print('listening', flush=True); c, peer = s.accept(); print('from', peer[0])",
                       ready="listening")
    connect = "import socket; print(socket.create_connection(('198.18.0.1', 7000), 5).getsockname()[0])"
    result = b.exec("python3", "-c", connect)
    assert result.stdout.strip() == "198.18.0.2", result.stdout + result.stderr
    assert listener.wait_for("from ") == "from 198.18.0.2"
    routes = b.exec("ip", "route").stdout
    assert "default" not in routes, f"a host must have no route out of the test network:\n{routes}"


# -- scenarios ----------------------------------------------------------------------------------------------


def test_wildcard_bind_advertises_the_address_that_reaches_the_name_server(network: Network):
    a, b, c = network["a"], network["b"], network["c"]
    start_ns(a)
    _, uri = serve_echo(b)
    assert address_of(uri).startswith("198.18.0.2:"), f"B bound to 0.0.0.0 advertises {uri}, not B's 198.18.0.2"
    listed = c.run(*LS_COMMAND)
    assert listed.returncode == 0 and address_of(uri) in listed.stdout, listed.stdout + listed.stderr
    called = c.run(*CALL_COMMAND)
    assert (called.returncode, called.stdout.strip()) == (0, "'hi'"), called.stdout + called.stderr


def test_up_on_every_interface_serves_other_hosts(network: Network):
    a, c = network["a"], network["c"]
    up = a.start("up", "--host", "0.0.0.0", "--no-web", "--storage", "memory")
    assert "PYRO:Pyro.NameServer@198.18.0.1:9090" in up.wait_for("name server listening"), up.output()
    assert "PYRO:echo@198.18.0.1:" in up.wait_for("serving echo at "), up.output()
    called = c.run(*CALL_COMMAND)
    assert (called.returncode, called.stdout.strip()) == (0, "'hi'"), called.stdout + called.stderr


def test_loopback_uri_from_another_host_is_refused_with_what_to_pass(network: Network):
    a, b = network["a"], network["b"]
    start_ns(a)
    for extra in ((), ("--host", "0.0.0.0", "--advertise", "127.0.0.1")):
        refused = b.run(*REFUSED_COMMAND, *extra, timeout=60)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 5 and len(lines) == 1, \
            f"`lonja serve echo {' '.join(extra)}` on B: exit {refused.returncode}, stderr:\n{refused.stderr}"
        assert "127.0.0.1" in lines[0] and "--host 0.0.0.0" in lines[0] and "--advertise" in lines[0], lines[0]
        assert "198.18.0.2" in lines[0], lines[0]
    plain = ("import Pyro5.api, Pyro5.errors\n"
             "uri = Pyro5.api.URI('PYRO:thing@0.0.0.0:4321')\n"
             f"ns = Pyro5.api.Proxy('PYRO:Pyro.NameServer@{NS}')\n"
             "try:\n"
             "    ns.register('thing', uri)\n"
             "except Pyro5.errors.SecurityError as exc:\n"
             "    print('refused:', exc)\n")
    wildcard = b.exec(PYTHON, "-c", plain)
    assert "refused: 'thing' at PYRO:thing@0.0.0.0:4321" in wildcard.stdout and "wildcard" in wildcard.stdout, \
        f"a plain Pyro5 registration of a wildcard URI from B: {wildcard.stdout}{wildcard.stderr}"
    served = a.start(*REFUSED_COMMAND)
    assert "PYRO:echo@127.0.0.1:" in served.wait_for("serving echo at "), "a loopback URI from A itself is fine"


def test_calls_spread_over_two_hosts_and_a_kill_9_fails_only_calls_in_flight(network: Network):
    a, b, c, d = (network[label] for label in "abcd")
    start_ns(a)
    echo_b, uri_b = serve_echo(b)
    _, uri_d = serve_echo(d)
    watch = watch_echo(c)
    client = start_client(c)
    assert wait_until(lambda: min(Counter(r["instance"] for r in calls(client)).get(u, 0)
                                  for u in (uri_b, uri_d)) >= 30, 30), \
        f"calls by instance: {Counter(r['instance'] for r in calls(client))}"
    killed_at = time.time()
    b.kill(echo_b)
    killed = time.time()
    assert wait_until(lambda: sum(r["start"] > killed + 1 for r in calls(client)) >= 50, 30)
    assert wait_until(lambda: first_change(watch, uri_b, killed_at, gone=True) is not None, 30), watch.output()
    echo_b2, uri_b2 = serve_echo(b)
    restarted = time.time()
    assert wait_until(lambda: sum(r["instance"] == uri_b2 and r["ok"] for r in calls(client)) >= 10, 30), \
        f"after B's restart at {uri_b2}, calls by instance: {Counter(r['instance'] for r in calls(client))}"
    client.stop()
    records = calls(client)

    before = [r for r in records if r["end"] < killed_at]
    share_b = sum(r["instance"] == uri_b for r in before) / len(before)
    in_flight = [r for r in records if r["start"] < killed_at < r["end"] and r["instance"] == uri_b]
    failed = [r for r in records if not r["ok"]]
    late = [r for r in failed if r["start"] > killed]
    after = [r for r in records if r["start"] > killed]
    recovered = [min(r["end"] for r in after if r["thread"] == t and r["ok"]) - killed_at for t in range(THREADS)]
    marked = first_change(watch, uri_b, killed_at, gone=True)
    assert marked is not None
    summary = figures("kill -9", {
        "calls before": len(before), "share on B before": share_b, "in flight on B": len(in_flight),
        "failed": len(failed), "failed types": dict(Counter(r["error"] for r in failed)),
        "failed, started after the kill": len(late),
        "late ones started ms after the kill": [round((r["start"] - killed) * 1000, 1) for r in late],
        "s from kill until every thread succeeded": max(recovered),
        "s from kill to not serving (name server)": marked["time"] - killed_at,
        "calls on B again after restart": sum(r["instance"] == uri_b2 for r in records if r["start"] > restarted)})
    assert 0.25 <= share_b <= 0.75, f"calls are not spread over B and D: {summary}"
    assert all(r["error"] == "OutcomeUnknown" and r["instance"] == uri_b for r in failed), summary
    assert len(failed) - len(late) <= len(in_flight), summary
    assert all(r["ok"] and r["instance"] in (uri_d, uri_b2) for r in records if r["start"] > killed + 1), summary
    assert max(recovered) < CLIENT_TIMEOUT, summary
    assert marked["time"] - killed_at < SESSION_NOTICE, f"the name server missed the closed session: {summary}"
    assert not late, f"calls started after the kill failed: {summary}"
    echo_b2.stop()


def test_name_server_restart_on_sqlite_leaves_hosts_clients_and_watch_running(network: Network):
    a, b, c, d = (network[label] for label in "abcd")
    ns = start_ns(a)
    _, uri_b = serve_echo(b)
    _, uri_d = serve_echo(d)
    watch = watch_echo(c)
    client = start_client(c)
    assert wait_until(lambda: len(calls(client)) >= 40, 30)
    stopped_at = time.time()
    ns.stop()
    time.sleep(2)
    ns = start_ns(a)
    restarted_at = time.time()
    assert "1 name loaded" in ns.wait_for("name server listening"), ns.output()
    watch.wait_for("is back", 30)
    def after_restart() -> list[dict]:
        return [r for r in calls(client) if r["start"] > restarted_at + 1]

    # each host registers again at its next lease renewal (up to a third of the 10 s lease after the restart)
    assert wait_until(lambda: len(after_restart()) >= 40 and {r["instance"] for r in after_restart()} >= {uri_b, uri_d},
                      30)
    listed = c.run(*LS_COMMAND)
    client.stop()
    records = calls(client)
    during = [r for r in records if stopped_at < r["start"] < restarted_at]
    after = [r for r in records if r["start"] > restarted_at + 1]
    summary = figures("name server restart", {
        "calls while it was down": len(during), "failed": sum(not r["ok"] for r in records),
        "calls after": len(after), "on B after": sum(r["instance"] == uri_b for r in after),
        "on D after": sum(r["instance"] == uri_d for r in after)})
    assert during and all(r["ok"] for r in records), f"calls failed around the restart: {summary}"
    assert {r["instance"] for r in after} == {uri_b, uri_d}, summary
    assert listed.stdout.count("serving") >= 3 and address_of(uri_b) in listed.stdout, listed.stdout
    assert watch.proc.poll() is None, watch.output()


def tls_settings(stem: str | None, require_client_cert: bool = False) -> str:
    """A lonja.toml turning TLS on with the certificates in ./certs: `stem` "server", "client" or None."""
    lines = ["[tls]", "enabled = true", 'ca = "certs/ca.pem"']
    if stem:
        lines += [f'cert = "certs/{stem}.pem"', f'key = "certs/{stem}.key"']
    if require_client_cert:
        lines.append("require_client_cert = true")
    return "\n".join(lines) + "\n"


def test_mutual_tls_across_hosts(network: Network):
    a, b, c, d = (network[label] for label in "abcd")
    made = a.run(*CERTS_COMMAND)
    assert made.returncode == 0, made.stdout + made.stderr
    for host, stem, require in ((a, "server", True), (b, "server", True), (c, "client", False), (d, None, False)):
        if host is not a:
            shutil.copytree(a.workdir / "certs", host.workdir / "certs")
        (host.workdir / "lonja.toml").write_text(tls_settings(stem, require))
    start_ns(a)
    _, uri = serve_echo(b)
    called = c.run(*CALL_COMMAND)
    assert (called.returncode, called.stdout.strip()) == (0, "'hi'"), called.stdout + called.stderr
    refused = d.run(*CALL_COMMAND)
    assert refused.returncode == 5 and "TLS" in refused.stderr, \
        f"a client without a certificate: exit {refused.returncode}, {refused.stderr}"
    assert address_of(uri).startswith("198.18.0.2:"), uri


@pytest.mark.parametrize("how", ["nft drop", "link down"])
def test_partition_fails_over_within_the_client_timeout_and_heals(network: Network, how: str):
    a, b, c, d = (network[label] for label in "abcd")
    if how == "nft drop" and nft_binary() is None:
        pytest.skip("no nft (Debian's nftables) and apt-get could not install it")
    lease = {"LONJA_NS_LEASE_TTL": "3"}
    start_ns(a, env=lease)
    _, uri_b = serve_echo(b, env=lease)
    _, uri_d = serve_echo(d, env=lease)
    watch = watch_echo(c)
    client = start_client(c)
    assert wait_until(lambda: min(Counter(r["instance"] for r in calls(client)).get(u, 0)
                                  for u in (uri_b, uri_d)) >= 20, 30)
    cut_at = time.time()
    if how == "nft drop":
        b.drop_packets()
    else:
        b.link(up=False)
    cut = time.time()
    assert wait_until(lambda: first_change(watch, uri_b, cut_at, gone=True) is not None, 30), watch.output()
    assert wait_until(lambda: sum(r["start"] > cut_at + CLIENT_TIMEOUT + 1 for r in calls(client)) >= 50, 30)
    healed_at = time.time()
    if how == "nft drop":
        b.restore_packets()
    else:
        b.link(up=True)
    back = wait_until(lambda: first_change(watch, uri_b, healed_at, gone=False) is not None, 40)
    used_again = wait_until(lambda: sum(r["instance"] == uri_b and r["ok"] and r["start"] > healed_at
                                        for r in calls(client)) >= 10, 40)
    client.stop()
    records = calls(client)

    failed = [r for r in records if not r["ok"]]
    in_flight = [r for r in records if r["start"] < cut and r["end"] > cut_at and r["instance"] == uri_b]
    during = [r for r in records if cut_at + CLIENT_TIMEOUT + 1 < r["start"] < healed_at]
    recovered = [min(r["end"] for r in records if r["thread"] == t and r["ok"] and r["start"] > cut_at
                     and r["instance"] == uri_d) - cut_at for t in range(THREADS)]
    marked = first_change(watch, uri_b, cut_at, gone=True)
    returned = first_change(watch, uri_b, healed_at, gone=False)
    assert marked is not None
    summary = figures(f"partition ({how})", {
        "in flight on B": len(in_flight), "failed": len(failed),
        "failed types": dict(Counter(r["error"] for r in failed)),
        "s to cut": cut - cut_at,
        "failed, started ms after the cut": [round((r["start"] - cut) * 1000) for r in failed],
        "s until every thread succeeded on D": max(recovered),
        "s to not serving (name server)": marked["time"] - cut_at,
        "calls while cut": len(during), "failed while cut": sum(not r["ok"] for r in during),
        "s from heal to serving": returned["time"] - healed_at if returned else "never",
        "calls on B after heal": sum(r["instance"] == uri_b and r["start"] > healed_at for r in records)})
    assert len(failed) <= THREADS, f"more failed calls than callers: {summary}"
    assert all(r["error"] in ("CallTimeout", "OutcomeUnknown") and r["instance"] == uri_b for r in failed), summary
    assert all(r["ok"] and r["instance"] == uri_d for r in during), summary
    assert max(recovered) <= CLIENT_TIMEOUT + 2, f"a caller took longer than the client timeout: {summary}"
    assert marked["time"] - cut_at <= 3 * 3 + 2, f"B not marked within the lease: {summary}"
    assert back and used_again, f"B did not serve again after the heal: {summary}"


def test_relay_adds_latency_without_serializing_calls(network: Network):
    a, b, c = network["a"], network["b"], network["c"]
    delay = 0.1
    start_ns(a)
    c.python(script("relay.py"), "198.18.0.3:7100", "198.18.0.2:7101", "--delay", str(delay),
             ready="relay listening")
    _, uri = serve_echo(b, *RELAYED)
    assert address_of(uri) == "198.18.0.3:7100", f"B advertises {uri}, not the relay's 198.18.0.3:7100"
    probe = ("import json, time\n"
             "from lonja.clients import connect\n"
             f"echo = connect('echo', ns='{NS}')\n"
             "echo.echo(0)\n"
             "sync = []\n"
             "for i in range(5):\n"
             "    t = time.perf_counter(); echo.echo(i); sync.append(time.perf_counter() - t)\n"
             "[f.result() for f in [echo.echo.future(i) for i in range(10)]]\n"
             "t = time.perf_counter()\n"
             "assert [f.result() for f in [echo.echo.future(i) for i in range(10)]] == list(range(10))\n"
             "print(json.dumps({'sync': sync, 'futures': time.perf_counter() - t}))\n")
    result = c.exec(PYTHON, "-c", probe, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    median = statistics.median(measured["sync"])
    summary = figures(f"relay {delay * 1000:.0f} ms each way", {"sync call median s": median,
                                                                  "10 futures s": measured["futures"]})
    assert median >= 2 * delay, f"a call through the relay took less than its two delays: {summary}"
    assert measured["futures"] < 10 * 2 * delay / 2, f"the relay (or the client) serialized calls: {summary}"


def test_call_modes_with_2_ms_added_each_way(network: Network):
    a, b, c = network["a"], network["b"], network["c"]
    delay = 0.002
    start_ns(a)
    c.python(script("relay.py"), "198.18.0.3:7100", "198.18.0.2:7101", "--delay", str(delay),
             ready="relay listening")
    serve_echo(b, *RELAYED)
    result = c.exec(PYTHON, str(script("latency_modes.py")), "--ns", NS, "--calls", "100", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    row = json.loads(result.stdout.strip().splitlines()[-1])
    summary = figures("ms per call, 2 ms added each way", {mode: seconds * 1000 for mode, seconds in row.items()})
    assert row["sync"] >= 2 * delay, f"a sync call took less than the two delays: {summary}"
    for mode in ("futures", "aio", "batch", "oneway"):
        assert row[mode] < row["sync"] / 2, f"{mode} calls did not overlap the added latency: {summary}"


# -- several name servers, discovery, corrected URIs ---------------------------------------------------------


UDP_LISTENER = ("import socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "s.bind(('0.0.0.0', 9091))\n"
                "print('listening', flush=True)\n"
                "while True:\n"
                "    data, peer = s.recvfrom(100)\n"
                "    print('got', data.decode(), 'from', peer[0], flush=True)\n")
"""A stand-in on Pyro5's discovery port that answers nothing and prints every request it gets."""


def test_several_name_servers_the_first_down_clients_use_the_second(network: Network):
    a, b, c, d = (network[label] for label in "abcd")
    ns_a = start_ns(a)
    start_ns(d)
    echo = b.start(*SERVE_TWICE_COMMAND)
    uri = echo.wait_for("serving echo at ").split(" at ", 1)[1].strip()
    for address in (NS, NS_D):
        listed = c.run("ls", "echo", "--ns", address)
        assert listed.returncode == 0 and address_of(uri) in listed.stdout, \
            f"B registers with every name server: `lonja ls --ns {address}` on C:\n{listed.stdout}{listed.stderr}"
    both = f"{NS},{NS_D}"
    client = c.python(script("multihost_client.py"), "--ns", both, "--threads", "2", ready='"ready"')
    assert wait_until(lambda: len(calls(client)) >= 20, 30)
    watch = c.start("watch", "--json", "echo", ready='"kind"', env={"LONJA_NS": both})
    assert "watching 198.18.0.1:9090" in watch.output(), watch.output()
    a.kill(ns_a)
    killed = time.time()
    started = time.monotonic()
    called = run_readme(c, CALL_EITHER_COMMAND)
    refused_s = time.monotonic() - started
    assert (called.returncode, called.stdout.strip()) == (0, "'hi'"), called.stdout + called.stderr
    assert wait_until(lambda: sum(r["start"] > killed + 1 for r in calls(client)) >= 20, 30)
    echo_d = d.start(*SERVE_TWICE_COMMAND)
    uri_d = echo_d.wait_for("serving echo at ").split(" at ", 1)[1].strip()
    assert wait_until(lambda: sum(r["instance"] == uri_d and r["ok"] for r in calls(client)) >= 10, 30), \
        f"clients did not learn of D's instance from D: {Counter(r['instance'] for r in calls(client))}"
    assert wait_until(lambda: any(change["uri"] == uri_d for change in changes(watch)), 30), watch.output()
    if nft_binary():
        a.drop_packets()
    else:
        a.link(up=False)
    started = time.monotonic()
    silent = run_readme(c, CALL_EITHER_COMMAND)
    silent_s = time.monotonic() - started
    started = time.monotonic()
    none = c.run("call", "echo.echo", "hi", "--ns", NS, "--ns", "198.18.0.3:9")
    none_s = time.monotonic() - started
    client.stop()
    records = calls(client)
    after = [r for r in records if r["start"] > killed]
    summary = figures("first name server down", {
        "s for `lonja call` (first refused)": refused_s, "s for `lonja call` (first silent)": silent_s,
        "s for `lonja call` (none answers)": none_s, "calls after the kill": len(after),
        "failed after the kill": sum(not r["ok"] for r in after),
        "calls on D's instance (registered after the kill)": sum(r["instance"] == uri_d for r in after)})
    assert (silent.returncode, silent.stdout.strip()) == (0, "'hi'"), silent.stdout + silent.stderr
    assert after and all(r["ok"] for r in after), f"calls failed after the first name server died: {summary}"
    lines = none.stderr.strip().splitlines()
    assert none.returncode == 3 and len(lines) == 1, f"exit {none.returncode}: {none.stderr} ({summary})"
    assert "198.18.0.1:9090 (no answer within 2 s)" in lines[0] and "198.18.0.3:9 (connection refused)" in lines[0], \
        lines[0]
    assert silent_s < 2 + 8, f"a silent first name server is given the connect timeout (2 s), no more: {summary}"
    assert watch.proc.poll() is None, watch.output()


def test_discovery_is_off_by_default_and_finds_a_broadcasting_name_server_when_on(network: Network):
    a, b, c, d = (network[label] for label in "abcd")
    listener = d.spawn(PYTHON, "-c", UDP_LISTENER, ready="listening")
    start_readme(a, BROADCAST_NS_COMMAND, ready="name server listening")
    serve_echo(b)
    off = c.run("call", "echo.echo", "hi")
    lines = off.stderr.strip().splitlines()
    assert off.returncode == 3 and len(lines) == 1 and "no name server answers at 127.0.0.1:9090" in lines[0], \
        f"no name server on C, discovery off: exit {off.returncode}, {off.stderr}"
    time.sleep(1)
    assert "got" not in listener.output(), f"discovery is off, yet a request was broadcast: {listener.output()}"
    started = time.monotonic()
    found = run_readme(c, DISCOVER_COMMAND)
    found_s = time.monotonic() - started
    summary = figures("discovery", {"s for `lonja call` by broadcast": found_s})
    assert (found.returncode, found.stdout.strip()) == (0, "'hi'"), f"{found.stdout}{found.stderr} ({summary})"
    assert listener.wait_for("got GET_NSURI from 198.18.0.3", 10), listener.output()
    program = ("from lonja.clients import connect\n"
               "with connect('echo') as echo:\n"
               "    print(echo.echo('found'))\n")
    library = c.exec(PYTHON, "-c", program, env={"LONJA_NS_DISCOVER": "true"})
    assert library.stdout.strip() == "found", library.stdout + library.stderr


def test_discovery_without_an_answer_says_what_it_tried(network: Network):
    c, d = network["c"], network["d"]
    listener = d.spawn(PYTHON, "-c", UDP_LISTENER, ready="listening")
    started = time.monotonic()
    result = run_readme(c, DISCOVER_COMMAND)
    elapsed = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    summary = figures("discovery, nobody answers", {"s": elapsed})
    assert result.returncode == 3 and len(lines) == 1, f"exit {result.returncode}: {result.stderr} ({summary})"
    assert "127.0.0.1:9090 (connection refused)" in lines[0] and "broadcast" in lines[0], lines[0]
    assert listener.wait_for("got GET_NSURI from 198.18.0.3", 10), listener.output()


def test_correct_uris_makes_a_service_advertising_loopback_reachable_from_another_host(network: Network):
    a, b, c = network["a"], network["b"], network["c"]
    ns = start_readme(a, CORRECTING_NS_COMMAND, ready="name server listening")
    echo = b.start(*LOOPBACK_COMMAND, env={"LONJA_NS_LEASE_TTL": "3"})
    own = echo.wait_for("serving echo at ").split(" at ", 1)[1].strip()
    port = own.rsplit(":", 1)[1]
    assert own.startswith("PYRO:echo@127.0.0.1:"), own
    corrected = f"PYRO:echo@198.18.0.2:{port}"
    assert corrected in echo.wait_for("registered it as"), echo.output()
    called = c.run(*CALL_COMMAND)
    assert (called.returncode, called.stdout.strip()) == (0, "'hi'"), called.stdout + called.stderr
    time.sleep(3)  # three lease renewals: the host renews and attaches the corrected URI
    listed = c.run("ls", "echo", "--ns", NS)
    assert f"198.18.0.2:{port}" in listed.stdout and "serving" in listed.stdout, listed.stdout + listed.stderr
    assert "re-registered" not in echo.output() and "forgotten" not in echo.output(), echo.output()
    notes = [line for line in ns.output().splitlines() if "corrected" in line]
    assert len(notes) == 1 and own in notes[0] and corrected in notes[0] and "198.18.0.2" in notes[0], ns.output()
    plain = ("import Pyro5.api\n"
             f"ns = Pyro5.api.Proxy('PYRO:Pyro.NameServer@{NS}')\n"
             "ns.register('thing', 'PYRO:thing@0.0.0.0:4321')\n"
             "print('stored', ns.lookup('thing'))\n")
    stored = b.exec(PYTHON, "-c", plain)
    assert "stored PYRO:thing@198.18.0.2:4321" in stored.stdout, stored.stdout + stored.stderr
    watch = watch_echo(c)
    killed_at = time.time()
    b.kill(echo)
    assert wait_until(lambda: first_change(watch, corrected, killed_at, gone=True) is not None, 10), \
        f"the session stands for the corrected URI too: {watch.output()}"
