"""The fast serpent reader gives exactly what serpent gives, or leaves the text to serpent.

Every case compares `literals.read` with `serpent.loads` on the same text: on serpent's own output, on that
output with characters inserted, deleted or replaced, and on random sequences of literal-like tokens.
Whenever `read` answers, serpent must answer the same value of the same types (or `read` must have said
Unsupported where serpent raises).
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import serpent
from hypothesis import HealthCheck, given, settings

from lonja.config.literals import Unsupported, read
from lonja.config.serializers import _lonja_serializers

FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def canonical(value):
    """`value` with every type made explicit, so that 1 == 1.0 == True and -0.0 == 0.0 are told apart."""
    kind = type(value).__name__
    if isinstance(value, float):
        return kind, repr(value)
    if isinstance(value, (list, tuple)):
        return kind, tuple(canonical(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return kind, tuple(sorted(repr(canonical(item)) for item in value))
    if isinstance(value, dict):
        return kind, tuple(sorted((repr(canonical(k)), repr(canonical(v))) for k, v in value.items()))
    return kind, value


def agrees_with_serpent(text: str) -> bool:
    """False only if `read` answers something serpent does not."""
    try:
        fast = canonical(read(text))
    except Unsupported:
        return True
    try:
        slow = canonical(serpent.loads(text.encode("utf-8", "surrogatepass")))
    except Exception:
        return False
    return fast == slow


keys = st.one_of(st.text(max_size=6), st.integers(), st.floats(allow_nan=False), st.booleans(),
                 st.tuples(st.integers(), st.text(max_size=3)))  # what serpent accepts as a key
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**40, max_value=10**40),
                    st.floats(), st.text(max_size=10), st.sampled_from(["", "PYRO:obj@127.0.0.1:9", "it's", 'a"b']))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
    st.dictionaries(keys, inner, max_size=4), st.sets(keys, max_size=4)), max_leaves=12)
TOKENS = ["(", ")", "[", "]", "{", "}", ",", ":", "'a'", "''", "'b c'", "1", "-2", "2.5", "None", "True", "False",
          " ", "\n", "1e5", "0x1", "1j", "-", "+", "*", "x", "...", "0", "00", "1.", ".5", "'", '"q"', "#c\n",
          "\t", "not", "if", "lambda", "=", "**", "\\", "\x00", "é"]


@FUZZ
@given(values)
def test_serpents_own_output_reads_the_same(value):
    text = serpent.dumps(value, module_in_classname=True).decode()
    assert agrees_with_serpent(text), text


@FUZZ
@given(values, st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.sampled_from("".join(TOKENS))),
                        min_size=1, max_size=4))
def test_damaged_output_is_never_misread(value, edits):
    text = list(serpent.dumps(value, module_in_classname=True).decode())
    for operation, position, character in edits:
        position %= len(text) + 1
        if operation == 0 and position < len(text):
            del text[position]
        elif operation == 1:
            text.insert(position, character)
        elif position < len(text):
            text[position] = character
    assert agrees_with_serpent("".join(text))


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_token_soup_is_never_misread(tokens):
    assert agrees_with_serpent("".join(tokens))


@pytest.mark.parametrize("text", [
    "'abc'[0]", "[1][0]", "(1,2)[1]", "{'a':1}['a']", "'a' 'b'", "f'x'", "b'x'", "1 -2", "1j", "1_000", "0x10",
    " ", "", "x", "(1)(2)", "'a'()", "# serpent utf-8 python3.2\n 1", "#\x00\n1", "'\\x41'", "1\n,2",
])
def test_what_is_not_a_plain_literal_is_left_to_serpent(text):
    with pytest.raises(Unsupported):
        read(text)


def test_a_pyro5_call_is_read_without_serpent():
    serializer = _lonja_serializers()["serpent"]
    call = serializer.dumpsCall("Pyro.NameServer", "register", ("shop.cart", "PYRO:obj_1@127.0.0.1:9"), {})
    assert read(call.decode()) == ("Pyro.NameServer", "register", ("shop.cart", "PYRO:obj_1@127.0.0.1:9"), {})
    assert serializer.loadsCall(call) == ("Pyro.NameServer", "register", ("shop.cart", "PYRO:obj_1@127.0.0.1:9"), {})


def test_the_serializer_still_recreates_classes():
    """A value serpent writes as a "__class__" dict (an exception, a NaN) comes back as that object."""
    serializer = _lonja_serializers()["serpent"]
    error = serializer.loads(serializer.dumps(ValueError("bad value")))
    assert type(error) is ValueError and str(error) == "bad value"
    assert math.isnan(serializer.loads(serializer.dumps([float("nan")]))[0])
    assert serializer.loads(serializer.dumps(None)) is None
