"""What the web console does, with lonja's client and no web framework: list and filter names, describe a
service, call a method, read the change log. `app` serves these over HTTP; each takes the settings of the
console's process and the token of the person asking ("" for none).

A visitor's requests carry the visitor's token, never the console's own: the name server (and a service
with `auth.require_token`) decides what each may do, as for `lonja ls` and `lonja call` with that token.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lonja.config import Settings

from ..cli import parse_call_arguments
from ..errors import AccessDenied, NameNotFound, RemoteError, UsageError
from ..naming import NameServerClient
from .errors import TokenRequired

STATUSES = ("serving", "not serving", "unreachable", "unknown")
"""An instance's status as the name server reports it."""

GLOB_CHARS = frozenset("*?[")
RECENT_LIMIT = 1000


def settings_with_token(settings: Settings, token: str) -> Settings:
    """The console's settings presenting `token` ("" for none) instead of the console's own."""
    return settings.with_flags({"auth.token": (token, "web console request")})


def ns_client(settings: Settings, token: str, wait: float = 0.0) -> NameServerClient:
    """A client of the name server presenting `token`; `wait` is how long one of its calls may block."""
    timeout = settings["client.connect_timeout"] or 2.0
    return NameServerClient(settings.ns_address, timeout=timeout + wait, token=token, settings=settings)


@dataclass(frozen=True)
class NameFilter:
    """Which names to list, as `lonja ls` selects them: every given condition must hold.

    `pattern`: as `lonja ls PATTERN`, a glob on the whole name if it has `*?[`, else a prefix; `prefix`: the
    name starts with it; `glob`: shell pattern on the whole name (`shop.*`); `regex`: a regular expression
    matched at the start of the name (as Pyro5's `list(regex=...)`); `meta_all`: has every one of these tags;
    `meta_any`: has at least one; `statuses`: at least one instance has one of these.
    """

    pattern: str = ""
    prefix: str = ""
    glob: str = ""
    regex: str = ""
    meta_all: frozenset[str] = field(default_factory=frozenset)
    meta_any: frozenset[str] = field(default_factory=frozenset)
    statuses: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = self.statuses - set(STATUSES)
        if unknown:
            raise UsageError(f"status must be one of {', '.join(STATUSES)}; got {', '.join(sorted(unknown))}")
        if self.regex:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise UsageError(f"bad regex {self.regex!r}: {exc}") from None

    @classmethod
    def from_query(cls, query: Mapping[str, str], lists: Mapping[str, list[str]]) -> NameFilter:
        """From URL query parameters; `meta_all`, `meta_any` and `status` may repeat, or hold comma-separated
        values."""
        def words(key: str) -> frozenset[str]:
            return frozenset(word.strip() for value in lists.get(key, []) for word in value.split(",")
                             if word.strip())

        statuses = frozenset(status.replace("-", " ") for status in words("status"))  # `not-serving` as in ls

        return cls(pattern=query.get("pattern", ""), prefix=query.get("prefix", ""), glob=query.get("glob", ""),
                   regex=query.get("regex", ""), meta_all=words("meta_all"), meta_any=words("meta_any"),
                   statuses=statuses)

    @property
    def server_prefix(self) -> str:
        """A prefix every selected name has, for the name server to filter on first."""
        if self.pattern and not GLOB_CHARS & set(self.pattern):
            return self.pattern if self.pattern.startswith(self.prefix) else self.prefix
        return self.prefix

    def matches(self, name: str, entry: Mapping[str, Any]) -> bool:
        if self.pattern and not (fnmatch.fnmatchcase(name, self.pattern) if GLOB_CHARS & set(self.pattern)
                                 else name.startswith(self.pattern)):
            return False
        if self.prefix and not name.startswith(self.prefix):
            return False
        if self.glob and not fnmatch.fnmatchcase(name, self.glob):
            return False
        if self.regex and not re.match(self.regex, name):
            return False
        tags = set(entry["metadata"])
        if not self.meta_all <= tags or (self.meta_any and not self.meta_any & tags):
            return False
        return not self.statuses or any(i["status"] in self.statuses for i in instances_of(entry))


def instances_of(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entry's instances; a plain Pyro5 name server's entry has one of unknown status."""
    return list(entry["instances"]) or [{"uri": entry["uri"], "status": "unknown", "last_seen": 0}]


def list_names(settings: Settings, token: str, wanted: NameFilter) -> dict[str, Any]:
    """The names `wanted` selects, with their instances and metadata, and counts by status."""
    with ns_client(settings, token) as ns:
        lonja = ns.is_lonja()
        if lonja:
            everything = ns.entries(wanted.server_prefix or None)
        else:
            everything = {name: {"uri": uri, "metadata": sorted(meta), "instances": []}
                          for name, (uri, meta) in ns.list(wanted.server_prefix or None).items()}
    names = {name: entry for name, entry in sorted(everything.items()) if wanted.matches(name, entry)}
    statuses = dict.fromkeys(STATUSES, 0)
    for entry in names.values():
        for instance in instances_of(entry):
            statuses[instance["status"]] = statuses.get(instance["status"], 0) + 1
    return {"names": names, "count": len(names), "statuses": statuses, "live": lonja, "ns": settings.ns_address}


def name_entry(settings: Settings, token: str, name: str) -> dict[str, Any]:
    """One name's entry (instances, metadata); NameNotFound if it is not registered."""
    with ns_client(settings, token) as ns:
        if ns.is_lonja():
            entry = ns.entries(name).get(name)
        else:
            found = ns.list(name).get(name)
            entry = None if found is None else {"uri": found[0], "metadata": sorted(found[1]), "instances": []}
    if entry is None:
        raise NameNotFound(f"no service is registered as {name!r}: see `lonja ls` for the names there are")
    return entry


def describe_name(settings: Settings, token: str, name: str) -> dict[str, Any]:
    """A service's class, docstring, methods (signature, doc, flags) and attributes, and the instance asked."""
    from ..proxy import connect, describe, uri

    with connect(name, settings=settings_with_token(settings, token), follow_changes=False) as proxy:
        info = describe(proxy)
        return {**info, "uri": uri(proxy)}


def whoami(settings: Settings, token: str) -> dict[str, str]:
    """Who the name server takes this token for, and its role ("open" while it checks no tokens)."""
    with ns_client(settings, token) as ns:
        if not ns.is_lonja():
            return {"who": "anonymous", "role": "open"}
        return ns.whoami()


def check_may_call(settings: Settings, token: str) -> None:
    """Calls need a token the name server accepts, unless it checks no tokens at all (auth off)."""
    if token:
        whoami(settings, token)  # a refused token is AccessDenied here, before anything is resolved with it
        return
    try:
        open_to_all = whoami(settings, token)["role"] == "open"
    except AccessDenied:
        open_to_all = False
    if not open_to_all:
        raise TokenRequired("calling a method from the web console needs a token while the name server checks "
                            "tokens: enter yours in the page (or send `Authorization: Bearer TOKEN`)")


def recent_changes(settings: Settings, token: str, limit: int = 100, prefix: str = "") -> dict[str, Any]:
    """The newest `limit` changes in the name server's log (added, removed, status), oldest first."""
    limit = max(1, min(limit, RECENT_LIMIT))
    with ns_client(settings, token) as ns:
        if not ns.is_lonja():
            return {"seq": 0, "events": [], "live": False}
        seq = ns.changes(-1, 0)["seq"]
        answer = ns.changes(max(0, seq - limit), 0, prefix)
    return {"seq": answer["seq"], "events": answer["events"][-limit:], "live": True}


@dataclass
class CallRequest:
    """One method call as the API takes it: a target and the arguments, already parsed."""

    name: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    timeout: float | None = None

    @classmethod
    def parse(cls, target: str, body: Any) -> CallRequest:
        """From `NAME.METHOD` (split at the last dot) and a JSON body.

        The body holds either `args` (a list) and `kwargs` (an object) as JSON values, or `argv` (a list of
        words) or `text` (one line of them, see `split_words`) parsed as `lonja call` parses its words: each
        ARG or KEY=VALUE is a Python literal if it parses as one, else JSON if it parses as that, otherwise a
        string. `timeout` (seconds, 0 = no limit) is optional.
        """
        name, dot, method = target.rpartition(".")
        if not dot or not name or not method:
            raise UsageError(f"expected NAME.METHOD, got {target!r}: e.g. /api/call/echo.echo")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise UsageError("the body must be a JSON object: {\"args\": [...], \"kwargs\": {...}} or "
                             "{\"text\": \"ARG KEY=VALUE\"}")
        unknown = set(body) - {"args", "kwargs", "argv", "text", "timeout"}
        if unknown:
            raise UsageError(f"unknown fields in the body: {', '.join(sorted(unknown))}")
        if "text" in body or "argv" in body:
            if "args" in body or "kwargs" in body:
                raise UsageError("give either args/kwargs or text/argv, not both")
            args, kwargs = parse_words(_words(body))
        else:
            args, kwargs = body.get("args", []), body.get("kwargs", {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise UsageError("args must be a JSON list and kwargs a JSON object")
            bad = [key for key in kwargs if not key.isidentifier()]
            if bad:
                raise UsageError(f"keyword names must be identifiers: {', '.join(map(repr, bad))}")
        timeout = body.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout < 0):
            raise UsageError(f"timeout must be seconds (0 = no limit), got {timeout!r}")
        return cls(name, method, args, kwargs, timeout)


def _words(body: Mapping[str, Any]) -> list[str]:
    if "argv" in body:
        words = body["argv"]
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise UsageError("argv must be a list of strings")
        return words
    text = body["text"]
    if not isinstance(text, str):
        raise UsageError("text must be a string")
    return split_words(text)


def parse_words(words: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """`lonja call`'s parsing of ARG and KEY=VALUE words, and then JSON for a word that is no Python literal
    but is JSON (`true`, `null`, `{"on": false}`)."""
    positional, keywords = parse_call_arguments(words)
    given = [word.partition("=") for word in words]
    values = {key: value for key, eq, value in given if eq and key.isidentifier()}
    plain = [word for word, (key, eq, _) in zip(words, given) if not (eq and key.isidentifier())]
    positional = [_json_or(value, word) for value, word in zip(positional, plain)]
    keywords = {key: _json_or(value, values[key]) for key, value in keywords.items()}
    return positional, keywords


def _json_or(value: Any, word: str) -> Any:
    if not isinstance(value, str) or value != word:
        return value
    try:
        return json.loads(word)
    except ValueError:
        return value


def split_words(text: str) -> list[str]:
    """Split a line of arguments at spaces outside brackets and quotes; quotes stay in the word, so that
    `'a b'` is the string "a b" and `{'k': [1, 2]}` one dict, as they would be in Python."""
    words: list[str] = []
    current: list[str] = []
    depth = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char.isspace() and depth == 0:
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(char)
        if char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
    if current:
        words.append("".join(current))
    return words


class Call:
    """A method call in progress: `start()` makes it, then `result` holds the value or `items` the stream."""

    def __init__(self, settings: Settings, token: str, request: CallRequest) -> None:
        self.request = request
        self._settings = settings_with_token(settings, token)
        self.uri: str | None = None
        self.generator = False
        self.oneway = False
        self.result: Any = None
        self._proxy: Any = None
        self._stream: Any = None

    def start(self) -> None:
        """Make the call (a generator's first item is fetched when the stream is read)."""
        from ..proxy import connect, describe, uri
        from ..stream import RemoteStream

        request = self.request
        self._proxy = connect(request.name, settings=self._settings, timeout=request.timeout, follow_changes=False)
        try:
            methods = describe(self._proxy, signatures=False)["methods"]
            if request.method not in methods:
                raise UsageError(f"{request.name} has no method {request.method!r}; it has: {', '.join(methods)}")
            info = methods[request.method]
            self.oneway = bool(info["oneway"])
            if self.oneway:  # no answer will say that the arguments were wrong
                check_arguments(request, describe(self._proxy)["methods"][request.method])
            try:
                result = getattr(self._proxy, request.method)(*request.args, **request.kwargs)
            except RemoteError as error:
                self.uri = uri(self._proxy)
                if isinstance(error, TypeError):
                    check_arguments(request, describe(self._proxy)["methods"][request.method])
                raise
            self.uri = uri(self._proxy)
        except BaseException:
            self.close()
            raise
        if isinstance(result, RemoteStream):
            self.generator = True
            self._stream = result
        else:
            self.result = result
            self.close()

    def next_item(self, end: Any) -> Any:
        """The stream's next item, or `end` when it is over."""
        try:
            return next(self._stream, end)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        from ..proxy import close

        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            close(proxy)


def check_arguments(request: CallRequest, info: Mapping[str, Any]) -> None:
    """A UsageError if the arguments do not fit the method's signature (an unknown signature: no check).

    The same check `lonja call` makes, on the parameters `describe()` reports.
    """
    if info["params"] is None:
        return
    params = []
    for param in info["params"]:
        kind = getattr(inspect.Parameter, param["kind"].upper())
        default = inspect.Parameter.empty if param["default"] is None else param["default"]
        params.append(inspect.Parameter(param["name"], kind, default=default))
    try:
        inspect.Signature(params).bind(*request.args, **request.kwargs)
    except TypeError as exc:
        raise UsageError(f"bad arguments for {request.name}.{request.method}{info['signature']}: {exc}") from None
    except ValueError:
        pass  # a signature that cannot be rebuilt: the service judges


def to_json(value: Any) -> Any:
    """`value` as JSON can carry it: tuples and sets become lists, bytes text, anything else its str."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(item) for item in value]
    return str(value)


def shown(value: Any) -> str:
    """How `lonja call` prints a result: its repr."""
    return repr(value)
