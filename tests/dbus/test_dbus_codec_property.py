"""Property tests of the D-Bus value codec: values marshalled as the bus carries them come back exactly.

D-Bus strings are UTF-8 without NUL: every other character (CR, TAB, C0/C1 controls included)
travels unchanged. Integers are int64.
"""

from __future__ import annotations

import io
import math
from typing import Any

from dbus_fast import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from pyobs.comm.dbus.codec import compile_type, plain, to_variant

dbus_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=1, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
        st.sampled_from("\r\n\t\x01\x1b\x7f\x85"),
    ),
    max_size=60,
)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.one_of(st.none(), st.booleans(), int64, st.floats(allow_nan=True, allow_infinity=True), dbus_text)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(dbus_text, inner, max_size=5),
        st.dictionaries(int64, inner, max_size=5),
    ),
    max_leaves=25,
)


def _wire(sig: str, value: Any) -> Any:
    """Marshal and unmarshal one value as a message body, as the bus would carry it."""
    from dbus_fast._private.unmarshaller import Unmarshaller  # type: ignore[import-not-found]

    msg = Message(path="/a", interface="a.b", member="C", signature=sig, body=[value], serial=1)
    unmarshaller = Unmarshaller(io.BytesIO(bytes(msg._marshall(False))))  # type: ignore[arg-type]
    unmarshaller.unmarshall()
    assert unmarshaller.message is not None
    return unmarshaller.message.body[0]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=120, deadline=None)
@given(values)
def test_every_value_round_trips_exactly_as_a_variant(value: Any) -> None:
    back = plain(_wire("v", to_variant(value)))
    assert _same(back, value), (value, back)


@settings(max_examples=60, deadline=None)
@given(st.lists(dbus_text, max_size=5), st.dictionaries(dbus_text, st.lists(int64, max_size=3), max_size=4))
def test_declared_types_round_trip_exactly(texts: list[str], table: dict[str, list[int]]) -> None:
    sig, enc = compile_type(list[str])
    assert plain(_wire(sig, enc(texts) if enc else texts)) == texts
    sig, enc = compile_type(dict[str, list[int]])
    assert plain(_wire(sig, enc(table) if enc else table)) == table
