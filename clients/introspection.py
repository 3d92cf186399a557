"""What a proxy knows about its service beyond Pyro5's names: docs, signatures, an interface to check.

Pyro5's metadata has names only, so `help(proxy)` used to show lonja's proxy class and
`inspect.signature(proxy.method)` said `(*args, **kwargs)`. Here the host's description (`describe`: the
class's docstring, each method's signature and doc, each attribute's type and whether it is writable) is
fetched once per proxy, on the first question that needs it, and kept until the instance it came from no
longer serves the name (the service restarted or moved): then the next question fetches it again.

From it come a proxy's and a remote method's `__doc__` (so `help()`, IPython's `?` and notebooks show the
remote docs), a method's `__signature__` (`inspect.signature`, IPython's call tips), and per method a
*checker*: a Python function with the remote method's parameters and an empty body. Calling it binds the
arguments as the remote method would, so a call with wrong argument names or counts fails before it is
sent, with the signature in the message. A checker costs a Python function call (under 0.1 µs), where
`inspect.Signature.bind` costs about 2 µs; calls made before the description is known are not checked.

`check_interface` compares a typing.Protocol (or any class) with a service, for `connect(interface=...)`.
"""

from __future__ import annotations

import inspect
import keyword
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ArgumentMismatch, InterfaceMismatch, LonjaError

if TYPE_CHECKING:
    from .proxy import ServiceClient

Checker = Callable[..., None]
_NO_DEFAULT: Any = object()  # the default of every checker parameter that has one: never looked at


class Introspection:
    """The description of one proxy's service, fetched on first need and refreshed when it goes stale."""

    def __init__(self, client: ServiceClient, on_change: Callable[[], None]) -> None:
        self._client = client
        self._on_change = on_change
        self._lock = threading.Lock()
        self._description: dict[str, Any] | None = None
        self._source: str | None = None
        self._checkers: dict[str, Checker] = {}
        self._signatures: dict[str, inspect.Signature | None] = {}

    @property
    def target(self) -> str:
        return self._client.target

    def known(self) -> dict[str, Any] | None:
        """The description if fetched already; never contacts anything."""
        return self._description

    def description(self) -> dict[str, Any]:
        """The service's description: fetched on first use, and again once the instance it came from no
        longer serves the name."""
        current = self._description
        if current is not None and self._still_current():
            return current
        with self._lock:
            if self._description is not current:  # another thread fetched it meanwhile
                assert self._description is not None
                return self._description
            fresh = self._client.describe(True)
            self._source = self._client.last_uri
            self._checkers = _checkers_for(fresh)
            self._signatures = {}
            self._description = fresh
        if fresh != current:
            self._on_change()
        return fresh

    def checker(self, method: str) -> Checker | None:
        """The checker of `method` if its signature is known already (see the module's docstring)."""
        return self._checkers.get(method)

    def has_method(self, name: str) -> bool:
        """True if the service's (fresh) description lists a method `name` (for names Pyro5's metadata,
        taken at the first connection, does not have)."""
        try:
            return name in self.description()["methods"]
        except LonjaError:
            return False

    def method_info(self, method: str) -> dict[str, Any] | None:
        return self.description()["methods"].get(method)

    def signature(self, method: str) -> inspect.Signature | None:
        """`method`'s signature as an inspect.Signature (annotations and defaults shown as the service
        wrote them), or None if the service did not say (a plain Pyro5 host)."""
        description = self.description()
        if method not in self._signatures:
            info = description["methods"].get(method)
            self._signatures[method] = None if info is None else _signature_of(info)
        return self._signatures[method]

    def rejected(self, method: str, error: TypeError, args: tuple, kwargs: dict[str, Any]) -> ArgumentMismatch | None:
        """The error for a call that `method`'s checker refused with `error`, after making sure the
        signature it used is still the service's; None if the current one accepts the call."""
        if not self._still_current():
            self.description()
            checker = self._checkers.get(method)
            if checker is None:
                return None
            try:
                checker(*args, **kwargs)
            except TypeError as again:
                error = again
            else:
                return None
        info = (self._description or {}).get("methods", {}).get(method, {})
        reason = str(error)
        signature = self.signature(method)
        if signature is not None:
            try:  # the words lonja's other argument checks use (`lonja call`, the web console)
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                reason = str(exc)
        return ArgumentMismatch(f"bad arguments for {self.target}.{method}{info.get('signature', '(...)')}: "
                                f"{reason}")

    def method_doc(self, method: str) -> str:
        """`method`'s docstring as the service wrote it (a line saying so if it has none)."""
        try:
            info = self.method_info(method)
        except LonjaError as exc:
            return f"{self.target}.{method}: a remote method ({exc.one_line()})"
        if info is None:
            return f"{self.target}.{method}: the service has no such method (any more)"
        return info["doc"] or f"{self.target}.{method}{info['signature']}: a remote method without a docstring"

    def service_doc(self) -> str:
        """The service described for `help(proxy)`: class and docstring, methods, attributes."""
        try:
            description = self.description()
        except LonjaError as exc:
            return f"lonja proxy for {self.target!r}: its description is not available ({exc.one_line()})"
        return render(self.target, description)

    def _still_current(self) -> bool:
        """True while the instance the description came from still serves the name (or nobody can say)."""
        try:
            return self._source in self._client.instances()
        except LonjaError:
            return True


def render(target: str, description: dict[str, Any]) -> str:
    """A service's description as text: what `help(proxy)` and `proxy?` show."""
    cls = description.get("class")
    lines = [f"{cls}, served as {target!r}" if cls else
             f"{target!r}: a plain Pyro5 object (names and flags only, no signatures or docs)"]
    doc = description.get("docstring") or description.get("doc")
    if doc:
        lines += ["", doc]
    if description["methods"]:
        lines += ["", "Methods (each also has .oneway, .future, .aio and .options):"]
    for name, method in description["methods"].items():
        flags = [flag for flag in ("oneway", "async", "generator", "idempotent") if method.get(flag)]
        lines.append(f"  {name}{method['signature']}" + (f"  [{', '.join(flags)}]" if flags else ""))
        if method["doc"]:
            lines.append(f"      {method['doc'].splitlines()[0]}")
    if description["attributes"]:
        lines += ["", "Attributes:"]
    for name, attribute in description["attributes"].items():
        kind = f": {attribute['type']}" if attribute.get("type") else ""
        mode = {True: "  [read/write]", False: "  [read-only]"}.get(attribute.get("writable"), "")
        lines.append(f"  {name}{kind}{mode}")
        if attribute.get("doc"):
            lines.append(f"      {attribute['doc']}")
    lines += ["", "lonja's own operations on it: describe, ping, uri, instances, batch, close (lonja.clients)."]
    return "\n".join(lines)


class _Shown:
    """An annotation or default shown as the service wrote it (an inspect.Signature prints its repr)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _signature_of(info: dict[str, Any]) -> inspect.Signature | None:
    if info.get("params") is None:
        return None
    try:
        params = [inspect.Parameter(
            param["name"], getattr(inspect.Parameter, param["kind"].upper()),
            default=inspect.Parameter.empty if param["default"] is None else _Shown(param["default"]),
            annotation=inspect.Parameter.empty if param["annotation"] is None else _Shown(param["annotation"]))
            for param in info["params"]]
        returns = inspect.Signature.empty if info.get("returns") is None else _Shown(info["returns"])
        return inspect.Signature(params, return_annotation=returns)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _checkers_for(description: dict[str, Any]) -> dict[str, Checker]:
    checkers = {}
    for name, info in description["methods"].items():
        checker = make_checker(name, info.get("params"))
        if checker is not None:
            checkers[name] = checker
    return checkers


def make_checker(name: str, params: list[dict[str, Any]] | None) -> Checker | None:
    """A function with the parameters `params` describes (names and kinds, every default a placeholder)
    and an empty body, named `name`; calling it raises TypeError exactly where the remote method would.
    None if the parameters are unknown or not valid Python names."""
    if params is None or not _is_name(name):
        return None
    words: list[str] = []
    star = False
    for index, param in enumerate(params):
        kind, pname = param.get("kind"), param.get("name")
        if not isinstance(pname, str) or not _is_name(pname):
            return None
        default = "=_NO_DEFAULT" if param.get("default") is not None else ""
        if kind == "positional_only":
            words.append(pname + default)
            if index + 1 == len(params) or params[index + 1].get("kind") != "positional_only":
                words.append("/")
        elif kind == "positional_or_keyword":
            words.append(pname + default)
        elif kind == "var_positional":
            words.append("*" + pname)
            star = True
        elif kind == "keyword_only":
            if not star:
                words.append("*")
                star = True
            words.append(pname + default)
        elif kind == "var_keyword":
            words.append("**" + pname)
        else:
            return None
    namespace: dict[str, Any] = {"_NO_DEFAULT": _NO_DEFAULT}
    try:
        exec(f"def {name}({', '.join(words)}):\n    pass\n", namespace)  # only checked names: no injection
    except SyntaxError:  # e.g. a parameter without a default after one with a default
        return None
    checker: Checker = namespace[name]
    return checker


def _is_name(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text)


class RemoteDoc:
    """`__doc__` for a class whose instances stand for something remote: on the class, the class's own
    docstring; on an instance, what `render(instance)` says (the remote docs, fetched on first use)."""

    def __init__(self, class_doc: str | None, render: Callable[[Any], str]) -> None:
        self.class_doc = class_doc
        self.render = render

    def __get__(self, instance: Any, owner: type | None = None) -> str | None:
        return self.class_doc if instance is None else self.render(instance)


def interface_members(interface: type) -> tuple[set[str], set[str]]:
    """The public methods and attributes (annotations and properties) `interface` declares, its bases'
    included (not `object`'s, `Protocol`'s or `Generic`'s)."""
    methods: set[str] = set()
    attributes: set[str] = set()
    skip = {object, *(base for base in Protocol.__mro__)}
    for cls in reversed(interface.__mro__):
        if cls in skip or cls.__module__ == "typing":
            continue
        for name in getattr(cls, "__annotations__", {}):
            if not name.startswith("_"):
                attributes.add(name)
        for name, value in vars(cls).items():
            if name.startswith("_"):
                continue
            if isinstance(value, property):
                attributes.add(name)
            elif callable(value) or isinstance(value, (staticmethod, classmethod)):
                methods.add(name)
    return methods - attributes, attributes


def check_interface(interface: type, target: str, methods: frozenset[str], attributes: frozenset[str]) -> None:
    """InterfaceMismatch unless the service (its method and attribute names) has every member of
    `interface`, as methods where it declares methods."""
    wanted_methods, wanted_attributes = interface_members(interface)
    problems = [f"no method {name!r}" + (" (it is an attribute)" if name in attributes else "")
                for name in sorted(wanted_methods - methods)]
    problems += [f"no attribute {name!r}" + (" (it is a method)" if name in methods else "")
                 for name in sorted(wanted_attributes - attributes - methods)]
    if problems:
        raise InterfaceMismatch(f"service {target!r} does not implement {interface.__qualname__}: "
                                f"{'; '.join(problems)}; it has: {', '.join(sorted(methods | attributes))}")
