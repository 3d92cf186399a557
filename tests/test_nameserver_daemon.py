"""A real lonja name server on 127.0.0.1, used by plain Pyro5 clients and the pyro5-nsc tool."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import Pyro5.api
import pytest

from lonja.nameserver import NameServerError, StorageError, start_nameserver

REPO = Path(__file__).resolve().parents[1]
NSC = Path(sys.executable).parent / "pyro5-nsc"
URI = "PYRO:obj@127.0.0.1:1"

RUN_SCRIPT = ("import sys; from pathlib import Path; from lonja.nameserver import run_nameserver;"
              "sys.exit(run_nameserver(port=0, storage='sqlite', data_dir=Path(sys.argv[1])))")


def clean_env() -> dict[str, str]:
    """The environment for child processes, without PYRO_* settings that would change their behaviour."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYRO_")}


@pytest.fixture
def server(tmp_path):
    """A sqlite-backed name server serving from a background thread, on a free port."""
    with start_nameserver(port=0, storage="sqlite", data_dir=tmp_path).start_in_thread() as handle:
        yield handle


@Pyro5.api.expose
class Echo:
    def echo(self, text: str) -> str:
        return text


def test_handle_describes_where_it_listens(server, tmp_path):
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert str(server.uri) == f"PYRO:Pyro.NameServer@127.0.0.1:{server.port}"
    assert server.storage_spec == f"sqlite:{tmp_path / 'names.sqlite'}"
    assert server.broadcast_server is None


def test_locate_ns_lists_registers_and_looks_up(server):
    with Pyro5.api.locate_ns("127.0.0.1", server.port) as ns:
        ns.ping()
        assert ns.list() == {"Pyro.NameServer": str(server.uri)}
        assert ns.yplookup(meta_all=["class:Pyro5.nameserver.NameServer"], return_metadata=False) == \
            {"Pyro.NameServer": str(server.uri)}
        ns.register("test.thing", URI, metadata=["kind:thing"])
        assert ns.lookup("test.thing") == Pyro5.api.URI(URI)
        assert ns.count() == 2


def test_pyroname_resolves_to_a_live_object(server):
    with Pyro5.api.Daemon(host="127.0.0.1", port=0) as service:
        uri = service.register(Echo())
        thread = threading.Thread(target=service.requestLoop, daemon=True)
        thread.start()
        with Pyro5.api.locate_ns("127.0.0.1", server.port) as ns:
            ns.register("test.echo", uri)
        with Pyro5.api.Proxy(f"PYRONAME:test.echo@127.0.0.1:{server.port}") as echo:
            assert echo.echo("hi") == "hi"
        service.shutdown()
        thread.join(5)


def test_pyro5_nsc_lists_against_it(server):
    with Pyro5.api.locate_ns("127.0.0.1", server.port) as ns:
        ns.register("test.listed", URI)
    result = subprocess.run([str(NSC), "-n", "127.0.0.1", "-p", str(server.port), "list"],
                            capture_output=True, text=True, env=clean_env(), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test.listed --> " + URI in result.stdout
    assert "Pyro.NameServer" in result.stdout


def test_port_in_use_is_a_clear_error(server, tmp_path):
    with pytest.raises(NameServerError) as info:
        start_nameserver(port=server.port, storage="memory", data_dir=tmp_path)
    message = str(info.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del info  # Pyro5 leaves open the socket that failed to bind; let it go quietly here
        gc.collect()
    assert message == (f"port {server.port} on 127.0.0.1 is already in use: is another name server "
                               f"running? Use --port to pick another")


def test_shutdown_from_another_thread_ends_request_loop(tmp_path):
    handle = start_nameserver(port=0, storage="memory", data_dir=tmp_path)
    loop = threading.Thread(target=handle.request_loop)
    loop.start()
    with Pyro5.api.Proxy(handle.uri) as ns:
        ns.ping()
    handle.shutdown()
    loop.join(10)
    assert not loop.is_alive()
    handle.close()
    handle.close()


def test_shutdown_before_the_loop_starts(tmp_path):
    handle = start_nameserver(port=0, storage="memory", data_dir=tmp_path)
    handle.shutdown()
    handle.request_loop()
    handle.close()


def test_close_closes_storage(tmp_path):
    with start_nameserver(port=0, storage="sqlite", data_dir=tmp_path).start_in_thread() as handle:
        storage = handle.daemon.nameserver.storage
    with pytest.raises(StorageError):
        len(storage)
    with pytest.raises(NameServerError, match="closed"):
        handle.request_loop()


def test_broadcast_is_never_started_on_loopback(tmp_path):
    with start_nameserver(port=0, storage="memory", data_dir=tmp_path, broadcast=True) as handle:
        assert handle.broadcast_server is None


class RunningNameServer:
    """`run_nameserver` in a child process; the port comes from the line it prints."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(data_dir)], cwd=REPO,
                                        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.first_line = self.process.stdout.readline().strip()
        assert self.first_line.startswith("name server listening on PYRO:Pyro.NameServer@127.0.0.1:"), \
            self.first_line + self.process.stderr.read()
        self.port = int(self.first_line.split(" ")[4].rsplit(":", 1)[1])

    def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        stdout, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_run_nameserver_stops_on_signals_and_keeps_registrations(tmp_path):
    first = RunningNameServer(tmp_path)
    try:
        assert first.first_line.endswith(f"(storage: sqlite:{tmp_path / 'names.sqlite'}, 0 names loaded)")
        with Pyro5.api.locate_ns("127.0.0.1", first.port) as ns:
            ns.register("test.durable", URI, metadata=["kept"])
        returncode, stderr = first.stop(signal.SIGTERM)
        assert returncode == 0, stderr
    finally:
        first.kill()

    second = RunningNameServer(tmp_path)
    try:
        assert second.first_line.endswith(f"(storage: sqlite:{tmp_path / 'names.sqlite'}, 1 name loaded)")
        with Pyro5.api.locate_ns("127.0.0.1", second.port) as ns:
            assert ns.lookup("test.durable", return_metadata=True) == (Pyro5.api.URI(URI), {"kept"})
            assert ns.lookup("Pyro.NameServer") == Pyro5.api.URI(f"PYRO:Pyro.NameServer@127.0.0.1:{second.port}")
        returncode, stderr = second.stop(signal.SIGINT)
        assert returncode == 0, stderr
    finally:
        second.kill()
