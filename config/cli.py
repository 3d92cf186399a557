"""The `lonja config` subcommand: what every setting is, and where it came from."""

from __future__ import annotations

import argparse
import json

from .settings import Settings


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `lonja config show` to the `lonja` parser."""
    config = commands.add_parser("config", parents=[common], help="show the effective settings")
    actions = config.add_subparsers(title="actions", metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="print every setting and the layer it came from")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    if args.json:
        print(json.dumps({key: {"value": v.value, "source": v.source} for key, v in settings.items()}, indent=2))
        return 0
    width = max(len(key) for key, _ in settings.items())
    for key, value in settings.items():
        print(f"{key:<{width}} = {json.dumps(value.value):<24} # {value.source}")
    return 0
