"""Hosting services: a service is a plain class; `lonja serve` registers it in the name server.

    from lonja.services import service, expose, oneway

    @service("greeter")
    class Greeter:
        def hello(self, name: str) -> str:
            return f"hello {name}"

`share(obj)` returns an object by reference (the caller gets a proxy; calls run here, on `obj`), and
`@remote` sends every instance of a class that way.

The decorators and the host are imported on first use of one of their names, so that the `lonja`
command's parser (which imports `lonja.services.cli`) stays light.
"""

from typing import Any

from lonja.config.lazy import lazy_attribute, lazy_dir

from .errors import NameTaken, ServiceError, ServiceLoadError

_LAZY = {"ServiceHost": ".host", "load_target": ".host", "remote": "lonja.config.sharing",
         "share": "lonja.config.sharing",
         **dict.fromkeys(("expose", "idempotent", "oneway", "service"), ".decorators")}

__all__ = ["NameTaken", "ServiceError", "ServiceHost", "ServiceLoadError", "expose", "idempotent",
           "load_target", "oneway", "remote", "service", "share"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return lazy_dir(__name__, _LAZY)
