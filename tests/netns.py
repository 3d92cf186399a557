"""The multi-host harness: "hosts" as Linux network namespaces on one bridge, each running real lonja
processes (`ip netns exec`), all created and removed by the test that uses them.

Layout of a `Network` of N hosts, for a run with prefix P (unique per process and network):
- namespace `P-br` holds the bridge `br0` (no address) and one veth end per host;
- namespace `P-a`, `P-b`, ... holds the other end as `eth0`, addressed 198.18.0.1/24, 198.18.0.2/24, ...
  (198.18.0.0/15 is set aside for network tests), and `lo`, both up.
Nothing is created in the root namespace: no traffic leaves the namespaces. `Network.close()` kills every
process it started (by pid) and deletes every namespace it made (by name), whatever the test did.

The `network` fixture (import `network_fixture` into a test module) gives a test four hosts. Building
one needs root and `ip netns`; `netns_unavailable()` says why not (tests then skip, or fail
where the `CI` variable is set). `nft` (Debian's nftables) drops a host's packets for partitions; it is
installed with apt-get when missing.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from harness import PYTHON, ROOT, LonjaProcess, clean_env

SUBNET = "198.18.0"
PREFIX_LENGTH = 24
NFT_TABLE = "lonja_partition"
INSTALL_NFT = "apt-get update -qq && apt-get install -y -qq nftables"

_networks = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check,
                          stdin=subprocess.DEVNULL)


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be built here (None if they can): tried by adding and deleting one."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"ljprobe{os.getpid()}"
    added = _ip("netns", "add", probe, check=False)
    if added.returncode != 0:
        return f"`ip netns add` failed: {added.stderr.strip()}"
    bridge = _ip("-n", probe, "link", "add", "br0", "type", "bridge", check=False)
    _ip("netns", "del", probe, check=False)
    if bridge.returncode != 0:
        return f"cannot create a bridge in a namespace: {bridge.stderr.strip()}"
    return None


def nft_binary() -> str | None:
    """The path of `nft`, installed from Debian's nftables first when it is missing (as root with apt-get)."""
    if shutil.which("nft") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(INSTALL_NFT, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                       timeout=900, check=False)
    return shutil.which("nft")


class NetnsProcess(LonjaProcess):
    """A command run inside a namespace (`ip netns exec`, which execs: the pid is the command's own)."""

    def __init__(self, netns: str, command: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.args = list(command)
        self.proc = subprocess.Popen(["ip", "netns", "exec", netns, *command], env=env, cwd=cwd, text=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()


class Host:
    """One namespace on the bridge: its address, and the processes a test started in it."""

    def __init__(self, network: Network, label: str, index: int) -> None:
        self.network = network
        self.label = label
        self.netns = f"{network.prefix}-{label}"
        self.address = f"{SUBNET}.{index + 1}"
        self.veth = f"v{label}"
        self.workdir = network.tmp_path / label
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(self.workdir)
        self.processes: list[NetnsProcess] = []

    def __repr__(self) -> str:
        return f"<Host {self.label} {self.address} in {self.netns}>"

    def spawn(self, *command: str, ready: str | None = None, env: dict[str, str] | None = None,
              timeout: float = 30.0) -> NetnsProcess:
        """Start `command` in this host; with `ready`, wait for a line containing it."""
        process = NetnsProcess(self.netns, command, {**self.env, **(env or {})}, self.workdir)
        self.processes.append(process)
        if ready:
            process.wait_for(ready, timeout)
        return process

    def start(self, *args: str, ready: str | None = "press Ctrl-C to stop", env: dict[str, str] | None = None,
              timeout: float = 30.0) -> NetnsProcess:
        """Start `lonja ARGS` in this host."""
        return self.spawn(PYTHON, "-m", "lonja", *args, ready=ready, env=env, timeout=timeout)

    def python(self, script: str | Path, *args: str, ready: str | None = None,
               env: dict[str, str] | None = None) -> NetnsProcess:
        """Start a Python script (e.g. one from tests/) in this host."""
        return self.spawn(PYTHON, str(script), *args, ready=ready, env=env)

    def run(self, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run `lonja ARGS` in this host to completion."""
        return self.exec(PYTHON, "-m", "lonja", *args, timeout=timeout, env=env)

    def exec(self, *command: str, timeout: float = 30.0, env: dict[str, str] | None = None,
             check: bool = False) -> subprocess.CompletedProcess:
        """Run any command in this host to completion."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], env={**self.env, **(env or {})},
                              cwd=self.workdir, capture_output=True, text=True, timeout=timeout, check=check,
                              stdin=subprocess.DEVNULL)

    def kill(self, process: NetnsProcess) -> None:
        """kill -9 one process of this host, by its pid, and reap it."""
        process.send_signal(signal.SIGKILL)
        process.proc.wait(10)

    def drop_packets(self) -> None:
        """Silently drop every packet this host sends or receives on eth0 (an nft table in its namespace)."""
        nft = nft_binary()
        if nft is None:
            raise RuntimeError("nft is not installed and could not be installed (apt-get install nftables)")
        rules = (f"table inet {NFT_TABLE} {{\n"
                 f" chain input {{ type filter hook input priority 0; policy accept; iifname \"eth0\" drop; }}\n"
                 f" chain output {{ type filter hook output priority 0; policy accept; oifname \"eth0\" drop; }}\n"
                 f"}}\n")
        script = self.workdir / "partition.nft"
        script.write_text(rules)
        self.exec(nft, "-f", str(script), check=True)

    def restore_packets(self) -> None:
        """Undo `drop_packets`."""
        nft = nft_binary()
        if nft is not None:
            self.exec(nft, "delete", "table", "inet", NFT_TABLE, check=True)

    def link(self, up: bool) -> None:
        """Set this host's port on the bridge down (unplugged) or up again."""
        _ip("-n", self.network.bridge_netns, "link", "set", self.veth, "up" if up else "down")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.proc.kill()
            try:
                process.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


class Network:
    """N hosts (namespaces) on one bridge (in a namespace of its own); a context manager that removes them all."""

    def __init__(self, tmp_path: Path, count: int = 4) -> None:
        if not 1 <= count <= 26:
            raise ValueError("between 1 and 26 hosts")
        self.tmp_path = tmp_path
        self.prefix = f"lj{os.getpid()}n{next(_networks)}"
        self.bridge_netns = f"{self.prefix}-br"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        try:
            self._add_netns(self.bridge_netns)
            _ip("-n", self.bridge_netns, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge_netns, "link", "set", "br0", "up")
            for index in range(count):
                self._add_host(chr(ord("a") + index), index)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, label: str) -> Host:
        return next(host for host in self.hosts if host.label == label)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _add_host(self, label: str, index: int) -> None:
        host = Host(self, label, index)
        self._add_netns(host.netns)
        self.hosts.append(host)
        _ip("-n", self.bridge_netns, "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
            "netns", host.netns)
        _ip("-n", self.bridge_netns, "link", "set", host.veth, "master", "br0")
        _ip("-n", self.bridge_netns, "link", "set", host.veth, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/{PREFIX_LENGTH}", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Kill every process started in these hosts (by pid), then delete every namespace made (by name)."""
        for host in self.hosts:
            host.stop_all()
        for name in reversed(self._namespaces):
            _ip("netns", "del", name, check=False)
        self._namespaces.clear()


def script(name: str) -> Path:
    """A helper script of the test folder, to run in a host."""
    return ROOT / "tests" / name


@pytest.fixture(name="network")
def network_fixture(tmp_path: Path) -> Iterator[Network]:
    """Four hosts a, b, c, d (198.18.0.1-4) on one bridge; skipped where namespaces cannot be made,
    except under CI (the `CI` variable set), where that is a failure."""
    reason = netns_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"multi-host tests cannot run under CI: {reason}")
        pytest.skip(reason)
    with Network(tmp_path, 4) as net:
        yield net
