"""Hosting services: a service is a plain class; `lonja serve` registers it in the name server.

    from lonja.services import service, expose, oneway

    @service("greeter")
    class Greeter:
        def hello(self, name: str) -> str:
            return f"hello {name}"
"""

from .decorators import expose, idempotent, oneway, service
from .errors import NameTaken, ServiceError, ServiceLoadError
from .host import ServiceHost, load_target

__all__ = ["NameTaken", "ServiceError", "ServiceHost", "ServiceLoadError", "expose", "idempotent",
           "load_target", "oneway", "service"]
