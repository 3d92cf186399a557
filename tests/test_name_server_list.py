"""Several name servers: `LONJA_NS=a:9090,b:9090`, `--ns` repeated, `ns.fallbacks`; clients use the first
that answers, service hosts register with every one. Real processes on 127.0.0.1 (the same across hosts,
and discovery, run in network namespaces: tests/test_multihost.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness import Lonja, free_port, wait_until
from lonja.clients.naming import NameServerClient
from lonja.config import ConfigError, load_settings, parse_addresses


def test_lonja_ns_with_several_addresses_sets_host_port_and_fallbacks():
    settings = load_settings(environ={"LONJA_NS": "10.0.0.1:9100, [::1]:9200,10.0.0.3"})
    assert (settings["ns.host"], settings["ns.port"]) == ("10.0.0.1", 9100)
    assert settings["ns.fallbacks"] == ["[::1]:9200", "10.0.0.3:9090"]
    assert {settings.source(key) for key in ("ns.host", "ns.port", "ns.fallbacks")} == {"env LONJA_NS"}
    assert settings.ns_address == "10.0.0.1:9100,[::1]:9200,10.0.0.3:9090"
    assert settings.ns_addresses == [("10.0.0.1", 9100), ("::1", 9200), ("10.0.0.3", 9090)]


def test_a_single_address_keeps_working_and_clears_fallbacks_of_an_earlier_layer(tmp_path: Path):
    user = tmp_path / "lonja.toml"
    user.write_text('[ns]\nfallbacks = ["10.0.0.9:9090"]\n')
    from_file = load_settings(user, environ={})
    assert from_file.ns_address == "127.0.0.1:9090,10.0.0.9:9090"
    single = load_settings(user, environ={"LONJA_NS": "10.0.0.1:9100"})
    assert single.ns_address == "10.0.0.1:9100" and single["ns.fallbacks"] == []
    assert single.source("ns.fallbacks") == "env LONJA_NS"


@pytest.mark.parametrize(("environ", "expected"), [
    ({"LONJA_NS": "a:9090,b:http"}, "invalid port 'http' in 'b:http' from LONJA_NS"),
    ({"LONJA_NS": " , "}, "no address in ' , ' from LONJA_NS"),
    ({"LONJA_NS_FALLBACKS": "a:1,b:x"}, "for ns.fallbacks from env LONJA_NS_FALLBACKS: expected HOST[:PORT] "
                                        "entries ('b:x' is not one)"),
    ({"LONJA_NS_DISCOVER": "sometimes"}, "ns.discover from env LONJA_NS_DISCOVER: expected true or false"),
    ({"LONJA_NS_CORRECT_URIS": "2"}, "ns.correct_uris from env LONJA_NS_CORRECT_URIS: expected true or false"),
])
def test_bad_name_server_lists_are_settings_errors(environ: dict[str, str], expected: str):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert expected in str(caught.value)


def test_repeats_are_dropped_and_order_is_kept():
    assert parse_addresses(["b:1", "a:1,b:1", "a"], "x") == [("b", 1), ("a", 1), ("a", 9090)]


def test_discovery_and_correction_are_off_by_default():
    settings = load_settings(environ={})
    assert (settings["ns.discover"], settings["ns.correct_uris"], settings["ns.fallbacks"]) == (False, False, [])


def test_ns_repeated_before_and_after_the_command_keeps_every_address(lonja: Lonja):
    shown = lonja.run("--ns", "10.0.0.1:9100", "config", "show", "--json", "--ns", "10.0.0.2", "--ns", "10.0.0.3:1,x")
    values = json.loads(shown.stdout)
    assert values["ns.host"] == {"value": "10.0.0.1", "source": "flag --ns"}, shown.stdout
    assert values["ns.fallbacks"] == {"value": ["10.0.0.2:9090", "10.0.0.3:1", "x:9090"], "source": "flag --ns"}
    bad = lonja.run("ls", "--ns", "10.0.0.1:9100", "--ns", "10.0.0.2:0")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--ns" in bad.stderr, bad.stderr


def test_clients_use_the_first_name_server_that_answers(lonja: Lonja, ns: str):
    down = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    pinged = lonja.run("ping", "--ns", down, "--ns", ns)
    elapsed = time.monotonic() - started
    assert pinged.returncode == 0 and f"name server at {ns} is up" in pinged.stdout, pinged.stdout + pinged.stderr
    assert elapsed < 15, f"`lonja ping` past a refusing name server took {elapsed:.2f} s"
    listed = lonja.run("ls", env={"LONJA_NS": f"{down},{ns}"})
    assert listed.returncode == 0 and "Pyro.NameServer" in listed.stdout, listed.stdout + listed.stderr
    with NameServerClient(f"{down},{ns}", token="") as client:
        assert client.count() >= 1 and client.address == ns


def test_when_none_answers_the_error_lists_every_one_tried(lonja: Lonja):
    first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    result = lonja.run("ls", "--ns", first, "--ns", second)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stderr
    assert f"{first} (connection refused), {second} (connection refused)" in lines[0], lines[0]
    assert "lonja ns" in lines[0] and "ns.discover" in lines[0], lines[0]


def test_a_host_registers_with_every_name_server_even_one_that_starts_later(lonja: Lonja, ns: str):
    later = free_port()
    second = f"127.0.0.1:{later}"
    lease = {"LONJA_NS_LEASE_TTL": "3"}
    echo = lonja.start("serve", "echo", "--ns", ns, "--ns", second, env=lease)
    uri = echo.wait_for("serving echo at ").split(" at ", 1)[1].strip()
    with NameServerClient(ns, token="") as first:
        assert first.instances("echo") == [uri]
    lonja.nameserver(port=later)
    with NameServerClient(second, token="") as client:
        def registered() -> list[str]:
            try:
                return client.instances("echo")
            except Exception:
                return []

        assert wait_until(lambda: registered() == [uri], 15), echo.output()
    assert echo.stop() == 0
    with NameServerClient(f"{ns},{second}", token="") as client:
        assert "echo" not in client.list(), "a stopping host removes its names from every name server"
