"""Services that tests serve with `lonja serve services_for_tests:CLASS` (with tests/ on PYTHONPATH)."""

from __future__ import annotations

from typing import Any

from lonja.services import service

# Names a lonja proxy once kept for itself (ping, close, ...), and those of a remote method's call modes.
PROXY_NAMES = ("ping", "close", "describe", "batch", "uri", "instances", "options", "oneway", "future", "aio")


@service("names")
class Names:
    """A method for every name in PROXY_NAMES; each returns [its name, value], proving that it ran."""

    def ping(self, value: Any = None) -> list:
        return ["ping", value]

    def close(self, value: Any = None) -> list:
        return ["close", value]

    def describe(self, value: Any = None) -> list:
        return ["describe", value]

    def batch(self, value: Any = None) -> list:
        return ["batch", value]

    def uri(self, value: Any = None) -> list:
        return ["uri", value]

    def instances(self, value: Any = None) -> list:
        return ["instances", value]

    def options(self, value: Any = None) -> list:
        return ["options", value]

    def oneway(self, value: Any = None) -> list:
        return ["oneway", value]

    def future(self, value: Any = None) -> list:
        return ["future", value]

    def aio(self, value: Any = None) -> list:
        return ["aio", value]
