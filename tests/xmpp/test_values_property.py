"""Property tests of the urn:pyobs:rpc:1 value codec: every value XML can carry comes back exactly.

Values are encoded, parsed by the same expat parser slixmpp uses and decoded. Strings may hold any
character XML 1.0 can carry, CR, TAB and LF included (a CR used to arrive as LF); the characters it
cannot carry at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF) are refused with a clear
EncodeError instead of being changed.
"""

from __future__ import annotations

import math
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyobs.comm.xmpp.rpc import encode_params, exact, parse_call
from pyobs.comm.xmpp.values import EncodeError, decode, encode, escape_attr

#: every character XML 1.0 can carry (Char production), surrogates excluded
xml_chars = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0xFFFD, exclude_categories=("Cs",)),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
)
xml_text = st.text(alphabet=st.one_of(xml_chars, st.sampled_from("\r\n\t\r\n &<>\"'")), max_size=60)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    xml_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(st.one_of(xml_text, st.integers(-1000, 1000)), inner, max_size=5),
    ),
    max_leaves=25,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=200, deadline=None)
@given(values)
def test_every_value_round_trips_exactly(value: Any) -> None:
    back = decode(ET.fromstring(encode(value)))
    assert _same(back, value), (value, back)


@settings(max_examples=150, deadline=None)
@given(values)
def test_values_between_our_modules_survive_the_server_re_serialising_them(value: Any) -> None:
    """The server parses and re-writes every stanza (a CR comes out raw, and then arrives as LF);
    ElementTree re-serialises the same way."""
    relayed = ET.tostring(ET.fromstring(exact(encode(value))), encoding="unicode")
    assert _same(decode(ET.fromstring(relayed)), value)


@settings(max_examples=80, deadline=None)
@given(st.lists(values, max_size=4))
def test_call_parameters_round_trip_exactly(args: list[Any]) -> None:
    query = (
        '<query xmlns="jabber:iq:rpc"><methodCall><methodName>m</methodName>'
        f"<params>{encode_params(args)}</params></methodCall></query>"
    )
    name, back = parse_call(ET.fromstring(query))
    assert name == "m" and _same(back, args)


@settings(max_examples=200, deadline=None)
@given(xml_text)
def test_attributes_round_trip_exactly(text: str) -> None:
    el = ET.fromstring(f'<a v="{escape_attr(text)}"/>')
    assert el.get("v") == text


@pytest.mark.parametrize("bad", ["a\x00b", "\x01", "\x1b[0m", "\ud800", "\uffff"])
def test_characters_xml_cannot_carry_are_refused_by_name(bad: str) -> None:
    with pytest.raises(EncodeError, match="characters XML cannot carry"):
        encode(bad)


def test_carriage_return_survives() -> None:
    """The case of the issue: a CR arrived as LF."""
    assert decode(ET.fromstring(encode("a\r\nb\rc"))) == "a\r\nb\rc"
