"""What the web console does, with lonja's client and no web framework: list and filter names, describe a
service, call a method, read the change log. `app` serves these over HTTP; each takes the settings of the
console's process and the token of the person asking ("" for none).

A visitor's requests carry the visitor's token, never the console's own: the name server (and a service
with `auth.require_token`) decides what each may do, as for `lonja ls` and `lonja call` with that token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lonja.config import Settings

from ..arguments import call_method, parse_call_arguments, split_words
from ..errors import AccessDenied, NameNotFound, RemoteError, UsageError
from ..naming import NameServerClient
from ..selection import PATTERN_KINDS, STATUSES, Pattern, Selection, instances, listing, parse_status, select
from .errors import TokenRequired

RECENT_LIMIT = 1000


def settings_with_token(settings: Settings, token: str) -> Settings:
    """The console's settings presenting `token` ("" for none) instead of the console's own."""
    return settings.with_flags({"auth.token": (token, "web console request")})


def ns_client(settings: Settings, token: str, wait: float = 0.0) -> NameServerClient:
    """A client of the name server presenting `token`; `wait` is how long one of its calls may block."""
    timeout = settings["client.connect_timeout"] or 2.0
    return NameServerClient(settings.ns_address, timeout=timeout + wait, token=token, settings=settings)


def selection_from_query(query: Mapping[str, str], lists: Mapping[str, list[str]]) -> Selection:
    """The names `/api/names` asks for, as `lonja ls` selects them: every given condition must hold.

    `pattern`: as `lonja ls PATTERN`, a glob on the whole name if it has `*?[`, else a prefix; `prefix`: the
    name starts with it; `glob`: shell pattern on the whole name (`shop.*`); `regex`: a regular expression
    matched at the start of the name (as Pyro5's `list(regex=...)`); `meta_all`: has every one of these tags;
    `meta_any`: has at least one; `status`: at least one instance has one of these (`not-serving` as in ls).
    `meta_all`, `meta_any` and `status` may repeat, or hold comma-separated values.
    """
    def words(key: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(word.strip() for value in lists.get(key, []) for word in value.split(",")
                                   if word.strip()))

    patterns = [Pattern.of(query["pattern"])] if query.get("pattern") else []
    patterns += [Pattern(query[kind], kind) for kind in PATTERN_KINDS if query.get(kind)]
    return Selection(tuple(patterns), words("meta_all"), words("meta_any"),
                     tuple(parse_status(word) for word in words("status")))


def list_names(settings: Settings, token: str, wanted: Selection) -> dict[str, Any]:
    """The names `wanted` selects, each with all its instances and its metadata, and counts by status."""
    with ns_client(settings, token) as ns:
        names = select(listing(ns, wanted.server_prefix), wanted, whole=True)
        lonja = ns.is_lonja()
    statuses = dict.fromkeys(STATUSES, 0)
    for entry in names.values():
        for instance in instances(entry):
            statuses[instance["status"]] = statuses.get(instance["status"], 0) + 1
    return {"names": names, "count": len(names), "statuses": statuses, "live": lonja, "ns": settings.ns_address}


def name_entry(settings: Settings, token: str, name: str) -> dict[str, Any]:
    """One name's entry (instances, metadata); NameNotFound if it is not registered."""
    with ns_client(settings, token) as ns:
        entry = listing(ns, name).get(name)
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
            args, kwargs = parse_call_arguments(_words(body))
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
        from ..proxy import connect, uri
        from ..stream import RemoteStream

        request = self.request
        self._proxy = connect(request.name, settings=self._settings, timeout=request.timeout, follow_changes=False)
        try:
            try:
                result, self.oneway = call_method(self._proxy, request.name, request.method, request.args,
                                                  request.kwargs)
            except RemoteError:
                self.uri = uri(self._proxy)
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
