"""The wire contract: what both sides of a lonja connection agree on, in this one module.

**The handshake.** A lonja client's connect message carries `client_handshake(token, object_id)`: a dict
that tells the server it speaks lonja, with the caller's token. Plain Pyro5 clients send a string
instead; servers tell the two apart with `is_lonja_handshake`, read the token with `handshake_token`, and
answer a lonja client with `server_handshake(...)`.

**A message under the size limit.** Pyro5 checks a message's size as sent (compressed) and then
decompresses it without bound, so a 50 MB argument compressed to 50 KB passes a 100 KB limit. `receive`
checks the declared size first and decompresses with a bound. A message over the limit is read to its
end (so the connection stays in sync) and reported as `TooLarge`, which servers answer with "message too
large (N > M)". One whose payload is too large even to read and discard closes the connection instead.

**A call's exception.** A plain Pyro5 client rebuilds only builtin, sqlite3 and Pyro5 exception classes;
any other class arrives as `SerializeError: unsupported serialized class`, its traceback lost. A lonja
server (`install_encoder`) therefore sends each exception as the nearest class in its MRO that every
Pyro5 client can rebuild:
- a builtin, sqlite3 or Pyro5 exception goes as it is;
- a subclass of a Pyro5 error (such as the name server's `NameAlreadyServed`, a `NamingError`) goes as that
  Pyro5 error with all its attributes: plain clients get a NamingError carrying `served_uri`;
- any other class (a service's own) goes as its nearest builtin parent, built from its message alone, with
  attributes of lonja's: the real type's name (`REMOTE_TYPE`), the remote traceback (`TRACEBACK`), its own
  args and public attributes where they are plain data (`ARGS`, `ATTRIBUTES`).
Every exception that was raised also carries where (`WHERE`: file, line, function of the innermost frame)
and its `__cause__` chain as plain data (`CAUSE`). A plain Pyro5 client sets these as attributes it ignores.
A lonja client turns what arrives into a `RemoteError` (`remote_error_from`): one that arrived as a builtin
becomes a class that is both RemoteError and that builtin, so `except ValueError` works as it would for a
local call; a service's class that the client has imported becomes a class that is both RemoteError and
that class, with its args and attributes; any other is a RemoteError subclass named after the remote type.

**How long a method takes.** A lonja host runs each call and keeps a running average of its seconds per
method; a reply to a call of a method that averages over `SLOW_CALL` carries the annotation `SLOW` (for a
batch: the slow methods' names, comma-separated). Clients merge queued calls of quick methods into batch
requests and never those of slow ones, whose calls must overlap: the server's clock decides, not the
client's, which a busy machine would skew. Plain Pyro5 clients ignore the annotation.

**A connection's refusal.** Pyro5 hands a client a server's refusal only as text, "connection to
HOST:PORT rejected: REASON"; `refusal_of` is the one place that reads it (and `object_gone` and
`too_large` read the two other answers Pyro5 gives only as text).
"""

from __future__ import annotations

import builtins
import enum
import logging
import os
import struct
import sys
import traceback
import zlib
from collections.abc import Sequence
from typing import Any

import Pyro5.errors
from Pyro5 import errors, protocol
from Pyro5.client import _StreamResultIterator
from Pyro5.serializers import SerializerBase

from .connection import BufferedConnection
from .errors import REMOTE_ERROR, LonjaError
from .limits import peer_of

DRAIN_LIMIT = 256 * 1024 * 1024
"""Most bytes read and thrown away (or unzipped, to count them) for a clear answer; past it, the
connection is closed instead."""
_CHUNK = 1024 * 1024

log = logging.getLogger("lonja.wire")


HANDSHAKE_VERSION = 1

MAX_WATCHED = 10_000
"""Most names one `lonja_changes` request may follow; a resolver that cached more follows every change."""

SLOW = "SLOW"
"""A reply's annotation: the method called (or, in a batch, the methods named) averages over SLOW_CALL."""
SLOW_CALL = 0.0005
"""Seconds a method's calls average on its host above which they count as slow: the host runs them off
its socket loop, and clients do not batch them."""


def client_handshake(token: str = "", object_id: str | None = None, resolve: str | None = None) -> dict[str, Any]:
    """The handshake data a lonja client sends: lonja's marker, its token, and the object it wants; to a
    name server, the name it is about to look up (`resolve`): the answer brings its instances, so a
    program's first lookup costs no request of its own."""
    data: dict[str, Any] = {"lonja": HANDSHAKE_VERSION, "token": token}
    if object_id is not None:
        data["object"] = object_id
    if resolve is not None:
        data["resolve"] = resolve
    return data


def name_to_resolve(data: Any) -> str | None:
    """The name a lonja client's handshake asks a name server to look up, if any."""
    name = data.get("resolve") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def is_lonja_handshake(data: Any) -> bool:
    """True if a connect message's handshake data came from a lonja client."""
    return isinstance(data, dict) and bool(data.get("lonja"))


def handshake_token(data: Any) -> str | None:
    """The token in a connect message's handshake data (None from plain Pyro5 clients)."""
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) else None


def server_handshake(**extra: Any) -> dict[str, Any]:
    """What a lonja server answers a lonja client's handshake with (plus what the server adds)."""
    return {"lonja": HANDSHAKE_VERSION, **extra}


def local_address(hello: Any) -> str | None:
    """The local socket (`GuardedServer.listen_locally`) a lonja host's handshake answer offers, if any."""
    address = hello.get("local") if isinstance(hello, dict) else None
    return address if isinstance(address, str) and address.startswith("\0lonja-") else None


def shown_address(address: str) -> str:
    """A local socket's address as `ss` shows an abstract one: "@" for its leading NUL."""
    return "@" + address[1:]


class TooLarge(Exception):
    """A message over the limit, already read to its end: answer it (unless `oneway`) on the same connection."""

    def __init__(self, message: Any, size: str, limit: int, after_decompression: bool) -> None:
        where = " after decompression" if after_decompression else ""
        super().__init__(f"message too large ({size} > {limit} bytes{where}): "
                         f"send less per call, or raise limits.max_message_size on the server")
        self.seq = message.seq
        self.serializer_id = message.serializer_id
        self.oneway = bool(message.flags & protocol.FLAGS_ONEWAY)


def receive(connection: Any, accepted: Sequence[int], limit: int) -> protocol.ReceivingMessage:
    """Read one message from `connection`, as Pyro5's `recv_stub` does, but under `limit` bytes counted
    after decompression: TooLarge if over it, ConnectionClosedError if too large even to drain."""
    if isinstance(connection, BufferedConnection) and connection.pending() >= protocol._header_size:
        header = connection.recv(protocol._header_size)  # read along already: one check of all of it
    else:  # the first 6 bytes tell a stranger apart before waiting for the rest of a header
        header = connection.recv(6)
        protocol.ReceivingMessage.validate(header)
        header += connection.recv(protocol._header_size - 6)
    protocol.ReceivingMessage.validate(header)  # tag, version and magic number
    # Pyro5's own parsing, minus its check against the process-wide MAX_MESSAGE_SIZE: the limit is ours.
    message = protocol.ReceivingMessage.__new__(protocol.ReceivingMessage)
    (_, _, message.type, message.serializer_id, message.flags, message.seq, message.data_size,
     message.annotations_size, message.corr_id, _, _) = struct.unpack(protocol._header_format, header)
    message.data, message.annotations = None, {}
    if accepted and message.type not in accepted:
        error = errors.ProtocolError(f"invalid msg type {message.type} received")
        error.pyroMsg = message
        raise error
    declared = message.data_size + message.annotations_size
    if declared > limit:
        if declared > DRAIN_LIMIT:
            log.warning("closing the connection from %s: it sends a message of %d bytes (the limit is %d, "
                        "and more than %d bytes are not read just to refuse them)",
                        peer_of(connection), declared, limit, DRAIN_LIMIT)
            raise errors.ConnectionClosedError(f"message of {declared} bytes refused, connection closed")
        _drain(connection, declared)
        raise TooLarge(message, str(declared), limit, after_decompression=False)
    payload = connection.recv(declared)
    compressed = message.flags & protocol.FLAGS_COMPRESSED
    message.flags &= ~protocol.FLAGS_COMPRESSED  # Pyro5 would unzip without bound: we do it below
    message.add_payload(payload)
    if compressed:
        message.data = _inflate(message, limit - message.annotations_size, limit)
        message.data_size = len(message.data)
    return message


def _inflate(message: Any, room: int, limit: int) -> bytearray:
    """Unzip a payload a chunk at a time into one growing buffer (a one-shot unzip peaks at twice the
    size), stopping as soon as it exceeds `room`: TooLarge then."""
    inflater = zlib.decompressobj()
    data = bytearray()
    pending = message.data
    while pending and len(data) <= room:
        data += inflater.decompress(pending, _CHUNK)
        pending = inflater.unconsumed_tail
    if len(data) <= room:
        data += inflater.flush()
    if len(data) > room:
        raise TooLarge(message, _inflated_size(inflater, len(data) + message.annotations_size), limit,
                       after_decompression=True)
    return data


def _inflated_size(inflater: Any, size: int) -> str:
    """Unzip the rest (thrown away) to count it, up to DRAIN_LIMIT: "N", or "more than N" past it."""
    while inflater.unconsumed_tail and size <= DRAIN_LIMIT:
        size += len(inflater.decompress(inflater.unconsumed_tail, _CHUNK))
    if inflater.unconsumed_tail:
        return f"more than {size}"
    return str(size + len(inflater.flush()))


def _drain(connection: Any, size: int) -> None:
    while size > 0:
        size -= len(connection.recv(min(_CHUNK, size)))


# -- a call's exception ------------------------------------------------------------------------------

REMOTE_TYPE = "lonja_remote_type"
"""The attribute that carries a service exception's real type name ("package.module.Class")."""
TRACEBACK = "_pyroTraceback"
"""Pyro5's attribute for the remote traceback (a list of lines)."""
ARGS = "lonja_args"
"""The attribute that carries a service exception's own `args` when they are plain data (the exception
travels as a builtin built from its message alone, so that plain Pyro5 clients can rebuild it)."""
ATTRIBUTES = "lonja_attributes"
"""The attribute that carries a service exception's public attributes that are plain data."""
WHERE = "lonja_where"
"""The attribute that carries where an exception was raised: [file, line, function] of its innermost frame."""
CAUSE = "lonja_cause"
"""The attribute that carries an exception's `__cause__` as plain data: a dict with its type, nearest
builtin base, message, args, attributes, where, traceback lines and its own cause."""
MAX_CAUSES = 8
"""How many links of a `__cause__` chain travel."""
_PLAIN_DEPTH = 16


class RemoteError(LonjaError):
    """The remote method raised. Carries the remote type name, message and traceback, where it was raised
    (`remote_location`: file, line and function of the innermost remote frame, None if the service did not
    say) and the remote `__cause__` chain (`remote_cause`; also `__cause__` of the errors of calls, futures
    and batches)."""

    exit_code = REMOTE_ERROR
    label = "remote error"
    results: list[Any]
    """Only on the error a batch raises (`Batch.results()`): the results of the calls before the failed one."""
    remote_location: tuple[str, int, str] | None = None
    remote_cause: BaseException | None = None

    def __init__(self, remote_type: str, message: str, remote_traceback: str = "",
                 remote_location: tuple[str, int, str] | None = None) -> None:
        super().__init__(f"{remote_type}: {message}" if message else remote_type)
        self.remote_type = remote_type
        self.message = message
        self.remote_traceback = remote_traceback
        self.remote_location = remote_location

    def one_line(self) -> str:
        text = f"{self.remote_type}: {self.message}" if self.message else self.remote_type
        where = self.remote_where()
        return f"{text} ({where})" if where else text

    def remote_where(self) -> str:
        """"FILE line N, in FUNCTION" (the file's base name) for the innermost remote frame; "" if unknown."""
        if self.remote_location is None:
            return ""
        file, line, function = self.remote_location
        return f"{os.path.basename(file)} line {line}, in {function}"

    def remote_summary(self, traceback_hint: str = "sys.last_value.remote_traceback") -> list[str]:
        """The error in a few lines, as an interactive session shows it: type and message, where the
        service raised it, each cause, and where the full remote traceback is (`traceback_hint`)."""
        lines = [f"{self.remote_type}: {self.message}" if self.message else self.remote_type]
        if self.remote_where():
            lines.append(f"  raised remotely at {self.remote_where()}")
        cause = self.remote_cause
        while isinstance(cause, RemoteError):
            lines.append(f"  caused by {cause.remote_type}: {cause.message}" +
                         (f" ({cause.remote_where()})" if cause.remote_where() else ""))
            cause = cause.remote_cause
        if self.remote_traceback:
            lines.append(f"  the remote traceback: print({traceback_hint})")
        return lines

    def _render_traceback_(self) -> list[str]:
        """IPython's and Jupyter's hook: they show `remote_summary()` instead of lonja's own client frames."""
        return self.remote_summary()


# -- the server's side ---------------------------------------------------------------------------------

def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Pyro5's dict form of `exc`, as the nearest class a plain Pyro5 client can rebuild (see above)."""
    kind = type(exc)
    if _rebuildable(kind):
        return _as(kind, exc.args, {**vars(exc), **_context_of(exc)})
    for parent in kind.__mro__[1:]:
        if issubclass(parent, Pyro5.errors.PyroError) and _rebuildable(parent):
            return _as(parent, exc.args, vars(exc))
    message = str(exc)
    attributes = {TRACEBACK: getattr(exc, TRACEBACK, None), REMOTE_TYPE: f"{kind.__module__}.{kind.__qualname__}",
                  **_own_data(exc, ARGS, ATTRIBUTES), **_context_of(exc)}
    return _as(_nearest_builtin(kind, message), (message,), attributes)


def install_encoder() -> None:
    """Make every serializer send exceptions with `exception_to_dict`; safe to call more than once.

    Pyro5 (and serpent) use the first registered class that an object is an instance of, in the order of
    registration, not the most specific one. So one converter, for BaseException, decides for every
    exception, and no module registers one for a subclass: which would win would depend on import order.
    """
    SerializerBase.register_class_to_dict(BaseException, exception_to_dict)


def _rebuildable(kind: type) -> bool:
    """True for the exception classes every Pyro5 client can rebuild by itself."""
    if kind.__module__ == "builtins":
        return getattr(builtins, kind.__name__, None) is kind
    if kind.__module__ == "Pyro5.errors":
        return getattr(Pyro5.errors, kind.__name__, None) is kind
    return kind.__module__ == "sqlite3"


def _nearest_builtin(kind: type, message: str) -> type:
    """The first builtin class in `kind`'s MRO that can be built from `message` alone."""
    for parent in kind.__mro__[1:]:
        if parent.__module__ == "builtins" and _rebuildable(parent):
            try:
                parent(message)
            except Exception:
                continue
            return parent
    return Exception


def _as(kind: type, args: tuple, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"__class__": f"{kind.__module__}.{kind.__name__}", "__exception__": True, "args": args,
            "attributes": attributes}


def _type_name(kind: type) -> str:
    """A remote type's name as clients see it: "ValueError" for a builtin, else "module.Qualname"."""
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _plain(value: Any, depth: int = 0) -> bool:
    """True if `value` is data every serializer carries the same: None, bool, int, float, str, and lists,
    tuples and str-keyed dicts of them."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return True
    if depth >= _PLAIN_DEPTH:
        return False
    if kind in (list, tuple):
        return all(_plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain(item, depth + 1) for key, item in value.items())
    return False


def _own_data(exc: BaseException, args_key: str, attributes_key: str) -> dict[str, Any]:
    """An exception's args (if plain data) and its public attributes that are plain data."""
    data: dict[str, Any] = {}
    if exc.args and _plain(exc.args):
        data[args_key] = list(exc.args)
    attributes = {name: value for name, value in vars(exc).items() if not name.startswith("_") and _plain(value)}
    if attributes:
        data[attributes_key] = attributes
    return data


def _context_of(exc: BaseException) -> dict[str, Any]:
    """Where `exc` was raised and its `__cause__` chain, as attributes (empty for one never raised)."""
    data: dict[str, Any] = {}
    where = _where(exc)
    if where is not None:
        data[WHERE] = where
    cause = _cause_data(exc.__cause__, 1)
    if cause is not None:
        data[CAUSE] = cause
    return data


def _where(exc: BaseException) -> list[Any] | None:
    """[file, line, function] of the innermost frame of `exc`'s traceback, or None if it has none."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return [code.co_filename, tb.tb_lineno, code.co_name]


def _cause_data(cause: BaseException | None, depth: int) -> dict[str, Any] | None:
    """`cause` (and its own cause, up to MAX_CAUSES links) as plain data (see CAUSE)."""
    if cause is None or depth > MAX_CAUSES:
        return None
    kind = type(cause)
    message = str(cause)
    base = kind if kind.__module__ == "builtins" and _rebuildable(kind) else _nearest_builtin(kind, message)
    data: dict[str, Any] = {"type": _type_name(kind), "base": base.__name__, "message": message,
                            "traceback": traceback.format_exception(kind, cause, cause.__traceback__, chain=False),
                            **_own_data(cause, "args", "attributes")}
    where = _where(cause)
    if where is not None:
        data["where"] = where
    deeper = _cause_data(cause.__cause__, depth + 1)
    if deeper is not None:
        data["cause"] = deeper
    return data


# -- the client's side ---------------------------------------------------------------------------------

_remote_builtin_types: dict[type, type] = {}
_remote_types: dict[tuple[str, type], type[RemoteError]] = {}
_MAX_REMOTE_TYPES = 512  # classes made for remote types, kept for reuse; past this, made afresh each time


def remote_error_from(exc: BaseException) -> RemoteError:
    """Turn an exception that came back from a service into a RemoteError.

    - A builtin exception (ValueError, KeyError, ...) becomes a subclass of both RemoteError and that
      builtin, so `except ValueError` works as it would for a local call.
    - A service's own class that this process has imported (its module is in `sys.modules`) becomes a
      subclass of both RemoteError and that class, with the exception's args and plain-data attributes:
      `except OutOfStock` works and `error.sku` is there. lonja's own errors and classes of `__main__`
      are not looked up (a remote `ServiceUnreachable` must not read as a local one).
    - Any other class becomes a RemoteError subclass named after the remote type (and derived from the
      builtin it arrived as, if that is not plain Exception).
    The innermost remote frame is `remote_location`; the `__cause__` chain is `remote_cause` and `__cause__`.
    """
    kind = type(exc)
    args = getattr(exc, ARGS, None)
    error = _rebuild(getattr(exc, REMOTE_TYPE, None) or _type_name(kind), kind,
                     tuple(args) if isinstance(args, (list, tuple)) else exc.args, str(exc),
                     "".join(getattr(exc, TRACEBACK, None) or []), getattr(exc, ATTRIBUTES, None),
                     getattr(exc, WHERE, None))
    cause = _cause_from(getattr(exc, CAUSE, None), 1)
    if cause is not None:
        error.remote_cause = error.__cause__ = cause
    return error


def _rebuild(remote_type: str, arrived: type, args: tuple, message: str, remote_traceback: str,
             attributes: Any, where: Any) -> RemoteError:
    """A RemoteError of the class `_error_class` picks, with the remote exception's args and attributes."""
    error_class = _error_class(remote_type, arrived)
    try:
        error = error_class.__new__(error_class)
    except Exception:  # a class whose __new__ wants arguments of its own
        error = RemoteError.__new__(RemoteError)
    error.args = args
    error.message = message
    if isinstance(attributes, dict):
        for name, value in attributes.items():
            if isinstance(name, str) and name.isidentifier() and not name.startswith("_") \
                    and not hasattr(RemoteError, name):  # never over lonja's own (remote_type, one_line, ...)
                try:
                    setattr(error, name, value)
                except (AttributeError, TypeError):  # a read-only property of the class
                    pass
    error.remote_type = remote_type
    error.remote_traceback = remote_traceback
    error.remote_location = _location(where)
    return error


def _location(where: Any) -> tuple[str, int, str] | None:
    if isinstance(where, (list, tuple)) and len(where) == 3 and isinstance(where[1], int):
        return str(where[0]), where[1], str(where[2])
    return None


def _cause_from(data: Any, depth: int) -> RemoteError | None:
    """The RemoteError a CAUSE dict describes, with its own cause."""
    if not isinstance(data, dict) or depth > MAX_CAUSES:
        return None
    message = str(data.get("message", ""))
    base = getattr(builtins, str(data.get("base")), Exception)
    if not (isinstance(base, type) and issubclass(base, Exception)):
        base = Exception
    args = data.get("args")
    lines = data.get("traceback")
    error = _rebuild(str(data.get("type") or base.__name__), base,
                     tuple(args) if isinstance(args, (list, tuple)) else (message,), message,
                     "".join(lines) if isinstance(lines, list) else "", data.get("attributes"), data.get("where"))
    deeper = _cause_from(data.get("cause"), depth + 1)
    if deeper is not None:
        error.remote_cause = error.__cause__ = deeper
    return error


def _error_class(remote_type: str, arrived: type) -> type[RemoteError]:
    """The class for a remote exception of type `remote_type` that arrived as `arrived` (see
    `remote_error_from`), made once per remote type."""
    if remote_type == _type_name(arrived):  # a builtin, Pyro5 or sqlite3 exception: it arrived as itself
        return _remote_class_for(arrived)
    key = (remote_type, arrived)
    made = _remote_types.get(key)
    if made is not None:
        return made
    local = _local_class(remote_type)
    module, _, name = remote_type.rpartition(".")
    attributes = {"__module__": module or "builtins", "__qualname__": name, "__str__": _remote_str}
    if local is not None:
        made = _combined(local.__name__, (RemoteError, local),
                         {"__module__": local.__module__, "__qualname__": local.__qualname__})
    if made is None and arrived is not Exception:
        made = _combined(name, (RemoteError, arrived), attributes)
    if made is None:
        made = _combined(name, (RemoteError,), attributes) or RemoteError
    if len(_remote_types) < _MAX_REMOTE_TYPES:
        _remote_types[key] = made
    return made


def _remote_str(error: RemoteError) -> str:
    """str() of an error whose class this process lacks: the service's own str() of it."""
    return error.message


def _combined(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type[RemoteError] | None:
    try:
        return type(name, bases, namespace)
    except TypeError:  # a layout conflict (OSError's subclasses) or a class that refuses subclasses
        return None


def _local_class(remote_type: str) -> type[Exception] | None:
    """The exception class named `remote_type` ("module.Qualname") if this process has imported its module,
    found without running any code (no import, no module `__getattr__`); None for lonja's own errors."""
    parts = remote_type.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        module = sys.modules.get(module_name)
        if module is None:
            continue
        if module_name == "__main__":
            return None
        found: Any = module
        for part in parts[split:]:
            found = vars(found).get(part) if hasattr(found, "__dict__") else None
        if isinstance(found, type) and issubclass(found, Exception) and not issubclass(found, LonjaError):
            return found
        return None
    return None


def _remote_class_for(kind: type) -> type[RemoteError]:
    """RemoteError combined with `kind` (cached), or RemoteError itself where they cannot combine."""
    if kind is Exception:
        return RemoteError
    combined = _remote_builtin_types.get(kind)
    if combined is None:
        combined = _combined(f"Remote{kind.__name__}", (RemoteError, kind), {"__module__": __name__}) or RemoteError
        _remote_builtin_types[kind] = combined
    return combined


# -- a connection's refusal ----------------------------------------------------------------------------

class Refusal(enum.Enum):
    """Why a server refused a connection, as far as its answer tells."""

    BUSY = "busy"                        # it is at a connection limit: try again later
    NO_SUCH_OBJECT = "no such object"    # the address answers, but hosts no such object
    DENIED = "denied"                    # it holds something against this caller (its token, mostly)


_BUSY_REASONS = ("too many connections",  # lonja's connection caps (config.transport, GuardedServer._refusal)
                 "no free workers")       # Pyro5's thread server with every pool thread taken
_NO_OBJECT_REASON = "unknown object"     # Pyro5's and lonja's handshake answer for an object not hosted there


def refusal_of(exc: BaseException | None) -> tuple[Refusal, str] | None:
    """(why, the server's own reason) if `exc` is a server's refusal of a connection, else None.

    Pyro5 raises a plain CommunicationError with the text "connection to HOST:PORT rejected: REASON", so
    this reads the text; nothing else in lonja does.
    """
    if not isinstance(exc, Pyro5.errors.CommunicationError):
        return None
    head, marker, reason = str(exc).partition(" rejected: ")
    if not marker or not head.startswith("connection to "):
        return None
    reason = reason.strip()
    if reason.startswith(_BUSY_REASONS):
        return Refusal.BUSY, reason
    if reason == _NO_OBJECT_REASON:
        return Refusal.NO_SUCH_OBJECT, reason
    return Refusal.DENIED, reason


def handshake_dropped(exc: BaseException) -> bool:
    """True if a peer took the connection and then closed it without answering the handshake: what a Pyro5
    daemon does with a serializer it does not have (msgpack, when Pyro5 was installed without it)."""
    return isinstance(exc, Pyro5.errors.ConnectionClosedError)


def object_gone(exc: BaseException) -> bool:
    """True if `exc` is a daemon's answer that it hosts no such object (Pyro5 says so only in text)."""
    return isinstance(exc, Pyro5.errors.DaemonError) and _NO_OBJECT_REASON in str(exc)


def too_large(exc: BaseException) -> bool:
    """True if `exc` says a message was over a size limit: a server's MessageTooLargeError answer, or
    Pyro5's own check of what this process sends (a plain ProtocolError, told apart only by its text)."""
    return isinstance(exc, Pyro5.errors.MessageTooLargeError) or (
        isinstance(exc, Pyro5.errors.ProtocolError) and str(exc).startswith("message too large"))


# -- what a call's answer holds ------------------------------------------------------------------------

def batch_failure(value: Any) -> BaseException | None:
    """The exception a batch's result list ends with when a call in it failed (Pyro5 wraps it), else None."""
    import Pyro5.core

    return value.exception if isinstance(value, Pyro5.core._ExceptionWrapper) else None


def slow_methods(annotations: dict[str, Any], method: str) -> set[str] | None:
    """The methods a reply says are slow (see SLOW); None if the reply does not say (quick, or an older
    or plain Pyro5 host)."""
    value = annotations.get(SLOW)
    if value is None:
        return None
    names = bytes(value).decode("utf-8", "replace")
    return set(names.split(",")) if names else {method}


def is_stream(result: Any) -> bool:
    """True if a call's result is Pyro5's iterator over a streamed answer (items come as they are made)."""
    return isinstance(result, _StreamResultIterator)
