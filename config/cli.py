"""The `lonja config` subcommand: what every setting is, and where it came from."""

from __future__ import annotations

import argparse
import json

from .settings import Settings, is_secret


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `lonja config show` to the `lonja` parser."""
    config = commands.add_parser("config", parents=[common], help="show the effective settings")
    actions = config.add_subparsers(title="actions", metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="print every setting and the layer it came from")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    values = {key: {"value": _shown(key, v.value), "source": v.source} for key, v in settings.items()}
    if args.json:
        print(json.dumps(values, indent=2))
        return 0
    width = max(len(key) for key in values)
    for key, value in values.items():
        print(f"{key:<{width}} = {json.dumps(value['value']):<24} # {value['source']}")
    return 0


def _shown(key: str, value: object) -> object:
    if is_secret(key) and value:
        return ["(hidden)"] * len(value) if isinstance(value, list) else "(hidden)"
    return value
