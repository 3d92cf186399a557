"""A method call from words, as `lonja call` and the web console's form make one: the words split and read
as values, the method looked up, and the arguments checked against its signature where the service cannot
say that they were wrong.

A word is ARG or KEY=VALUE; each value is a Python literal if it parses as one, else JSON if it parses as
that (`true`, `null`, `{"on": false}`), otherwise a string.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Mapping
from typing import Any

from .errors import RemoteError, UsageError


def parse_call_arguments(words: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Split ARG and KEY=VALUE words into positional and keyword arguments, each value read by `parse_value`."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key.isidentifier():
            if key in keywords:
                raise UsageError(f"keyword argument {key!r} given twice")
            keywords[key] = parse_value(value)
        else:
            if keywords:
                raise UsageError(f"positional argument {word!r} after a KEY=VALUE argument")
            positional.append(parse_value(word))
    return positional, keywords


def parse_value(text: str) -> Any:
    """`text` as a Python literal if it is one, else as JSON if it is that, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


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


def call_method(proxy: Any, name: str, method: str, positional: list[Any], keywords: dict[str, Any],
                hint: str = "") -> tuple[Any, bool]:
    """Call `method` of the service `name` through `proxy`: the result, and whether the method is oneway.

    A UsageError, with `hint` after it, for a method the service does not have; a UsageError for arguments
    that do not fit its signature, checked before a oneway call (no answer would say so) and after a
    TypeError from the service.
    """
    from .proxy import describe

    methods = describe(proxy, signatures=False)["methods"]  # what connecting brought: no request
    if method not in methods:
        raise UsageError(f"{name} has no method {method!r}; it has: {', '.join(methods)}{hint}")
    oneway = bool(methods[method]["oneway"])
    if oneway:
        check_arguments(name, method, describe(proxy)["methods"][method], positional, keywords)
    try:
        return getattr(proxy, method)(*positional, **keywords), oneway
    except RemoteError as error:
        if isinstance(error, TypeError):
            check_arguments(name, method, describe(proxy)["methods"][method], positional, keywords)
        raise


def check_arguments(name: str, method: str, info: Mapping[str, Any], positional: list[Any],
                    keywords: Mapping[str, Any]) -> None:
    """A UsageError if the arguments do not fit the signature `describe()` reports (none reported: no check)."""
    if info["params"] is None:
        return
    params = []
    for param in info["params"]:
        kind = getattr(inspect.Parameter, param["kind"].upper())
        default = inspect.Parameter.empty if param["default"] is None else param["default"]
        params.append(inspect.Parameter(param["name"], kind, default=default))
    try:
        inspect.Signature(params).bind(*positional, **keywords)
    except TypeError as exc:
        raise UsageError(f"bad arguments for {name}.{method}{info['signature']}: {exc}") from None
    except ValueError:
        pass  # a signature that cannot be rebuilt: the service judges
