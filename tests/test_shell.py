"""`lonja shell` as a user meets it (issue 10, §6): on a pseudo-terminal that is its controlling terminal
(so Ctrl-C sends SIGINT, as a real one does), with Python's own console (`--plain`) and with IPython.

Checked: tab completion of names, remote methods and attributes; names registered after the start; remote
errors in a few lines with the remote location and no lonja client frames; no chained "No module named
'IPython'"; Ctrl-C during a slow call; a banner that fits the terminal. Real name servers and services
on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from harness import PYTHON, ROOT, calls_started, wait_until
from lonja.clients import NameServerClient

TESTS_PATH = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
# Makes the pseudo-terminal on stdin the controlling terminal of the new session, then runs `lonja ARGS`.
ON_TERMINAL = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
               "os.execv(sys.executable, [sys.executable, '-m', 'lonja', *sys.argv[1:]])")
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


class Terminal:
    """`lonja ARGS` on a pseudo-terminal `columns` wide: type into it and wait for what it shows."""

    def __init__(self, lonja, *args: str, columns: int = 100, path: str = TESTS_PATH) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
        environment = {**lonja.env, "PYTHONPATH": path, "TERM": "xterm", "COLUMNS": str(columns),
                       "IPYTHONDIR": str(lonja.tmp_path / "ipython")}
        self.proc = subprocess.Popen([PYTHON, "-c", ON_TERMINAL, *args], stdin=slave, stdout=slave, stderr=slave,
                                     env=environment, cwd=lonja.tmp_path, start_new_session=True)
        os.close(slave)
        self.master = master
        self.raw = ""
        self.seen = 0  # how much of `text` earlier expectations consumed

    @property
    def text(self) -> str:
        """Everything shown so far, without terminal escapes and carriage returns."""
        return ESCAPES.sub("", self.raw).replace("\r", "")

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def expect(self, wanted: str, timeout: float = 30.0) -> str:
        """Wait until `wanted` shows after what earlier expectations consumed; return the text up to it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.text.find(wanted, self.seen)
            if found >= 0:
                start, self.seen = self.seen, found + len(wanted)
                return self.text[start:self.seen]
            if time.monotonic() > deadline or not self._read(0.2):
                raise AssertionError(f"{wanted!r} not shown; the terminal shows:\n{self.text[self.seen:]}")

    def _read(self, timeout: float) -> bool:
        """Read what the terminal shows within `timeout`; False once the process ended and all is read."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return self.proc.poll() is None
        try:
            chunk = os.read(self.master, 65536).decode(errors="replace")
        except OSError:
            return False
        if "\x1b[6n" in chunk:  # prompt_toolkit asks where the cursor is: answer as a terminal would
            self.send("\x1b[1;1R")
        self.raw += chunk
        return True

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def shop(lonja, ns) -> str:
    """The shop service (tests/shop_service.py) in its own process; returns the ns address."""
    lonja.start("serve", "shop_service:Shop", "--ns", ns, env={"PYTHONPATH": TESTS_PATH})
    return ns


@pytest.fixture
def terminals():
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def plain_shell(lonja, ns: str, terminals: list, columns: int = 100) -> Terminal:
    terminal = Terminal(lonja, "shell", "--plain", "--ns", ns, columns=columns)
    terminals.append(terminal)
    terminal.expect(">>> ")
    return terminal


def test_tab_completes_names_remote_methods_and_attributes(lonja, shop, terminals):
    terminal = plain_shell(lonja, shop, terminals)
    terminal.send("sho\t")
    terminal.expect("shop")
    terminal.send(".bu\t")
    terminal.expect(".buy(")
    terminal.send("'apple')\n")
    terminal.expect("2\n>>> ")
    terminal.send("shop.curr\t")
    terminal.expect("shop.currency")
    terminal.send("\n")
    terminal.expect("'EUR'\n>>> ")
    terminal.send("shop.buy.fu\t")
    terminal.expect("shop.buy.future(")
    terminal.send("'apple').result()\n")
    terminal.expect("1\n>>> ")


def test_names_registered_after_the_start_appear(lonja, shop, terminals):
    terminal = plain_shell(lonja, shop, terminals)
    terminal.send("sorted(services)\n")
    terminal.expect("['shop']")
    lonja.start("serve", "echo", "--ns", shop)

    def echo_is_there() -> bool:
        terminal.send("'echo' in services\n")
        shown = terminal.expect(">>> ")
        return "True" in shown

    assert wait_until(echo_is_there, timeout=30, interval=0.5)
    terminal.send("echo.echo('late')\n")
    terminal.expect("'late'")
    terminal.send("ech\t")
    terminal.expect("echo")


def test_remote_errors_take_a_few_lines_with_the_remote_location(lonja, shop, terminals):
    terminal = plain_shell(lonja, shop, terminals)
    terminal.send("shop.buy('pear', 9)\n")
    shown = terminal.expect(">>> ")
    assert "shop_service.OutOfStock: pear: only 0 left" in shown
    assert re.search(r"raised remotely at shop_service\.py line \d+, in buy", shown), shown
    assert "Traceback" not in shown and "proxy.py" not in shown and len(shown.strip().splitlines()) <= 5, shown
    terminal.send("shop.checkout('o-9')\n")
    shown = terminal.expect(">>> ")
    assert "caused by shop_backend.LedgerLocked: the ledger is locked, cannot write o-9 (shop_backend.py" in shown
    terminal.send("print(last_error.remote_traceback)\n")
    shown = terminal.expect(">>> ")
    assert "raise CheckoutFailed" in shown and "raise LedgerLocked" in shown
    terminal.send("shop.buy()\n")  # the signature is known by now: refused before sending
    shown = terminal.expect(">>> ")
    assert "lonja: error: bad arguments for shop.buy(sku: str" in shown and "Traceback" not in shown
    terminal.send("not_a_name\n")
    shown = terminal.expect(">>> ")
    assert "NameError" in shown and "IPython" not in terminal.text


def test_ctrl_c_ends_a_slow_call_and_the_session_goes_on(lonja, shop, terminals):
    terminal = plain_shell(lonja, shop, terminals)
    terminal.send("shop.buy('apple')\n")
    terminal.expect("2\n>>> ")
    with NameServerClient(shop) as names:
        location = names.lookup("shop")[0]
    before = calls_started(location)
    terminal.send("shop.wait(60)\n")
    assert wait_until(lambda: calls_started(location) > before, timeout=20)
    pressed = time.monotonic()
    terminal.send("\x03")
    shown = terminal.expect(">>> ", timeout=20)
    waited = time.monotonic() - pressed
    assert "interrupted" in shown and "Traceback" not in shown, shown
    said = [line for line in shown.splitlines()[1:-1] if line.strip() not in ("", "^C")]
    assert said == ["interrupted (a remote call may still be running on its service)"], shown
    assert waited < 20  # the call itself would take 60 s
    terminal.send("shop.buy('apple')\n")
    terminal.expect("1\n>>> ")


def test_banner_fits_a_narrow_terminal(lonja, shop, terminals):
    with NameServerClient(shop) as names:
        for number in range(30):
            names.register(f"market.fish.stall{number:02}", f"PYRO:obj_{number}@127.0.0.1:1")
    terminal = Terminal(lonja, "shell", "--plain", "--ns", shop, columns=50)
    terminals.append(terminal)
    banner = terminal.expect(">>> ")
    lines = [line for line in banner.splitlines() if line and line != ">>> "]
    assert lines[0] == f"lonja shell on {shop}: 31 proxies:"
    assert lines[2].startswith("  ") and re.search(r", … \d+ more in services$", lines[2]), lines
    assert all(len(line) <= 50 for line in lines), lines
    terminal.send("len(services)\n")
    terminal.expect("31")


def test_without_ipython_the_console_has_completion_and_no_import_error_chain(lonja, shop, terminals):
    hidden = lonja.tmp_path / "no-ipython"
    (hidden / "IPython").mkdir(parents=True)
    (hidden / "IPython" / "__init__.py").write_text("raise ImportError(\"No module named 'IPython'\")\n")
    terminal = Terminal(lonja, "shell", "--ns", shop, path=os.pathsep.join([str(hidden), TESTS_PATH]))
    terminals.append(terminal)
    terminal.expect(">>> ")
    terminal.send("shop.wa\t")
    terminal.expect("shop.wait(")
    terminal.send("0)\n")
    terminal.expect("0\n>>> ")
    terminal.send("1 / 0\n")
    shown = terminal.expect(">>> ")
    assert "ZeroDivisionError" in shown
    assert "IPython" not in terminal.text and "During handling of the above exception" not in terminal.text


def test_ipython_shell_shows_remote_errors_briefly_and_survives_ctrl_c(lonja, shop, terminals):
    pytest.importorskip("IPython")
    terminal = Terminal(lonja, "shell", "--ns", shop)
    terminals.append(terminal)
    terminal.expect("In [1]:")
    terminal.send("shop.buy('apple')\r")
    terminal.expect("Out[1]: 2")
    terminal.send("shop.buy('pear', 4)\r")
    shown = terminal.expect("In [3]:")
    assert "shop_service.OutOfStock: pear: only 0 left" in shown and "raised remotely at shop_service.py" in shown
    assert "Traceback" not in shown and "proxy.py" not in shown, shown
    with NameServerClient(shop) as names:
        location = names.lookup("shop")[0]
    before = calls_started(location)
    terminal.send("shop.wait(60)\r")
    assert wait_until(lambda: calls_started(location) > before, timeout=20)
    terminal.send("\x03")
    shown = terminal.expect("In [4]:", timeout=20)
    assert "interrupted" in shown and "Traceback" not in shown, shown
    terminal.send("shop.currency\r")
    terminal.expect("'EUR'")


IPYTHON_SESSION = '''
import sys
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from lonja.clients import connect

shell = InteractiveShell.instance(user_ns={"shop": connect("shop", ns=sys.argv[1])})
with provisionalcompleter():
    for text in ("sho", "shop.bu", "shop.cur"):
        print("completes", text, [c.text for c in shell.Completer.completions(text, len(text))])
print(shell.object_inspect_text("shop.buy"))
print(shell.object_inspect_text("shop"))
'''


def test_ipython_question_marks_and_tab_show_the_remote_side(lonja, shop):
    """What `shop.buy?`, `shop?` and Tab show in IPython (its inspector and completer, as the terminal
    and notebooks use them), in a process of its own."""
    pytest.importorskip("IPython")
    result = subprocess.run([PYTHON, "-c", IPYTHON_SESSION, shop], capture_output=True, text=True, timeout=60,
                            env={**lonja.env, "IPYTHONDIR": str(lonja.tmp_path / "ipython"), "NO_COLOR": "1"},
                            cwd=lonja.tmp_path)
    assert result.returncode == 0, result.stderr
    shown = ESCAPES.sub("", result.stdout)
    assert "completes sho ['shop']" in shown
    assert "completes shop.bu ['buy']" in shown and "completes shop.cur ['currency']" in shown
    assert "shop.buy(sku: str, count: int = 1, *, note: str = '') -> int" in shown
    assert "Raises OutOfStock if there are fewer than `count`." in shown
    assert "shop_service.Shop, served as 'shop'" in shown and "currency: str  [read/write]" in shown
