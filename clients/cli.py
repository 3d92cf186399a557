"""The client subcommands of `lonja`: show, call and ping here; ls, watch, register, remove, meta in `browse`.

`lonja call NAME.ATTRIBUTE` prints an exposed attribute's value; `lonja show` marks each attribute
read/write or read-only (Pyro5's own tools have neither).

Each is one short-lived process, so each connects once, asks what it needs, and starts no thread: the
proxies are made with `follow_changes=False`. `register` only builds the parser; the client machinery
(Pyro5 proxies, the resolver) is imported by the command that runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from . import browse
from .arguments import call_method, parse_call_arguments
from .errors import UsageError

if TYPE_CHECKING:
    from lonja.config import Settings


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands to the `lonja` parser."""
    browse.register(commands, common)
    show = commands.add_parser("show", parents=[common], help="show a service's methods and attributes",
                               description="Show methods with signatures and first doc line, attributes (read/write or "
                                           "read-only), "
                                           "oneway flags.")
    show.add_argument("name", help="a registered name, e.g. echo")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_show)

    call = commands.add_parser("call", parents=[common], help="call a remote method",
                               description="Call NAME.METHOD. Each ARG or VALUE is a Python literal if it "
                                           "parses as one, else JSON if it parses as that (true, null), "
                                           "otherwise a string.")
    call.add_argument("target", metavar="NAME.METHOD", help="e.g. echo.echo (split at the last dot); NAME.ATTRIBUTE "
                                                          "prints an attribute's value")
    call.add_argument("args", nargs="*", metavar="ARG|KEY=VALUE", help="positional and keyword arguments")
    call.add_argument("--json", action="store_true", help="print the result as JSON")
    call.add_argument("--timeout", type=float, metavar="S",
                      help="seconds the call may take (default: client.timeout, 30; 0 = no limit)")
    call.set_defaults(run=run_call)

    ping = commands.add_parser("ping", parents=[common], help="check the name server or a service",
                               description="Check that the name server (or the named service) answers, "
                                           "with the round-trip time.")
    ping.add_argument("name", nargs="?", help="a registered name (default: the name server itself)")
    ping.set_defaults(run=run_ping)


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from .proxy import connect, describe, uri

    with connect(args.name, settings=settings, follow_changes=False) as proxy:
        info = describe(proxy)
        location = uri(proxy)
    if args.json:
        _print_json({"name": args.name, "uri": location, **info})
        return 0
    print(f"{args.name}  {location}")
    if info["class"]:
        print(f"  {info['class']}" + (f": {info['doc']}" if info["doc"] else ""))
    else:
        print("  (not a lonja service: names and flags only, no signatures or docs)")
    if "shared" in info:
        print(f"  shared objects on its host: {info['shared']}")
    if info["methods"]:
        print("methods:")
    for name, method in info["methods"].items():
        flags = [flag for flag in ("oneway", "async", "generator", "idempotent") if method.get(flag)]
        doc = method["doc"].splitlines()[0] if method["doc"] else ""
        line = f"  {name}{method['signature']}"
        if flags:
            line += f"  [{', '.join(flags)}]"
        print(line + (f"\n      {doc}" if doc else ""))
    if info["attributes"]:
        print("attributes:")
    for name, attribute in info["attributes"].items():
        mode = {True: "  [read/write]", False: "  [read-only]"}.get(attribute["writable"], "")
        kind = f": {attribute['type']}" if attribute.get("type") else ""
        print(f"  {name}{kind}{mode}" + (f"\n      {attribute['doc']}" if attribute["doc"] else ""))
    return 0


def run_call(args: argparse.Namespace, settings: Settings) -> int:
    name, dot, method = args.target.rpartition(".")
    if not dot or not name or not method:
        raise UsageError(f"expected NAME.METHOD, got {args.target!r}: e.g. `lonja call echo.echo hello`")
    positional, keywords = parse_call_arguments(args.args)
    if args.timeout is not None and args.timeout < 0:
        raise UsageError(f"--timeout must be seconds (0 = no limit), got {args.timeout}")
    from .proxy import connect, describe
    from .stream import RemoteStream

    with connect(name, settings=settings, timeout=args.timeout, follow_changes=False) as proxy:
        if method in describe(proxy, signatures=False)["attributes"]:  # what connecting brought: no request
            if positional or keywords:
                raise UsageError(f"{name}.{method} is an attribute: `lonja call {name}.{method}` prints its value "
                                 f"and takes no arguments")
            _print_result(getattr(proxy, method), args.json)
            return 0
        result, oneway = call_method(proxy, name, method, positional, keywords, f" (see `lonja show {name}`)")
        if isinstance(result, RemoteStream):
            for item in result:
                _print_result(item, args.json)
        elif result is not None or not oneway:
            _print_result(result, args.json)
    return 0


def run_ping(args: argparse.Namespace, settings: Settings) -> int:
    if args.name:
        from .proxy import connect, ping, uri

        with connect(args.name, settings=settings, follow_changes=False) as proxy:
            rtt = ping(proxy)
            print(f"{args.name} at {uri(proxy)} is alive ({rtt * 1000:.2f} ms)")
        return 0
    from .naming import NameServerClient

    with NameServerClient(settings.ns_address, timeout=settings["client.connect_timeout"],
                          settings=settings) as ns:
        rtt = ns.ping()
        print(f"name server at {ns.address} is up ({rtt * 1000:.2f} ms, {ns.count()} names)")
    return 0


def _print_result(value: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(value, default=_json_default, ensure_ascii=False), flush=True)
    else:
        print(repr(value), flush=True)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=_json_default, ensure_ascii=False)
    print()


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "backslashreplace")
    return str(value)
