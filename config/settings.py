"""Layered settings: built-in defaults, a user file, the environment, then command-line flags.

Each value remembers the layer it came from, so `lonja config show` and every error can say where a
value was set. Keys and their types are those of `defaults.DEFAULTS`; anything else is an error.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from .defaults import DEFAULTS
from .errors import ConfigError

ENV_PREFIX = "LONJA_"
ENV_CONFIG = "LONJA_CONFIG"
ENV_NS = "LONJA_NS"
LOCAL_FILE = "lonja.toml"

_SERIALIZERS = ("msgpack", "serpent", "json", "marshal")


def _port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError("a port is 0..65535")


def _non_negative(value: float) -> None:
    if value < 0:
        raise ValueError("0 or more")


def _positive(value: int) -> None:
    if value < 1:
        raise ValueError("1 or more")


def _positive_float(value: float) -> None:
    if value <= 0:
        raise ValueError("a number above 0")


def _tokens(value: list[str]) -> None:
    for entry in value:
        who, sep, secret = entry.partition(":")
        if not sep or not who or len(secret) < 8:
            raise ValueError('"who:secret" entries with a secret of 8 or more characters')


def _choice(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in choices:
            raise ValueError("one of " + ", ".join(choices))
    return check


def _storage(value: str) -> None:
    if value not in ("memory", "sqlite") and not (value.startswith("sqlite:") and len(value) > 7):
        raise ValueError("memory, sqlite or sqlite:PATH")


def _host(value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError("a host name or address")


def _addresses(value: list[str]) -> None:
    for entry in value:
        try:
            parse_address(entry, "")
        except ConfigError:
            raise ValueError(f"HOST[:PORT] entries ({entry!r} is not one), e.g. [\"198.18.0.4:9090\"]") from None


# Extra checks beyond the type of the default value.
CHECKS: dict[str, Callable[[Any], None]] = {
    "ns.host": _host,
    "ns.port": _port,
    "ns.fallbacks": _addresses,
    "ns.storage": _storage,
    "client.serializer": _choice(*_SERIALIZERS),
    "client.timeout": _non_negative,
    "client.connect_timeout": _non_negative,
    "client.retries": _non_negative,
    "client.pool_size": _positive,
    "client.workers": _positive,
    "client.busy_wait": _non_negative,
    "service.host": _host,
    "service.port": _port,
    "service.servertype": _choice("adaptive", "thread", "multiplex"),
    "service.threads": _positive,
    "service.oneway_workers": _positive,
    "limits.max_message_size": _positive,
    "limits.max_connections": _positive,
    "limits.max_connections_per_peer": _non_negative,
    "limits.max_pending_per_peer": _positive,
    "limits.max_connect_size": _positive,
    "limits.handshake_timeout": _positive_float,
    "limits.receive_timeout": _positive_float,
    "limits.idle_timeout": _non_negative,
    "limits.busy_wait": _non_negative,
    "ns.max_message_size": _positive,
    "ns.lease_ttl": _positive_float,
    "references.lease": _positive_float,
    "ns.sweep_interval": _positive_float,
    "ns.probe_interval": _positive_float,
    "ns.probe_grace": _non_negative,
    "ns.unreachable_grace": _non_negative,
    "auth.admin_tokens": _tokens,
    "auth.service_tokens": _tokens,
    "auth.reader_tokens": _tokens,
    "log.level": _choice("debug", "info", "warning", "error"),
}


def is_secret(key: str) -> bool:
    """Token settings are never printed: not in errors, not by `lonja config show`."""
    return key in ("auth.admin_tokens", "auth.service_tokens", "auth.reader_tokens", "auth.token")


class Value(NamedTuple):
    """One effective setting and the layer it came from ("default", "file PATH:LINE", "env NAME", "flag --x")."""

    value: Any
    source: str


class Section:
    """Attribute access to one section: `settings.ns.port`."""

    def __init__(self, settings: Settings, name: str) -> None:
        self._settings = settings
        self._name = name

    def __getattr__(self, key: str) -> Any:
        try:
            return self._settings[f"{self._name}.{key}"]
        except KeyError:
            raise AttributeError(f"no setting {self._name}.{key}") from None


class Settings:
    """The effective settings: `settings["ns.port"]`, `settings.ns.port`, `settings.source("ns.port")`.

    Read-only: a Settings is built once and passed down, so whoever holds one can keep it.
    """

    __slots__ = ("_values",)
    _values: Mapping[str, Value]

    def __init__(self, values: Mapping[str, Value]) -> None:
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only: build new ones with load_settings() or with_flags()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("settings are read-only")

    def __getitem__(self, key: str) -> Any:
        return self._values[key].value

    def __getattr__(self, section: str) -> Section:
        if section.startswith("_") or not any(k.startswith(section + ".") for k in self._values):
            raise AttributeError(section)
        return Section(self, section)

    def source(self, key: str) -> str:
        return self._values[key].source

    def items(self) -> Iterator[tuple[str, Value]]:
        return iter(sorted(self._values.items()))

    @property
    def data_dir(self) -> Path:
        return Path(self["data.dir"]).expanduser().resolve()

    @property
    def ns_address(self) -> str:
        """The name servers clients try, in order, as "host:port" (IPv6 hosts in brackets), comma-separated:
        ns.host:ns.port, then each of ns.fallbacks. One name server (no fallbacks) is one "host:port"."""
        return ",".join(format_address(host, port) for host, port in self.ns_addresses)

    @property
    def ns_addresses(self) -> list[tuple[str, int]]:
        """The name servers clients try, in order, as (host, port): ns.host:ns.port, then ns.fallbacks."""
        first = (self["ns.host"], self["ns.port"])
        others = [parse_address(entry, "ns.fallbacks") for entry in self["ns.fallbacks"]]
        return [first, *(address for address in others if address != first)]

    def with_flags(self, flags: Mapping[str, tuple[Any, str]]) -> Settings:
        """A copy with command-line values applied; `flags` maps key -> (value, flag name)."""
        values = dict(self._values)
        for key, (raw, flag) in flags.items():
            if raw is not None:
                values[key] = Value(_coerce(key, raw, values[key].value, f"flag {flag}"), f"flag {flag}")
        return Settings(values)


def load_settings(config_file: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None,
                  flags: Mapping[str, tuple[Any, str]] | None = None,
                  cwd: Path | None = None) -> Settings:
    """Read every layer and return the effective settings, or raise ConfigError naming the culprit."""
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    values = dict(_defaults())

    path = _user_file(config_file, environ, cwd)
    if path is not None:
        _apply_file(values, path)
    _apply_environment(values, environ)
    settings = Settings(values)
    return settings.with_flags(flags or {})


_installed: Settings | None = None
_installing = threading.Lock()


def install_settings(settings: Settings) -> None:
    """Make `settings` this process's settings (the `lonja` command does this after applying its flags)."""
    global _installed
    _installed = settings


def current_settings() -> Settings:
    """This process's settings: those the `lonja` command installed, else the defaults, file and
    environment as read on first use. Read once per process: later changes to the file or the
    environment are not seen (pass `settings=load_settings()` to `connect()` for a fresh read)."""
    global _installed
    if _installed is None:
        with _installing:
            if _installed is None:
                _installed = load_settings()
    return _installed


@functools.lru_cache(maxsize=1)
def _defaults() -> dict[str, Value]:
    """The built-in layer (`defaults.DEFAULTS`)."""
    return {f"{section}.{key}": Value(value, "default") for section, table in DEFAULTS.items()
            for key, value in table.items()}


def parse_address(text: str, what: str, default_port: int = 9090) -> tuple[str, int]:
    """Split "host:port", "[::1]:port" or a bare host (which gets `default_port`, the name server's
    9090); `what` names where the text came from, for the ConfigError that says what is wrong.

    Plain string splitting, no regular expression: compiling one costs a first call by name ~0.3 ms.
    """
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        valid = bool(closed and host) and (not rest or rest.startswith(":"))
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = text.partition(":")
        valid = bool(host) and not any(c in "[]" for c in host)
        port_text = port_text_or_empty if colon else None
    if not valid or any(c.isspace() for c in host) or (port_text is not None and ":" in port_text):
        raise ConfigError(f"invalid address {text!r} from {what}: expected HOST or HOST:PORT, e.g. 127.0.0.1:9090 "
                          f"(an IPv6 address in brackets: [::1]:9090)")
    if port_text is None:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5) or not 0 < int(port_text) <= 65535:
        raise ConfigError(f"invalid port {port_text!r} in {text!r} from {what}: a port is a number 1..65535")
    return host, int(port_text)


def parse_addresses(text: str | Sequence[str], what: str) -> list[tuple[str, int]]:
    """Several name server addresses, comma-separated ("a:9090,b:9090") or as a list of such texts, in
    order and without repeats; at least one, else a ConfigError saying what to write."""
    parts = [text] if isinstance(text, str) else list(text)
    addresses: list[tuple[str, int]] = []
    for part in parts:
        for entry in part.split(","):
            if entry.strip():
                address = parse_address(entry, what)
                if address not in addresses:
                    addresses.append(address)
    if not addresses:
        raise ConfigError(f"no address in {', '.join(parts)!r} from {what}: expected HOST[:PORT], several "
                          f"separated by commas, e.g. 198.18.0.1:9090,198.18.0.4:9090")
    return addresses


def format_address(host: str, port: int) -> str:
    """(host, port) as "host:port", an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ns_flags(addresses: Sequence[tuple[str, int]], source: str) -> dict[str, tuple[Any, str]]:
    """Settings for "clients use these name servers, in order" (LONJA_NS, --ns): the first is ns.host and
    ns.port, the rest ns.fallbacks (so a single address also clears fallbacks set in an earlier layer)."""
    (host, port), others = addresses[0], addresses[1:]
    return {"ns.host": (host, source), "ns.port": (port, source),
            "ns.fallbacks": ([format_address(*address) for address in others], source)}


def _user_file(config_file: Any, environ: Mapping[str, str], cwd: Path) -> Path | None:
    if config_file:
        path, origin = Path(config_file), "--config"
    elif environ.get(ENV_CONFIG):
        path, origin = Path(environ[ENV_CONFIG]), ENV_CONFIG
    else:
        local = cwd / LOCAL_FILE
        return local if local.is_file() else None
    if not path.is_file():
        raise ConfigError(f"config file {path} (from {origin}) does not exist: check the path")
    return path.resolve()


def _apply_file(values: dict[str, Value], path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return
    import tomllib  # programs without a settings file never load the TOML parser

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    lines = text.splitlines()
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}:{_line_of(lines, None, section)}: {section!r} must be a [section]; "
                              f"known sections: {', '.join(_sections(values))}")
        for key, raw in table.items():
            dotted = f"{section}.{key}"
            where = f"file {path}:{_line_of(lines, section, key)}"
            if dotted not in values:
                raise ConfigError(f"unknown setting {dotted!r} in {where}; {_known(values, section)}")
            values[dotted] = Value(_coerce(dotted, raw, values[dotted].value, where), where)


def _apply_environment(values: dict[str, Value], environ: Mapping[str, str]) -> None:
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        raw = environ[name]
        where = f"env {name}"
        if name == ENV_NS:
            for key, (value, _) in ns_flags(parse_addresses(raw, name), where).items():
                values[key] = Value(value, where)
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("_")
        dotted = f"{section}.{key}"
        if dotted not in values:
            raise ConfigError(f"unknown environment variable {name}: remove it, or use one of "
                              f"{ENV_NS}, {ENV_CONFIG} or LONJA_<SECTION>_<KEY> for a known key "
                              f"(see `lonja config show`)")
        values[dotted] = Value(_coerce(dotted, raw, values[dotted].value, where), where)


def _coerce(key: str, raw: Any, default: Any, where: str) -> Any:
    """Turn `raw` into the type of the default (strings from the environment are parsed) and check it."""
    kind = type(default)
    value: bool | int | float | list[str] | str
    try:
        if kind is bool:
            value = _to_bool(raw)
        elif kind is int:
            if isinstance(raw, (bool, float)):
                raise ValueError("an integer")
            value = _converted(int, raw)
        elif kind is float:
            if isinstance(raw, bool):
                raise ValueError("a number")
            value = _converted(float, raw)
        elif kind is list:
            if isinstance(raw, str):
                raw = [item.strip() for item in raw.split(",") if item.strip()]
            if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
                raise ValueError("a list of strings (comma-separated in the environment)")
            value = list(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError("a string")
            value = raw
        check = CHECKS.get(key)
        if check:
            check(value)
    except (TypeError, ValueError) as exc:
        expected = str(exc) or f"a {kind.__name__}"
        shown = "(hidden)" if is_secret(key) else repr(raw)
        raise ConfigError(f"invalid value {shown} for {key} from {where}: expected {expected}") from None
    return value


def _converted(kind: type[int] | type[float], raw: Any) -> Any:
    """`kind(raw)`; a failure says only what was expected (Python's own message names no setting)."""
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError("an integer" if kind is int else "a number") from None


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ValueError("true or false")


def _line_of(lines: list[str], section: str | None, key: str) -> int:
    """The 1-based line that sets `key` inside `[section]` (best effort; 1 if not found)."""
    current = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]\s*(#.*)?", stripped)
        if header:
            current = header.group(1)
            if section is None and current == key:
                return number
            continue
        if current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
        if section is None and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    return 1


def _sections(values: dict[str, Value]) -> list[str]:
    return sorted({k.split(".")[0] for k in values})


def _known(values: dict[str, Value], section: str) -> str:
    keys = [k for k in sorted(values) if k.startswith(section + ".")]
    if keys:
        return "known keys: " + ", ".join(keys)
    return "known sections: " + ", ".join(_sections(values))
