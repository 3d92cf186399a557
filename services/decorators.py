"""The decorators a service author uses: `@service`, and Pyro5's `@expose` and `@oneway`, plus `@idempotent`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from Pyro5.server import expose, oneway

__all__ = ["ServiceInfo", "expose", "idempotent", "oneway", "service", "service_info"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class ServiceInfo:
    """What `@service` records on a class: the name it registers under and its name-server metadata."""

    name: str
    metadata: frozenset[str] = field(default_factory=frozenset)


def service(name: str, metadata: Iterable[str] | None = None) -> Callable[[T], T]:
    """Mark a plain class as a lonja service registered under `name`.

    If no member is marked `@expose`, every public method and property is exposed.
    """
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"invalid service name {name!r}: use a non-empty name without spaces, e.g. 'shop.orders'")
    if isinstance(metadata, str):
        raise TypeError("metadata is a collection of tags, e.g. {'team:shop'}, not one string")

    def decorate(cls: T) -> T:
        if not inspect.isclass(cls):
            raise TypeError("@service decorates a class")
        expose_public(cls)
        cast(Any, cls)._lonja_service = ServiceInfo(name, frozenset(metadata or ()))  # a marker, read by service_info()
        return cls

    return decorate


def idempotent(method: F) -> F:
    """Mark a method safe to run twice: clients may re-send it when the outcome of a call is unknown."""
    cast(Any, method)._lonja_idempotent = True  # a marker, read by call_hints() in describe.py
    return method


def expose_public(cls: type) -> None:
    """lonja's rule for a service class, decorated or not: if no member is marked `@expose`, every public
    method and property is exposed (Pyro5 alone would expose nothing, and every call would fail)."""
    if not _has_exposed_member(cls):
        expose(cls)


def service_info(cls: type) -> ServiceInfo | None:
    """The `@service` record of a class, or None for a class that isn't decorated."""
    return cls.__dict__.get("_lonja_service")


def _has_exposed_member(cls: type) -> bool:
    for value in vars(cls).values():
        func = getattr(value, "fget", None) or getattr(value, "__func__", None) or value
        if getattr(func, "_pyroExposed", False):
            return True
    return False
