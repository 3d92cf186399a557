"""How a service's exception travels back to its caller.

Pyro5 rebuilds only builtin and Pyro5 exceptions on the client; any other class arrives as
`SerializeError: unsupported serialized class` and its traceback is lost. A lonja host therefore sends a
service's own exception as a builtin `Exception` whose attributes carry the real type name and the remote
traceback: plain Pyro5 clients get a readable Exception, lonja clients turn it into a `RemoteError`.
"""

from __future__ import annotations

import builtins
from typing import Any

import Pyro5.errors
from Pyro5.serializers import SerializerBase

from lonja.clients.errors import REMOTE_TYPE_ATTR


def _travels_as_is(kind: type) -> bool:
    """True for the exception classes every Pyro5 client can rebuild by itself."""
    if kind.__module__ == "builtins" and getattr(builtins, kind.__name__, None) is kind:
        return True
    if issubclass(kind, Pyro5.errors.PyroError) and kind.__module__ == "Pyro5.errors":
        return True
    return kind.__module__ == "sqlite3"


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Pyro5's dict form of an exception, with a service-defined class wrapped as a builtin Exception."""
    kind = type(exc)
    if _travels_as_is(kind):
        return {"__class__": f"{kind.__module__}.{kind.__name__}", "__exception__": True,
                "args": exc.args, "attributes": vars(exc)}
    attributes = {"_pyroTraceback": getattr(exc, "_pyroTraceback", None),
                  REMOTE_TYPE_ATTR: f"{kind.__module__}.{kind.__qualname__}"}
    return {"__class__": "builtins.Exception", "__exception__": True,
            "args": (str(exc),), "attributes": attributes}


def install() -> None:
    """Register the converter with Pyro5 (every serializer); safe to call more than once."""
    SerializerBase.register_class_to_dict(BaseException, exception_to_dict)
