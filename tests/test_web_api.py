"""The web console's HTTP/JSON API, as curl would use it: filters, descriptions, calls, the error table,
the change stream, /openapi.json, cross-site refusals, tokens, and its place in `lonja up`."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import urllib.request

import pytest
from test_web_kit import request, start_web

from harness import PYTHON, Lonja, clean_env, free_port, ns_address, wait_until
from lonja.clients import NameServerClient

URI = "PYRO:obj@127.0.0.1:1"
ADMIN, SHOP = "rootsecret1", "shopsecret1"
AUTH = {"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_ADMIN_TOKENS": f"root:{ADMIN}",
        "LONJA_AUTH_SERVICE_TOKENS": f"shop:{SHOP}"}


@pytest.fixture
def web(lonja: Lonja, ns: str, echo) -> str:
    """`lonja web` for a name server with the echo service, a few plain registrations and `ghost`, leased
    (so never probed) at an address where nothing listens: its base URL."""
    with NameServerClient(ns) as client:
        client.register("shop.orders", URI, {"team:shop", "tier:gold"})
        client.register("shop.stock", URI, {"team:shop"})
        client.register("bank.ledger", URI, {"team:bank", "tier:gold"})
        client.register_instance("ghost", f"PYRO:obj@127.0.0.1:{free_port()}", ttl=300)
    return start_web(lonja, ns)[1]


def names(url: str, query: str = "") -> list[str]:
    status, _, body = request(f"{url}/api/names{query}")
    assert status == 200, body
    assert body["count"] == len(body["names"])
    return sorted(body["names"])


def test_names_filters_like_lonja_ls(web):
    assert {"echo", "shop.orders", "shop.stock", "bank.ledger", "Pyro.NameServer"} <= set(names(web))
    assert names(web, "?prefix=shop.") == ["shop.orders", "shop.stock"]
    assert names(web, "?glob=[bs]*.*r*") == ["bank.ledger", "shop.orders"]
    assert names(web, "?regex=b.*r$") == ["bank.ledger"]
    assert names(web, "?meta_all=team:shop&meta_all=tier:gold") == ["shop.orders"]
    assert names(web, "?meta_all=team:shop,tier:gold") == ["shop.orders"]
    assert names(web, "?meta_any=team:bank&meta_any=tier:gold") == ["bank.ledger", "shop.orders"]
    assert names(web, "?status=serving&prefix=e") == ["echo"]
    assert names(web, "?prefix=shop.&status=serving") == []
    assert names(web, "?pattern=shop.") == ["shop.orders", "shop.stock"]
    assert names(web, "?pattern=*.ledger") == ["bank.ledger"]
    assert names(web, "?status=serving,unknown&status=unreachable&prefix=s") == ["shop.orders", "shop.stock"]
    status, _, body = request(f"{web}/api/names?status=sleeping")
    assert (status, body["error"]["type"]) == (400, "UsageError")


def test_one_name_has_instances_and_description(web):
    status, _, body = request(f"{web}/api/names/echo")
    assert status == 200, body
    assert body["instances"][0]["status"] == "serving" and body["instances"][0]["uri"].startswith("PYRO:echo@")
    description = body["description"]
    assert description["class"] == "lonja.services.builtin.echo.Echo"
    assert description["doc"].startswith("Returns what it is given")
    assert description["methods"]["count"]["generator"] is True
    assert description["methods"]["notify"]["oneway"] is True
    assert description["methods"]["echo"]["idempotent"] is True
    assert description["methods"]["slow"]["signature"] == "(seconds: float = 1.0, value: Any = None) -> Any"
    assert "notified" in description["attributes"]
    status, _, body = request(f"{web}/api/names/ghost")  # nothing listens there: the entry, no description
    assert status == 200 and body["description"] is None
    assert body["description_error"]["type"] == "ServiceUnreachable"


def call(url: str, target: str, body: dict, **options) -> tuple[int, dict]:
    status, _, answer = request(f"{url}/api/call/{target}", "POST", body, **options)
    return status, answer


def test_calls_take_json_or_lonja_call_words(web):
    assert call(web, "echo.echo", {"args": [{"a": [1, 2]}]}) == (200, {
        "result": {"a": [1, 2]}, "repr": "{'a': [1, 2]}", "uri": call(web, "echo.echo", {})[1]["uri"],
        "generator": False, "oneway": False})
    assert call(web, "echo.notify", {"args": [1]})[1]["oneway"] is True
    status, answer = call(web, "echo.echo", {"text": "{'a': (1, 2)}"})
    assert (status, answer["repr"], answer["result"]) == (200, "{'a': [1, 2]}", {"a": [1, 2]})  # msgpack: a list
    assert call(web, "echo.echo", {"text": "value=true"})[1]["result"] is True  # JSON where no Python literal
    assert call(web, "echo.echo", {"text": "'two words'"})[1]["result"] == "two words"
    assert call(web, "echo.echo", {"argv": ["hello"]})[1]["repr"] == "'hello'"
    assert call(web, "echo.slow", {"kwargs": {"seconds": 0, "value": 7}})[1]["result"] == 7


def test_a_generator_streams_json_lines(web):
    status, headers, text = request(f"{web}/api/call/echo.count", "POST", {"text": "3 delay=0.1"})
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines == [{"item": 0, "repr": "0"}, {"item": 1, "repr": "1"}, {"item": 2, "repr": "2"},
                     {"end": True, "count": 3}]


ERRORS = [
    ("bad JSON", "echo.echo", {"raw": b"{not json"}, 400, "UsageError"),
    ("no NAME.METHOD", "echo", {"body": {}}, 400, "UsageError"),
    ("unknown method", "echo.nope", {"body": {}}, 400, "UsageError"),
    ("bad arguments", "echo.slow", {"body": {"args": [1, 2, 3]}}, 400, "ArgumentMismatch"),
    ("unknown field", "echo.echo", {"body": {"arguments": []}}, 400, "UsageError"),
    ("unknown name", "nobody.echo", {"body": {}}, 404, "NameNotFound"),
    ("remote error", "echo.fail", {"body": {"args": ["out of stock"]}}, 422, "RemoteError"),
    ("service unreachable", "ghost.echo", {"body": {"timeout": 3}}, 502, "ServiceUnreachable"),
    ("timeout", "echo.slow", {"body": {"args": [5], "timeout": 0.3}}, 504, "CallTimeout"),
    ("not JSON", "echo.echo", {"raw": b"value=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
     415, "UnsupportedMediaType"),
    ("cross-site", "echo.echo", {"body": {}, "headers": {"Origin": "http://evil.example"}}, 403, "CrossSiteRequest"),
]


@pytest.mark.parametrize(("target", "options", "status", "kind"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_each_failure_has_its_status_every_time(web, target, options, status, kind):
    raw = options.get("raw")
    headers = {"Content-Type": "application/json", **options.get("headers", {})}
    for _ in range(2):
        got, _, body = request(f"{web}/api/call/{target}", "POST", options.get("body"), headers=headers, raw=raw)
        assert got == status, body
        assert body["error"]["status"] == status and body["error"]["message"]
        if kind:
            assert body["error"]["type"] == kind
        assert set(body["error"]) >= {"type", "message", "status", "exit_code"}


def test_a_remote_error_says_its_type_and_where_it_was_raised(web):
    status, body = call(web, "echo.fail", {"text": "'out of stock'"})
    error = body["error"]
    assert (status, error["remote_type"], error["remote_message"]) == (
        422, "lonja.services.builtin.echo.EchoError", "out of stock")
    assert error["exit_code"] == 1
    assert error["location"]["uri"].startswith("PYRO:echo@127.0.0.1:")
    assert error["location"]["file"].endswith("echo.py") and error["location"]["function"] == "fail"


def test_unknown_paths_and_methods_answer_json(web):
    status, _, body = request(f"{web}/api/nothing")
    assert (status, body["error"]["type"]) == (404, "NotFound")
    status, _, body = request(f"{web}/api/names/nobody")
    assert (status, body["error"]["type"]) == (404, "NameNotFound")
    status, _, body = request(f"{web}/api/names/echo", "DELETE")
    assert status == 405 and body["error"]["status"] == 405


def test_name_server_down_is_503(lonja, ns):
    url = start_web(lonja, ns)[1]
    lonja.processes[0].stop()
    for _ in range(2):
        status, _, body = request(f"{url}/api/names")
        assert (status, body["error"]["type"], body["error"]["exit_code"]) == (503, "NameServerUnreachable", 3)


def test_cross_site_requests_cannot_call(web):
    def last() -> object:
        return call(web, "echo.last", {})[1]["result"]

    refused = [
        {"headers": {"Origin": "http://evil.example"}},
        {"headers": {"Sec-Fetch-Site": "cross-site"}},
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"Host": "evil.example"}},
    ]
    for options in refused:
        status, body = call(web, "echo.notify", {"args": ["pwned"]}, **options)
        assert status in (403, 415), (options, body)
    assert last() != "pwned"
    port = web.rsplit(":", 1)[1]
    status, body = call(web, "echo.notify", {"args": ["mine"]}, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200, body
    assert wait_until(lambda: last() == "mine")
    status, headers, _ = request(f"{web}/api/names", "OPTIONS", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 405 and not any(h.lower().startswith("access-control-") for h in headers)
    status, headers, _ = request(f"{web}/")
    assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_openapi_describes_the_api(web):
    status, _, spec = request(f"{web}/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert {"/api/names", "/api/names/{name}", "/api/call/{target}", "/api/changes",
            "/api/changes/stream", "/api/whoami"} <= set(spec["paths"])
    responses = spec["paths"]["/api/call/{target}"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "415", "422", "502", "503", "504"} <= set(responses)


def read_events(url: str, token: str = "") -> tuple[queue.Queue, threading.Event]:
    """Read the change stream in a thread: (queue of (event, data), a flag set once it answered)."""
    events: queue.Queue = queue.Queue()
    opened = threading.Event()

    def reader() -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(f"{url}/api/changes/stream", headers=headers)
        with urllib.request.urlopen(req, timeout=60) as response:
            opened.set()
            kind = ""
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.put((kind, json.loads(line[6:])))

    threading.Thread(target=reader, daemon=True).start()
    return events, opened


def wait_event(events: queue.Queue, predicate, timeout: float = 20.0) -> dict:
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            try:
                kind, data = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if predicate(kind, data):
                return data
    finally:
        timer.cancel()
    raise AssertionError("no such event")


def test_change_stream_gets_registrations(web, ns):
    events, opened = read_events(web)
    assert opened.wait(20)
    wait_event(events, lambda kind, data: kind == "ns" and data["up"])
    with NameServerClient(ns) as client:
        client.register("fresh.one", URI, {"team:new"})
        change = wait_event(events, lambda kind, data: kind == "change" and data["name"] == "fresh.one")
        assert change["kind"] == "added" and change["uri"] == URI
        client.remove("fresh.one")
        wait_event(events, lambda kind, data: kind == "change" and data["kind"] == "removed")
    status, _, recent = request(f"{web}/api/changes?limit=10")
    assert status == 200 and [e["kind"] for e in recent["events"] if e["name"] == "fresh.one"] == ["added", "removed"]


def test_calls_need_a_token_when_the_name_server_checks_them(lonja):
    lonja.env.update(AUTH)
    _, ns = lonja.nameserver()
    lonja.start("serve", "echo", "--ns", ns, env={"LONJA_AUTH_TOKEN": SHOP})
    url = start_web(lonja, ns, env={"LONJA_AUTH_TOKEN": ADMIN})[1]  # the console never lends its own token
    assert "echo" in names(url)  # anonymous reading, as the name server allows
    status, body = call(url, "echo.echo", {"args": ["hi"]})
    assert (status, body["error"]["type"], body["error"]["exit_code"]) == (401, "TokenRequired", 5)
    status, body = call(url, "echo.echo", {"args": ["hi"]}, token="not-a-token")
    assert (status, body["error"]["type"]) == (403, "AccessDenied")
    status, body = call(url, "echo.echo", {"args": ["hi"]}, token=SHOP)
    assert (status, body["result"]) == (200, "hi"), body
    assert request(f"{url}/api/whoami", token=SHOP)[2] == {"who": "shop", "role": "service"}
    assert request(f"{url}/api/whoami")[2] == {"who": "anonymous", "role": "reader"}


def test_up_serves_the_console_unless_told_not_to(lonja):
    port = free_port()
    up = lonja.start("up", "--port", "0", "--storage", "memory", "--web-port", str(port))
    url = up.wait_for("web console at ").split(" at ", 1)[1].rstrip("/")
    assert url == f"http://127.0.0.1:{port}"
    assert "echo" in names(url)
    assert call(url, "echo.echo", {"args": [5]})[1]["result"] == 5
    assert up.stop() == 0 and "stopped" in up.output()
    quiet = lonja.start("up", "--port", "0", "--storage", "memory", "--no-web")
    assert "web console" not in quiet.output()
    ns_address(quiet)


WITHOUT_WEB = """
import sys

class NoWeb:
    '''As if the `web` extra were not installed.'''
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("starlette", "uvicorn"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoWeb())
from lonja.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_the_web_extra(lonja, tmp_path):
    up = subprocess.Popen([PYTHON, "-c", WITHOUT_WEB, "up", "--port", "0", "--storage", "memory", "--web-port", "0"],
                          env=clean_env(tmp_path), cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert up.stdout is not None
        lines = [up.stdout.readline() for _ in range(4)]
        assert "web console off: the web extra is not installed (pip install 'lonja[web]')\n" in lines, lines
        assert any(line.startswith("serving echo at ") for line in lines), lines
    finally:
        up.kill()
        up.wait(10)
    result = subprocess.run([PYTHON, "-c", WITHOUT_WEB, "web", "--port", "0"], env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "pip install 'lonja[web]'" in result.stderr


IMPORTS = """
import sys
from lonja.cli import main
code = main(sys.argv[1:])
print("web framework loaded:", sorted(m for m in ("starlette", "uvicorn", "fastapi") if m in sys.modules))
"""


def test_help_and_call_do_not_load_the_web_framework(lonja, ns, echo, tmp_path):
    for argv in (["--help"], ["call", "echo.echo", "hi", "--ns", ns]):
        result = subprocess.run([sys.executable, "-c", IMPORTS, *argv], env=clean_env(tmp_path), capture_output=True,
                                text=True, timeout=60)
        assert "web framework loaded: []" in result.stdout, result.stdout + result.stderr


def test_web_port_in_use_is_exit_4(lonja, ns):
    _, url = start_web(lonja, ns)
    port = url.rsplit(":", 1)[1]
    result = lonja.run("web", "--ns", ns, "--port", port)
    assert result.returncode == 4 and "cannot listen on 127.0.0.1:" + port in result.stderr, result.stderr
