"""The `lonja` command as a user runs it: up, ls, show, call, ping, and its exit codes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

from harness import PYTHON, free_port, ns_address, wait_until


def test_up_ls_show_call_ping(lonja):
    up = lonja.start("up", "--port", "0", "--no-web")
    ns = ns_address(up)
    assert f"name server listening on PYRO:Pyro.NameServer@{ns}" in up.output()
    assert "serving echo at PYRO:echo@127.0.0.1:" in up.output()

    listing = lonja.run("ls", "--ns", ns)
    assert listing.returncode == 0, listing.stderr
    assert "echo" in listing.stdout and "Pyro.NameServer" in listing.stdout

    entries = json.loads(lonja.run("ls", "--json", "--ns", ns).stdout)
    assert entries["echo"]["uri"].startswith("PYRO:echo@127.0.0.1:")
    assert "lonja:builtin" in entries["echo"]["metadata"]

    show = lonja.run("show", "echo", "--ns", ns)
    assert show.returncode == 0, show.stderr
    assert "slow(seconds: float = 1.0, value: Any = None) -> Any" in show.stdout
    assert "notify(value: Any = None) -> None  [oneway]" in show.stdout
    assert "Sleep `seconds`, then return `value`" in show.stdout
    assert "notified: int  [read-only]" in show.stdout

    described = json.loads(lonja.run("show", "echo", "--json", "--ns", ns).stdout)
    assert described["methods"]["notify"]["oneway"] is True
    assert described["methods"]["slow"]["params"][0] == {
        "name": "seconds", "kind": "positional_or_keyword", "default": "1.0", "annotation": "float"}

    call = lonja.run("call", "echo.echo", "hello", "--ns", ns)
    assert (call.returncode, call.stdout) == (0, "'hello'\n")
    call = lonja.run("call", "echo.echo", "value={'a': [1, 2.5, None]}", "--json", "--ns", ns)
    assert json.loads(call.stdout) == {"a": [1, 2.5, None]}
    call = lonja.run("call", "echo.slow", "0", "value=not a literal", "--ns", ns)
    assert call.stdout == "'not a literal'\n"
    call = lonja.run("call", "echo.echo", '{"on": true, "off": null}', "--ns", ns)  # JSON where no Python literal
    assert call.stdout == "{'on': True, 'off': None}\n"

    ping = lonja.run("ping", "--ns", ns)
    assert ping.returncode == 0 and f"name server at {ns} is up" in ping.stdout
    ping = lonja.run("ping", "echo", "--ns", ns)
    assert ping.returncode == 0 and "echo at PYRO:echo@127.0.0.1:" in ping.stdout and "ms" in ping.stdout

    assert up.stop(signal.SIGINT) == 0
    assert "stopped" in up.output()


def test_name_server_and_host_stop_on_sigint_without_a_traceback_after_serving_clients(lonja):
    server, ns = lonja.nameserver()
    host = lonja.start("serve", "echo", "--ns", ns)
    assert lonja.run("call", "echo.echo", "hi", "--ns", ns).returncode == 0
    assert lonja.run("ls", "--ns", ns).returncode == 0
    for process in (host, server):
        assert process.stop(signal.SIGINT) == 0
        output = process.final_output()
        assert "Traceback" not in output and "Exception ignored" not in output, output


def test_generator_prints_items_as_they_arrive(lonja, ns, echo):
    process = lonja.start("call", "echo.count", "3", "delay=0.3", "--ns", ns, ready=None)
    assert process.wait_for("0", timeout=20) == "0"
    assert process.proc.poll() is None, "the first item printed before the stream ended"
    assert process.proc.wait(20) == 0
    assert process.output().splitlines() == ["0", "1", "2"]


def test_remote_exception_exit_1_with_type_and_message(lonja, ns, echo):
    result = lonja.run("call", "echo.fail", "out of stock", "--ns", ns)
    assert result.returncode == 1
    assert re.fullmatch(r"lonja: remote error: lonja\.services\.builtin\.echo\.EchoError: out of stock "
                        r"\(echo\.py line \d+, in fail\)", result.stderr.strip()), result.stderr
    assert "Traceback" not in result.stderr
    debug = lonja.run("call", "echo.fail", "x", "--ns", ns, "--debug")
    assert debug.returncode == 1 and "remote traceback:" in debug.stderr and "raise EchoError" in debug.stderr


def test_bad_arguments_exit_2(lonja, ns, echo):
    for args, expected in [
        (["call", "echo"], "expected NAME.METHOD"),
        (["call", "echo.nope"], "echo has no method 'nope'"),
        (["call", "echo.slow", "1", "2", "3"], "too many positional arguments"),
        (["call", "echo.echo", "value=1", "2"], "positional argument '2' after a KEY=VALUE"),
        (["call", "echo.echo", "--timeout", "soon"], "invalid float value"),
        (["frobnicate"], "invalid choice"),
        (["ls", "--ns", "a:b:c"], "invalid address 'a:b:c'"),
    ]:
        result = lonja.run(*args, "--ns", ns) if "--ns" not in args else lonja.run(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_unknown_name_exit_3(lonja, ns):
    result = lonja.run("call", "nosuch.method", "--ns", ns)
    assert result.returncode == 3
    assert "no service is registered as 'nosuch'" in result.stderr and "lonja ls" in result.stderr


def test_name_server_down_exit_3_fast(lonja):
    port = free_port()
    for args in (["ls"], ["call", "echo.echo", "1"], ["ping"], ["show", "echo"]):
        started = time.monotonic()
        result = lonja.run(*args, "--ns", f"127.0.0.1:{port}")
        elapsed = time.monotonic() - started
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"no name server answers at 127.0.0.1:{port}" in result.stderr
        assert elapsed < 2.0 + 1.5  # 2 s bar plus interpreter start-up on a loaded CI machine


def test_killed_service_exit_3_clear_message(lonja, ns, echo):
    assert lonja.run("call", "echo.echo", "1", "--ns", ns).returncode == 0
    echo.stop(signal.SIGKILL)
    result = lonja.run("call", "echo.echo", "1", "--ns", ns)
    assert result.returncode == 3
    # the name server has usually seen the host's session close (then: no serving instance) before the call
    assert ("service 'echo' at PYRO:echo@127.0.0.1:" in result.stderr and "does not answer" in result.stderr) or \
        "service 'echo' does not answer: no serving instance of echo (1 not serving)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    ping = lonja.run("ping", "echo", "--ns", ns)
    assert ping.returncode == 3


def test_timeout_exit_3(lonja, ns, echo):
    result = lonja.run("call", "echo.slow", "5", "--timeout", "0.3", "--ns", ns)
    assert result.returncode == 3
    assert "did not answer within 0.3 s" in result.stderr


def test_oneway_call_returns_at_once_and_runs(lonja, ns, echo):
    result = lonja.run("call", "echo.notify", "'hi'", "--ns", ns)
    assert (result.returncode, result.stdout) == (0, "")
    assert wait_until(lambda: lonja.run("call", "echo.last", "--ns", ns).stdout == "'hi'\n")


def test_async_method_through_cli(lonja, ns, echo):
    result = lonja.run("call", "echo.wait", "0.01", "value=done", "--ns", ns)
    assert (result.returncode, result.stdout) == (0, "'done'\n")


def test_help_and_no_command(lonja):
    assert lonja.run("--help").returncode == 0
    result = lonja.run()
    assert result.returncode == 2 and "usage: lonja" in result.stdout


def test_shell_has_a_proxy_per_name(lonja, ns, echo):
    script = "print('got', echo.echo(41) + 1)\nprint(sorted(services))\nprint('slow' in dir(echo))\n"
    result = subprocess.run([PYTHON, "-m", "lonja", "shell", "--ns", ns], input=script, capture_output=True,
                            text=True, timeout=60, env=lonja.env, cwd=lonja.tmp_path)
    assert result.returncode == 0, result.stderr
    assert "got 42" in result.stdout and "['echo']" in result.stdout and "True" in result.stdout
    assert f"lonja shell on {ns}: proxies echo" in result.stderr + result.stdout
