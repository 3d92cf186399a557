"""A fast reader for the Python literals that serpent writes: a request decoded without `ast.literal_eval`.

serpent (Pyro5's default serializer) reads every message with `ast.literal_eval`, which builds a syntax
tree first: for a small call that is about half of what a Pyro5 server spends in Python on a request.
Yet the messages of one kind of call all have the same shape, the same brackets and commas around
different strings and numbers: `('Pyro.NameServer','register',('a.b','PYRO:x@h:1'),{})`.

`read` replaces the literals with one letter each (regular expressions, in C), which leaves the shape
(`(s,s,(s,s),{})`), and takes the literals out in one more pass. The first time a shape is seen it is
checked (only brackets, commas, colons, the three constants and literals, nothing that indexes or calls)
and compiled once into a function that builds the value from the literals, so the value is made with
Python's own literal rules. Whatever is outside that subset (escapes in strings, bytes, complex numbers,
other whitespace, long texts) raises `Unsupported`, and the caller reads it with serpent: the result is
always the value serpent gives, and every error is serpent's own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

MAX_LENGTH = 4096
"""Longer texts are left to serpent: their shapes are seldom repeated, and cached shapes stay small."""
SHAPES = 512
"""How many shapes are kept compiled."""

_TEXT = r"[^'\"\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]*"  # no quote, no escape, nothing repr() escapes
_NUMBER_END = r"(?![0-9A-Za-z_.])"
_FLOAT = rf"-?(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+){_NUMBER_END}"
_INT = rf"-?(?:0|[1-9][0-9]*){_NUMBER_END}"
_CODE = {"s": "v[{}][0]", "f": "_float(v[{}][1])", "i": "_int(v[{}][2])"}


class _Patterns:
    """The regular expressions, compiled on first use (see `_patterns`)."""

    def __init__(self) -> None:
        self.header = re.compile(r"#[ -~]*\n")  # a comment line of printable ASCII
        self.literal = re.compile(rf"'({_TEXT})'|({_FLOAT})|({_INT})")  # the groups a builder reads
        self.string = re.compile(rf"'{_TEXT}'")
        self.floats = re.compile(_FLOAT)
        self.ints = re.compile(_INT)
        self.shape_token = re.compile(r"None|True|False|[sfi()\[\]{},:]| ")
        self.valid_shape = re.compile(r"(?:None|True|False|[sfi()\[\]{},:]| )+")
        self.indexed_or_called = re.compile(r"[sfie)\]}] *[(\[]")  # a value followed by ( or [


@functools.cache
def _patterns() -> _Patterns:
    """A process that never reads serpent (a lonja client on msgpack) never compiles them."""
    return _Patterns()


class Unsupported(Exception):
    """The text is outside what `read` reads (or is not a valid literal): read it with serpent."""


def read(text: str) -> Any:
    """The value of one serpent document (its header line included), or Unsupported.

    Strings are taken as they are written (no escapes): a "__class__" in the value is in `text` as such.
    """
    patterns = _patterns()
    if text.startswith("#"):  # serpent's header line: "# serpent utf-8 python3.2"
        header = patterns.header.match(text)
        text = text[header.end():] if header else ""
        if text.startswith(" "):  # an indented line after the comment: a syntax error
            raise Unsupported
    if len(text) > MAX_LENGTH:
        raise Unsupported
    shape = patterns.ints.sub("i", patterns.floats.sub("f", patterns.string.sub("s", text)))
    build, slots = _builder(shape)
    literals = patterns.literal.findall(text)
    if len(literals) != slots:  # a letter s, f or i in the text itself, outside a string
        raise Unsupported
    try:
        return build(literals)
    except Exception:  # an unhashable key, an int too long: serpent says what is wrong
        raise Unsupported from None


@functools.lru_cache(maxsize=SHAPES)
def _builder(shape: str) -> tuple[Callable[[list[tuple[str, str, str]]], Any], int]:
    """The function that builds a value of this shape from its literals, and how many literals it takes;
    Unsupported if the shape is not one of a literal (anything but brackets, commas, colons, constants and
    literals, or an index or call)."""
    patterns = _patterns()
    if not patterns.valid_shape.fullmatch(shape) or patterns.indexed_or_called.search(shape):
        raise Unsupported
    code, slot = [], 0
    for token in patterns.shape_token.findall(shape):
        if token in _CODE:
            code.append(_CODE[token].format(slot))
            slot += 1
        elif token != " ":
            code.append(token)
    if not code:  # only spaces: "( )" would make an empty tuple of nothing
        raise Unsupported
    try:  # the code is made above from checked tokens only: slots, brackets, commas, colons, constants
        build: Callable[[list[tuple[str, str, str]]], Any] = eval(
            compile("lambda v: (" + " ".join(code) + ")", "<serpent shape>", "eval"),
            {"__builtins__": {}, "_int": int, "_float": float})
    except (SyntaxError, MemoryError, RecursionError):
        raise Unsupported from None
    return build, slot
