"""lonja's variants of Pyro5's msgpack, marshal and serpent serializers, registered under their own ids.

- Pyro5 unpacks msgpack with `strict_map_key=True`, so a dict with int keys (`{1: "a"}`) fails on the
  receiving side. lonja's unpacks with `strict_map_key=False`, straight from the received buffer.
- `marshal.loads` allocates whatever a payload declares: a 58-byte message declaring a list of 2**31
  items holds the GIL for seconds. lonja's marshal checks every payload first (`check_marshal`): no
  container may declare more items than bytes remain, nesting is bounded, and code objects are refused.
- serpent reads every message with `ast.literal_eval`, half of a Pyro5 server's Python time for a small
  call. lonja's reads the literals serpent writes with `literals.read`, falling back to serpent.
The wire formats are unchanged, so plain Pyro5 peers still understand everything lonja sends.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from .literals import Unsupported
from .literals import read as read_literal

MAX_MARSHAL_DEPTH = 200
_FIXED = {"N": 0, "F": 0, "T": 0, "S": 0, ".": 0, "i": 4, "g": 8, "y": 16, "r": 4}
_SIZED = {"s", "t", "u", "a", "A"}          # int32 length, then that many bytes
_SHORT_SIZED = {"z", "Z"}                   # one-byte length
_CONTAINERS = {"(", "[", "<", ">"}          # int32 count, then that many items
_DICT_END = "0"


def check_marshal(data: bytes, max_depth: int = MAX_MARSHAL_DEPTH) -> None:
    """ValueError unless `data` is marshal that declares no more than it carries, `max_depth` deep at most."""
    data = bytes(data)
    end, pos = len(data), 0
    stack = [1]  # items still to read per open container; -1: a dict, read until its end marker

    def take(size: int) -> int:
        nonlocal pos
        if size < 0 or pos + size > end:
            raise ValueError("marshal data declares more than it carries")
        pos += size
        return pos - size

    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        code = chr(data[take(1)] & 0x7F)
        if stack[-1] > 0:
            stack[-1] -= 1
        elif code == _DICT_END:
            stack.pop()
            continue
        if code in _FIXED:
            take(_FIXED[code])
        elif code == "l":
            (digits,) = struct.unpack("<i", data[take(4):pos])
            take(abs(digits) * 2)
        elif code in _SIZED:
            take(struct.unpack("<i", data[take(4):pos])[0])
        elif code in _SHORT_SIZED:
            take(data[take(1)])
        elif code in ("f", "x"):
            for _ in range(1 if code == "f" else 2):
                take(data[take(1)])
        elif code in _CONTAINERS or code in (")", "{"):
            if code == "{":
                count = -1
            elif code == ")":
                count = data[take(1)]
            else:
                (count,) = struct.unpack("<i", data[take(4):pos])
                if count < 0 or count > end - pos:
                    raise ValueError("marshal data declares more than it carries")
            stack.append(count)
            if len(stack) > max_depth:
                raise ValueError(f"marshal data nested more than {max_depth} deep")
        else:
            raise ValueError(f"marshal type {code!r} is not accepted")
    if pos != end:
        raise ValueError("marshal data has trailing bytes")


def _read_fast(data: Any) -> tuple[str, Any] | None:
    """A serpent message's text and value as `literals.read` reads them; None where serpent must read it."""
    try:
        text = str(data, "utf-8")
        return text, read_literal(text)
    except (UnicodeDecodeError, TypeError, Unsupported):
        return None


def install_serializers() -> None:
    """Register lonja's marshal, msgpack and serpent serializers with Pyro5 in place of its own (idempotent)."""
    from Pyro5 import serializers

    for name, instance in _lonja_serializers().items():
        serializers.serializers[name] = instance
        serializers.serializers_by_id[instance.serializer_id] = instance


@functools.cache
def _lonja_serializers() -> dict[str, Any]:
    from Pyro5 import serializers

    class LonjaMarshalSerializer(serializers.MarshalSerializer):
        def loads(self, data: Any) -> Any:
            check_marshal(data)
            return super().loads(data)

        def loadsCall(self, data: Any) -> Any:
            check_marshal(data)
            return super().loadsCall(data)

    class LonjaSerpentSerializer(serializers.SerpentSerializer):
        """Reads with `literals.read` where it can, with serpent where it cannot: the same values."""

        none = serializers.SerpentSerializer().dumps(None)  # what most calls answer, made once

        def dumps(self, data: Any) -> Any:
            return self.none if data is None else super().dumps(data)

        def loads(self, data: Any) -> Any:
            read = _read_fast(data)
            if read is None:
                return super().loads(data)
            text, value = read
            return self.recreate_classes(value) if "__class__" in text else value

        def loadsCall(self, data: Any) -> Any:
            read = _read_fast(data)
            if read is None or type(read[1]) is not tuple or len(read[1]) != 4:
                return super().loadsCall(data)  # serpent reads it, or says what is wrong with it
            text, call = read
            if "__class__" not in text:
                return call
            obj, method, vargs, kwargs = call
            return obj, method, self.recreate_classes(vargs), self.recreate_classes(kwargs)

    found = {"marshal": LonjaMarshalSerializer(), "serpent": LonjaSerpentSerializer()}
    if "msgpack" in serializers.serializers:
        import msgpack

        class LonjaMsgpackSerializer(serializers.MsgpackSerializer):
            def loads(self, data: Any) -> Any:  # any buffer: a large message is not copied into bytes first
                return msgpack.unpackb(data, raw=False, strict_map_key=False,
                                       object_hook=self.object_hook, ext_hook=self.ext_hook)

            def loadsCall(self, data: Any) -> Any:
                return self.loads(data)

        found["msgpack"] = LonjaMsgpackSerializer()
    return found
