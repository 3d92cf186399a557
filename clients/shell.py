"""`lonja shell`: an interactive Python session with a proxy for every registered name.

Each name becomes a variable (dots and dashes turned into underscores: `shop.orders` -> `shop_orders`),
and `services` maps the real names to the same proxies. `connect`, `ns` (a NameServerClient) and `clients`
(the `lonja.clients` module, for `clients.describe(echo)` and the like) are there too.

What makes it a shell worth living in (Pyro5 has none; `lonja shell` had only the variables):
- IPython when it is installed and the session is on a terminal (and not `--plain`), otherwise Python's
  own console with readline tab completion of variables, remote methods (with their `(`) and remote
  attributes, from what connecting brought: completing never calls the service;
- names registered after the start appear as variables (a thread follows the name server's change log;
  a plain Pyro5 name server is asked every few seconds);
- a remote error is shown in a few lines: its type and message, where the service raised it, its cause,
  and where the full remote traceback is (`last_error.remote_traceback`), never lonja's own client frames;
  other lonja errors in one line;
- Ctrl-C during a slow call ends the wait at once with one line, and the session goes on;
- the banner fits the terminal's width.
"""

from __future__ import annotations

import argparse
import code
import keyword
import re
import rlcompleter
import shutil
import sys
import textwrap
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lonja.config import Settings

    from .naming import NameServerClient

HELPERS = ("services", "connect", "ns", "clients", "last_error")
POLL_SECONDS = 2.0
"""How often the names of a plain Pyro5 name server (which has no change log) are listed again."""


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `lonja shell` to the `lonja` parser."""
    shell = commands.add_parser("shell", parents=[common], help="a Python session with a proxy per name",
                                description="Start an interactive Python session with a proxy for every "
                                            "registered name (IPython if installed). Names registered later "
                                            "appear too.")
    shell.add_argument("prefix", nargs="?", help="only names starting with this")
    shell.add_argument("--plain", action="store_true", help="Python's own console even if IPython is installed")
    shell.set_defaults(run=run_shell)


def variable_name(name: str) -> str | None:
    """The variable a registered name becomes (`shop.orders` -> `shop_orders`), or None if none can."""
    variable = re.sub(r"\W", "_", name)
    if variable.isidentifier() and not keyword.iskeyword(variable) and variable not in HELPERS:
        return variable
    return None


class Namespace:
    """A shell's variables, and the thread that adds a proxy for each name registered after the start."""

    def __init__(self, ns: NameServerClient, settings: Settings, prefix: str | None = None) -> None:
        from lonja import clients

        from .proxy import connect

        self._settings = settings
        self._prefix = prefix or ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.services: dict[str, Any] = {}
        self.variables: dict[str, Any] = {"services": self.services, "connect": connect, "ns": ns,
                                          "clients": clients, "last_error": None}
        self.add_names(ns.list(prefix))

    def add_names(self, names: Any) -> list[str]:
        """Add a proxy (and a variable) for each of `names` not there yet; the names added."""
        from .proxy import connect

        added = []
        with self._lock:
            for name in sorted(names):
                if name == "Pyro.NameServer" or name in self.services or not name.startswith(self._prefix):
                    continue
                proxy = connect(name, settings=self._settings)
                self.services[name] = proxy
                variable = variable_name(name)
                if variable is not None and variable not in self.variables:
                    self.variables[variable] = proxy
                added.append(name)
        return added

    def follow(self) -> None:
        """Start the thread that adds names registered from now on."""
        threading.Thread(target=self._follow, name="lonja-shell-names", daemon=True).start()

    def close(self) -> None:
        from .proxy import close

        self._stop.set()
        with self._lock:
            proxies = list(self.services.values())
        for proxy in proxies:
            close(proxy)

    def _follow(self) -> None:
        from .errors import LonjaError
        from .naming import NameServerClient

        timeout = self._settings["client.connect_timeout"]
        watcher = NameServerClient(self._settings.ns_address, timeout=timeout + 10, settings=self._settings)
        seq: int | None = None
        try:
            while not self._stop.is_set():
                try:
                    if seq is None and watcher.is_lonja():
                        seq = watcher.changes(-1, 0)["seq"]
                        self.add_names(watcher.list(self._prefix or None))
                    if seq is None:  # a plain Pyro5 name server: no change log to follow
                        self._stop.wait(POLL_SECONDS)
                        self.add_names(watcher.list(self._prefix or None))
                        continue
                    answer = watcher.changes(seq, 1.0, self._prefix)
                    if answer.get("reset"):
                        seq = None
                        continue
                    seq = answer["seq"]
                    self.add_names({event["name"] for event in answer["events"] if event.get("kind") != "removed"})
                except LonjaError:  # the name server went away: try again in a moment
                    seq = None
                    watcher.close()
                    self._stop.wait(POLL_SECONDS)
        finally:
            watcher.close()


def namespace(ns: NameServerClient, settings: Settings, prefix: str | None = None) -> dict[str, Any]:
    """The variables of a shell: a proxy per registered name, plus `services`, `connect`, `ns`, `clients`."""
    return Namespace(ns, settings, prefix).variables


def describe_error(error: BaseException) -> str:
    """A few lines for an error raised at the prompt: a remote error's type, message, where the service
    raised it and its causes; another lonja error's one line; "" for anything else (shown as usual)."""
    from .errors import LonjaError, RemoteError

    if isinstance(error, KeyboardInterrupt):
        return "interrupted (a remote call may still be running on its service)"
    if isinstance(error, RemoteError):
        return "\n".join(error.remote_summary("last_error.remote_traceback"))
    if isinstance(error, LonjaError):
        return f"lonja: {error.label}: {error.one_line()}"
    return ""


def banner(address: str, variables: dict[str, Any], width: int) -> str:
    """The lines the shell starts with, none wider than `width`: the proxies (at most two lines of them on a
    narrow terminal, then how many more), the helpers, and how to get help."""
    names = sorted(k for k in variables if k not in HELPERS and not k.startswith("_"))
    width = max(width, 20)
    head = f"lonja shell on {address}: proxies "
    listing = ", ".join(names) or "(none yet)"
    if len(head) + len(listing) <= width:
        lines = [head + listing]
    else:
        lines = textwrap.wrap(f"lonja shell on {address}: {len(names)} proxies:", width) + _listed(names, width)
    example = "echo.echo('hi')" if "echo" in names or not names else f"{names[0]}.<Tab>"
    lines += textwrap.wrap("services (name -> proxy), connect(name), ns, clients (clients.describe(p), ...). "
                           "help(p), p.method? and Tab show the remote docs; the last error is last_error. "
                           f"Try {example}. Ctrl-D to leave.", width)
    return "\n".join(lines)


def _listed(names: list[str], width: int, most: int = 2) -> list[str]:
    """`names` in lines of at most `width` characters, at most `most` of them, the last saying how many
    more there are when not all fit."""
    lines: list[str] = []
    line = ""
    for index, name in enumerate(names):
        candidate = f"{line}, {name}" if line else f"  {name}"
        left = len(names) - index
        if len(candidate) <= width:
            line = candidate
            continue
        if len(lines) + 1 == most:
            more = f", … {left} more in services"
            while line and len(line) + len(more) > width and ", " in line:
                line, _, _ = line.rpartition(", ")
                left += 1
                more = f", … {left} more in services"
            return [*lines, (line + more)[:width]]
        lines.append(line[:width])
        line = f"  {name}"[:width]
    return [*lines, line] if line else lines


class Completer(rlcompleter.Completer):
    """Python's readline completer, plus a lonja proxy's remote methods (with "(") and attributes taken
    from what connecting brought: completing never calls a remote method nor reads a remote attribute."""

    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__(variables)
        self.variables = variables

    def attr_matches(self, text: str) -> list[str]:
        from .proxy import ServiceProxy, describe

        match = re.fullmatch(r"(\w+(?:\.\w+)*)\.(\w*)", text)
        if match is None:
            return []
        path, attr = match.group(1).split("."), match.group(2)
        target = self.variables.get(path[0])
        for part in path[1:]:
            target = getattr(target, part, None)
        if not isinstance(target, ServiceProxy):
            return super().attr_matches(text) if target is not None else []
        try:
            info = describe(target, signatures=False)
        except Exception:
            return []
        prefix = match.group(1)
        return sorted([f"{prefix}.{name}(" for name in info["methods"] if name.startswith(attr)] +
                      [f"{prefix}.{name}" for name in info["attributes"] if name.startswith(attr)])


class Console(code.InteractiveConsole):
    """Python's console, showing errors with `describe_error` (lonja's client frames left out)."""

    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__(locals=variables)
        self.variables = variables

    def showtraceback(self) -> None:
        error = sys.exc_info()[1]
        text = "" if error is None else describe_error(error)
        if error is None or not text:
            super().showtraceback()
            return
        sys.last_type, sys.last_value, sys.last_traceback = type(error), error, None
        if isinstance(error, KeyboardInterrupt):
            text = "\n" + text
        else:
            self.variables["last_error"] = error
        self.write(text + "\n")


def _enable_readline(variables: dict[str, Any]) -> bool:
    """Tab completion over `variables` (and remote names) if the readline module is there."""
    try:
        import readline
    except ImportError:
        return False
    readline.set_completer(Completer(variables).complete)
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    return True


def _ipython_app() -> Any:
    """IPython's terminal application class, or None if IPython is not installed."""
    try:
        from IPython.terminal.ipapp import TerminalIPythonApp
    except ImportError:
        return None
    return TerminalIPythonApp


def _run_ipython(app_class: Any, variables: dict[str, Any], text: str) -> None:
    """IPython with `variables`, the banner `text`, and lonja's errors and Ctrl-C shown by `describe_error`."""
    from traitlets.config import Config

    from .errors import LonjaError

    config = Config()
    config.TerminalInteractiveShell.banner1 = text + "\n"
    config.TerminalIPythonApp.display_banner = True
    app = app_class.instance(config=config, user_ns=variables)
    app.initialize(argv=[])

    def show(shell: Any, kind: type, error: BaseException, tb: Any, tb_offset: Any = None) -> None:
        if not isinstance(error, KeyboardInterrupt):
            shell.user_ns["last_error"] = error
        print(describe_error(error))

    app.shell.set_custom_exc((LonjaError, KeyboardInterrupt), show)
    app.start()


def run_shell(args: argparse.Namespace, settings: Settings) -> int:
    from .naming import NameServerClient

    ns = NameServerClient(settings.ns_address, timeout=settings["client.connect_timeout"], settings=settings)
    names = Namespace(ns, settings, args.prefix)
    names.follow()
    text = banner(ns.address, names.variables, shutil.get_terminal_size().columns)
    app_class = None if args.plain or not sys.stdin.isatty() else _ipython_app()
    try:
        if app_class is not None:
            _run_ipython(app_class, names.variables, text)
        else:
            _enable_readline(names.variables)
            Console(names.variables).interact(banner=text, exitmsg="")
    finally:
        names.close()
        ns.close()
    return 0
