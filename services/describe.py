"""Introspection of a hosted object: methods with signatures and docs, attributes, oneway flags.

Pyro5's own metadata carries names only; this is what `lonja show`, the web console, the interactive shell
and a proxy's `help()`, `__doc__` and `inspect.signature` show (see `lonja.clients.introspection`): the
class's first doc line (`doc`) and whole docstring (`docstring`), each method's signature, parameters and
docstring, each attribute's first doc line, type and whether it can be set. Every value is a plain
str/bool/list/dict so that any serializer can carry it.
"""

from __future__ import annotations

import inspect
from typing import Any

from Pyro5.server import _get_exposed_members


def describe(obj: Any) -> dict[str, Any]:
    """A serializable description of every exposed member of `obj` (an instance or a class)."""
    cls = obj if inspect.isclass(obj) else type(obj)
    exposed = _get_exposed_members(obj)
    methods = {name: _describe_method(getattr(cls, name), name in exposed["oneway"])
               for name in sorted(exposed["methods"])}
    attributes = {name: _describe_attribute(getattr(cls, name, None)) for name in sorted(exposed["attrs"])}
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "doc": _first_line(cls),
            "docstring": inspect.getdoc(cls) or "", "methods": methods, "attributes": attributes}


def call_hints(obj: Any) -> dict[str, list[str]]:
    """What a client needs to call `obj` well: its `@idempotent` methods (safe to re-send) and its
    generator methods (never batched, since their items stream)."""
    cls = obj if inspect.isclass(obj) else type(obj)
    hints: dict[str, list[str]] = {"idempotent": [], "generators": []}
    for name in sorted(_get_exposed_members(obj)["methods"]):
        func = inspect.unwrap(getattr(getattr(cls, name), "__func__", getattr(cls, name)))
        if getattr(func, "_lonja_idempotent", False):
            hints["idempotent"].append(name)
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            hints["generators"].append(name)
    return hints


def _describe_method(func: Any, is_oneway: bool) -> dict[str, Any]:
    target = inspect.unwrap(getattr(func, "__func__", func))
    signature = _signature(func)
    params: list[dict[str, Any]] = []
    if signature is not None:
        for p in signature.parameters.values():
            if p.name in ("self", "cls") and not params:
                continue
            params.append({
                "name": p.name,
                "kind": p.kind.name.lower(),
                "default": None if p.default is p.empty else repr(p.default),
                "annotation": None if p.annotation is p.empty else _annotation(p.annotation),
            })
        text = str(signature.replace(parameters=[
            p for i, p in enumerate(signature.parameters.values()) if not (i == 0 and p.name in ("self", "cls"))]))
    else:
        text = "(...)"
    return {
        "signature": text,
        "params": params,
        "returns": None if signature is None or signature.return_annotation is signature.empty
        else _annotation(signature.return_annotation),
        "doc": inspect.cleandoc(target.__doc__) if target.__doc__ else "",
        "oneway": is_oneway,
        "idempotent": bool(getattr(target, "_lonja_idempotent", False)),
        "async": inspect.iscoroutinefunction(target),
        "generator": inspect.isgeneratorfunction(target),
    }


def _describe_attribute(member: Any) -> dict[str, Any]:
    """An exposed attribute (a property): its first doc line, whether it can be set, and its type if annotated."""
    getter = getattr(member, "fget", None)
    signature = _signature(getter) if getter is not None else None
    returns = None if signature is None or signature.return_annotation is signature.empty \
        else _annotation(signature.return_annotation)
    return {"doc": _first_line(member), "writable": getattr(member, "fset", None) is not None, "type": returns}


def _signature(func: Any) -> inspect.Signature | None:
    """The signature with string annotations evaluated where possible (`from __future__ import annotations`)."""
    for eval_str in (True, False):
        try:
            return inspect.signature(func, eval_str=eval_str)
        except (NameError, SyntaxError, TypeError, ValueError):
            continue
    return None


def _annotation(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, type):
        return value.__name__ if value.__module__ == "builtins" else f"{value.__module__}.{value.__qualname__}"
    return str(value).replace("typing.", "")


def _first_line(thing: Any) -> str:
    doc = inspect.getdoc(thing) if thing is not None else None
    return doc.strip().splitlines()[0] if doc else ""
