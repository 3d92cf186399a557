"""`lonja shell`: an interactive Python session with a proxy for every registered name.

Each name becomes a variable (dots and dashes turned into underscores: `shop.orders` -> `shop_orders`),
and `services` maps the real names to the same proxies. `connect`, `ns` (a NameServerClient) and `clients`
(the `lonja.clients` module, for `clients.describe(echo)` and the like) are there too. IPython is used
when it is installed; otherwise Python's own console. Tab completion lists remote methods, since `dir()`
of a lonja proxy includes them.
"""

from __future__ import annotations

import argparse
import code
import keyword
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lonja.config import Settings

    from .naming import NameServerClient


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `lonja shell` to the `lonja` parser."""
    shell = commands.add_parser("shell", parents=[common], help="a Python session with a proxy per name",
                                description="Start an interactive Python session with a proxy for every "
                                            "registered name (IPython if installed).")
    shell.add_argument("prefix", nargs="?", help="only names starting with this")
    shell.set_defaults(run=run_shell)


def namespace(ns: NameServerClient, settings: Settings, prefix: str | None = None) -> dict[str, Any]:
    """The variables of a shell: a proxy per registered name, plus `services`, `connect`, `ns`, `clients`."""
    from lonja import clients

    from .proxy import ServiceProxy, connect

    services: dict[str, ServiceProxy] = {}
    for name in ns.list(prefix):
        if name != "Pyro.NameServer":
            services[name] = connect(name, settings=settings)
    variables: dict[str, Any] = {"services": services, "connect": connect, "ns": ns, "clients": clients}
    for name, proxy in services.items():
        variable = re.sub(r"\W", "_", name)
        if variable.isidentifier() and not keyword.iskeyword(variable) and variable not in variables:
            variables[variable] = proxy
    return variables


def run_shell(args: argparse.Namespace, settings: Settings) -> int:
    from .naming import NameServerClient
    from .proxy import close

    ns = NameServerClient(settings.ns_address, timeout=settings["client.connect_timeout"], settings=settings)
    variables = namespace(ns, settings, args.prefix)
    helpers = ("services", "connect", "ns", "clients")
    names = ", ".join(sorted(k for k in variables if k not in helpers)) or "(none)"
    banner = (f"lonja shell on {ns.address}: proxies {names}\n"
              f"also: services (name -> proxy), connect(name), ns, clients (clients.describe(proxy), ...). "
              f"Try: echo.echo('hi'). Ctrl-D to leave.")
    try:
        from IPython import start_ipython
    except ImportError:
        code.interact(banner=banner, local=variables, exitmsg="")
    else:
        print(banner)
        start_ipython(argv=[], user_ns=variables)
    for proxy in variables["services"].values():
        close(proxy)
    ns.close()
    return 0
