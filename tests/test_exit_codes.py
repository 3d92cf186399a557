"""The `lonja` command's exit codes and its one line on stderr, case by case; and the error tree behind them.

Each case of the table names a command built from what the test set up (a name server, the echo service,
a port taken, a name server at its connection limit, ...), the exit code, and the first line of stderr.
"""

from __future__ import annotations

import importlib
import re
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from functools import cached_property

import Pyro5.api
import Pyro5.errors
import pytest

from harness import PYTHON, Lonja, free_port
from lonja import exits
from lonja.config.errors import LonjaError
from lonja.config.wire import REMOTE_TYPE, RemoteError, exception_to_dict, remote_error_from

AUTH = {"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_ADMIN_TOKENS": "root:rootsecret1"}
ONE_CONNECTION = {"LONJA_LIMITS_MAX_CONNECTIONS": "1"}
GREETER = textwrap.dedent('''
    class Greeter:
        def hello(self) -> str:
            return "hello"
''')


class Setup:
    """What a case needs, started on first use and stopped by the `lonja` fixture (or `close`)."""

    def __init__(self, lonja: Lonja) -> None:
        self.lonja = lonja
        self._held: list[Pyro5.api.Proxy] = []
        self._listeners: list[socket.socket] = []

    @cached_property
    def ns(self) -> str:
        return self.lonja.nameserver()[1]

    @cached_property
    def ns_port(self) -> str:
        return self.ns.split(":")[1]

    @cached_property
    def _echo_banner(self) -> str:
        return self.lonja.start("serve", "echo", "--ns", self.ns).wait_for("serving echo at")

    @property
    def echo(self) -> str:
        """The echo service's name (it is registered in `ns`)."""
        return self._echo_banner.split()[1]

    @property
    def echo_address(self) -> str:
        """Where the echo service listens: "127.0.0.1:PORT"."""
        return self._echo_banner.split("@", 1)[1]

    @cached_property
    def greeter(self) -> str:
        """A service class of the test's own, as a TARGET for `lonja serve`."""
        (self.lonja.tmp_path / "greeting.py").write_text(GREETER)
        return "greeting:Greeter"

    @cached_property
    def secured_ns(self) -> str:
        return self._nameserver(AUTH)

    @cached_property
    def full_ns(self) -> str:
        """A name server at its limit of one connection, which this test holds."""
        address = self._nameserver(ONE_CONNECTION)
        self._hold(f"PYRO:Pyro.NameServer@{address}")
        return address

    @cached_property
    def full_service(self) -> str:
        """The name of an echo service at its limit of one connection, which this test holds."""
        line = self.lonja.start("serve", "echo", "--name", "full.echo", "--ns", self.ns,
                                env=ONE_CONNECTION).wait_for("serving full.echo at")
        self._hold(line.split(" at ", 1)[1])
        return "full.echo"

    @cached_property
    def garbage(self) -> str:
        """A TCP listener that answers every connection with an HTTP error and hangs up."""
        listener = socket.create_server(("127.0.0.1", 0))
        self._listeners.append(listener)
        threading.Thread(target=_answer_garbage, args=(listener,), daemon=True).start()
        return f"127.0.0.1:{listener.getsockname()[1]}"

    @cached_property
    def nothing(self) -> str:
        return f"127.0.0.1:{free_port()}"

    def close(self) -> None:
        for proxy in self._held:
            proxy._pyroRelease()
        for listener in self._listeners:
            listener.close()

    def _nameserver(self, env: dict[str, str]) -> str:
        process = self.lonja.start("ns", "--host", "127.0.0.1", "--port", "0", "--storage", "memory",
                                   ready="name server listening", env=env)
        return process.wait_for("name server listening").split("@", 1)[1].split()[0]

    def _hold(self, uri: str) -> None:
        proxy = Pyro5.api.Proxy(uri)
        proxy._pyroBind()
        self._held.append(proxy)


def _answer_garbage(listener: socket.socket) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def setup(lonja: Lonja) -> Iterator[Setup]:
    world = Setup(lonja)
    yield world
    world.close()


Command = Callable[[Setup], list[str]]

CASES: list[tuple[str, Command, dict[str, str], int, str]] = [
    # (case, command, extra environment, exit code, first line of stderr as a regex)
    ("serve: port in use", lambda s: ["serve", "echo", "--ns", s.ns, "--port", s.ns_port], {},
     4, r"lonja: error: port \d+ on 127\.0\.0\.1 is already in use: use --port to pick another"),
    ("ns: port in use", lambda s: ["ns", "--host", "127.0.0.1", "--port", s.ns_port, "--storage", "memory"], {},
     4, r"lonja: error: port \d+ on 127\.0\.0\.1 is already in use: is another name server running\?"),
    ("up: port in use",
     lambda s: ["up", "--host", "127.0.0.1", "--port", s.ns_port, "--storage", "memory", "--no-web"], {},
     4, r"lonja: error: port \d+ on 127\.0\.0\.1 is already in use: is another name server running\?"),
    ("serve: name taken by another class", lambda s: ["serve", s.greeter, "--name", s.echo, "--ns", s.ns], {},
     4, (r"lonja: error: the name 'echo' is already served by PYRO:echo@127\.0\.0\.1:\d+ "
         r"\(lonja\.services\.builtin\.echo\.Echo\): stop that server")),
    ("--ns at a service's port", lambda s: ["ls", "--ns", s.echo_address], {},
     3, r"lonja: error: no name server at 127\.0\.0\.1:\d+ \(something else answered: a Pyro5 server"),
    ("--ns at a listener that answers garbage", lambda s: ["ls", "--ns", s.garbage], {},
     3, r"lonja: error: no name server at 127\.0\.0\.1:\d+ \(something else answered: it does not speak Pyro5\)"),
    ("--ns where nothing listens", lambda s: ["ls", "--ns", s.nothing], {},
     3, r"lonja: error: no name server answers at 127\.0\.0\.1:\d+: start one with `lonja up`"),
    ("--ns HOST without a port is HOST:9090", lambda s: ["ls", "--ns", "127.0.0.3"], {},
     3, r"lonja: error: no name server answers at 127\.0\.0\.3:9090:"),
    ("--ns a:b:c", lambda s: ["ls", "--ns", "a:b:c"], {},
     2, r"lonja: error: invalid address 'a:b:c' from --ns: expected HOST or HOST:PORT"),
    ("--ns host:notaport", lambda s: ["ls", "--ns", "host:notaport"], {},
     2, r"lonja: error: invalid port 'notaport' in 'host:notaport' from --ns: a port is a number 1\.\.65535"),
    ("unknown name", lambda s: ["call", "nosuch.echo", "--ns", s.ns], {},
     3, r"lonja: error: no service is registered as 'nosuch'"),
    ("unknown method", lambda s: ["call", f"{s.echo}.nope", "--ns", s.ns], {},
     2, r"lonja: error: echo has no method 'nope'; it has: "),
    ("bad arguments", lambda s: ["call", f"{s.echo}.echo", "1", "2", "--ns", s.ns], {},
     2, r"lonja: error: bad arguments for echo\.echo\(value: Any = None\) -> Any: too many positional"),
    ("remote exception", lambda s: ["call", f"{s.echo}.fail", "out of stock", "--ns", s.ns], {},
     1, r"lonja: remote error: lonja\.services\.builtin\.echo\.EchoError: out of stock "
        r"\(echo\.py line \d+, in fail\)$"),
    ("remote builtin exception", lambda s: ["call", f"{s.echo}.slow", "'soon'", "--ns", s.ns], {},
     1, r"lonja: remote error: TypeError: "),
    ("wrong token", lambda s: ["ls", "--ns", s.secured_ns], {"LONJA_AUTH_TOKEN": "wrongsecret1"},
     5, r"lonja: access denied: the name server at 127\.0\.0\.1:\d+ refused the connection: invalid token"),
    ("name server at its connection limit", lambda s: ["ls", "--ns", s.full_ns], {},
     3, r"lonja: error: the name server at 127\.0\.0\.1:\d+ is busy: too many connections \(1\)"),
    ("service at its connection limit", lambda s: ["call", f"{s.full_service}.echo", "1", "--ns", s.ns], {},
     3, (r"lonja: error: service 'full\.echo' at PYRO:full\.echo@127\.0\.0\.1:\d+ refused the connection: "
         r"too many connections \(1\)")),
]


@pytest.mark.parametrize("command, env, code, first_line", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_exit_code_and_one_line(setup: Setup, lonja: Lonja, command: Command, env: dict[str, str], code: int,
                                first_line: str) -> None:
    args = command(setup)
    if "127.0.0.3" in args:
        _skip_if_something_listens("127.0.0.3", 9090)
    result = lonja.run(*args, env=env)
    assert result.returncode == code, result.stderr
    assert re.match(first_line, result.stderr), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def _skip_if_something_listens(host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return
    pytest.skip(f"something listens on {host}:{port} on this machine")


def test_output_into_a_reader_that_stops_ends_quietly_with_141(lonja: Lonja, ns: str, echo) -> None:
    """`lonja call echo.count 100 | head -2`: exit 141 (128 + SIGPIPE, as for any command cut off by its
    reader), nothing on stderr. Items come every 0.2 s, so the pipe is closed long before the last one."""
    process = subprocess.Popen([PYTHON, "-m", "lonja", "call", "echo.count", "100", "delay=0.2", "--ns", ns],
                               env=lonja.env, cwd=lonja.tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stderr is not None
    assert [process.stdout.readline(), process.stdout.readline()] == ["0\n", "1\n"]
    process.stdout.close()
    try:
        assert process.wait(timeout=60) == exits.BROKEN_PIPE
    finally:
        process.kill()
    assert process.stderr.read() == ""


# -- the error tree behind the codes ---------------------------------------------------------------------

DOCUMENTED = {exits.REMOTE_ERROR, exits.USAGE, exits.UNREACHABLE, exits.IN_USE, exits.DENIED, exits.INTERNAL}
PACKAGES = ("lonja.config.errors", "lonja.config.wire", "lonja.clients.errors", "lonja.services.errors",
            "lonja.nameserver.errors")


def _tree(root: type) -> Iterator[type]:
    for child in root.__subclasses__():
        yield child
        yield from _tree(child)


def test_every_lonja_error_carries_a_documented_code() -> None:
    for module in PACKAGES:
        importlib.import_module(module)
    classes = set(_tree(LonjaError))
    assert {"NameTaken", "ConfigError", "AccessDenied", "RemoteError", "StorageError", "ServiceLoadError",
            "NameAlreadyServed", "CallTimeout", "MessageTooLarge"} <= {kind.__name__ for kind in classes}
    for kind in classes:
        assert kind.exit_code in DOCUMENTED, kind
        assert exits.exit_code(kind.__new__(kind)) == kind.exit_code
    assert exits.exit_code(KeyError("a bug")) == exits.INTERNAL
    assert exits.exit_code(KeyboardInterrupt()) == exits.INTERRUPTED


def test_a_remote_builtin_is_caught_as_that_builtin() -> None:
    class OutOfStock(ValueError):
        pass

    try:
        raise OutOfStock("no more")
    except OutOfStock as exc:
        wire = exception_to_dict(exc)
    assert wire["__class__"] == "builtins.ValueError", "a plain Pyro5 client gets the nearest builtin"
    arrived = ValueError(*wire["args"])
    setattr(arrived, REMOTE_TYPE, wire["attributes"][REMOTE_TYPE])
    error = remote_error_from(arrived)
    assert isinstance(error, ValueError) and isinstance(error, RemoteError)
    assert error.remote_type.endswith("OutOfStock") and error.message == "no more"
    assert exits.exit_code(error) == exits.REMOTE_ERROR


IMPORT_ORDERS = [("lonja.services.daemon", "lonja.nameserver.errors"),
                 ("lonja.nameserver.errors", "lonja.services.daemon")]

ROUND_TRIP = textwrap.dedent('''
    import importlib, sys
    for module in sys.argv[1:]:
        importlib.import_module(module)
    import Pyro5.errors
    from Pyro5.serializers import serializers
    from lonja.nameserver.errors import NameAlreadyServed
    refusal = NameAlreadyServed("svc", "PYRO:svc@127.0.0.1:1", "pkg.Svc")
    for name in ("serpent", "json", "msgpack", "marshal"):
        back = serializers[name].loads(serializers[name].dumps(refusal))
        assert type(back) is Pyro5.errors.NamingError, (name, type(back))
        assert (back.served_uri, back.served_class) == ("PYRO:svc@127.0.0.1:1", "pkg.Svc"), name
    print("ok")
''')


@pytest.mark.parametrize("order", IMPORT_ORDERS, ids=["services-first", "nameserver-first"])
def test_name_already_served_travels_as_a_naming_error_in_any_import_order(order: tuple[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", ROUND_TRIP, *order], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_plain_pyro5_register_in_lonja_up_gets_a_naming_error_with_served_uri(lonja: Lonja) -> None:
    port = free_port()
    lonja.start("up", "--host", "127.0.0.1", "--port", str(port), "--storage", "memory", "--no-web")
    with Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@127.0.0.1:{port}") as plain:
        echo_uri = str(plain.lookup("echo"))
        with pytest.raises(Pyro5.errors.NamingError) as refused:
            plain.register("echo", "PYRO:impostor@127.0.0.1:1")
    assert type(refused.value) is Pyro5.errors.NamingError
    assert (refused.value.served_uri, refused.value.served_class) == (echo_uri, "lonja.services.builtin.echo.Echo")
