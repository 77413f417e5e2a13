"""The urn:pyobs:rpc:1 value codec against the examples of the wire spec (§5, §7, §11)."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import pytest

from pyobs.comm.xmpp.values import DecodeError, EncodeError, decode, decode_fields, encode, encode_fields, encode_top
from pyobs.interfaces.types import CoolingState, DeviceMotionStatus, FitsHeaderEntry, MotionState
from pyobs.utils.enums import ImageType, MotionStatus
from pyobs.utils.time import Time

T0 = Time.parse("2026-01-01T00:00:00.000")


def _decode(text: str) -> Any:
    return decode(ET.fromstring(text))


@pytest.mark.parametrize(
    ("value", "xml"),
    [
        (None, "<nil/>"),
        (True, "<boolean>true</boolean>"),
        (False, "<boolean>false</boolean>"),
        (-7, "<int>-7</int>"),
        (-20.0, "<double>-20.0</double>"),
        (1e-05, "<double>1e-05</double>"),
        (float("inf"), "<double>inf</double>"),
        ("a<b&c", "<string>a&lt;b&amp;c</string>"),
        (ImageType.OBJECT, "<string>object</string>"),
        (T0, "<string>2026-01-01T00:00:00.000</string>"),
        (["a", "b"], "<items><item><string>a</string></item><item><string>b</string></item></items>"),
        ((1, "x"), "<tuple><item><int>1</int></item><item><string>x</string></item></tuple>"),
        ([], "<items/>"),
    ],
)
def test_scalars_and_containers(value: Any, xml: str) -> None:
    assert encode(value) == xml
    back = _decode(xml)
    if isinstance(value, ImageType):
        assert back == value.value
    elif isinstance(value, Time):
        assert back == value.isot
    else:
        assert back == value


def test_fits_header_example_of_the_spec() -> None:
    value = {"EXPTIME": FitsHeaderEntry(10.0, "Exposure time")}
    expected = (
        '<dict><entry><key><string>EXPTIME</string></key><val><state xmlns="urn:pyobs:rpc:1">'
        '<value xmlns=""><double>10.0</double></value><comment xmlns=""><string>Exposure time</string></comment>'
        "</state></val></entry></dict>"
    )
    assert encode(value) == expected
    assert _decode(expected) == {"EXPTIME": {"value": 10.0, "comment": "Exposure time"}}


def test_motion_state_example_of_the_spec() -> None:
    state = MotionState(MotionStatus.TRACKING, [DeviceMotionStatus("dome", MotionStatus.TRACKING)], T0)
    payload = f'<state xmlns="urn:pyobs:state:IMotion:1">{encode_fields(state)}</state>'
    assert payload == (
        '<state xmlns="urn:pyobs:state:IMotion:1"><status xmlns=""><string>tracking</string></status>'
        '<devices xmlns=""><items><item><state xmlns="urn:pyobs:rpc:1"><name xmlns=""><string>dome</string></name>'
        '<status xmlns=""><string>tracking</string></status></state></item></items></devices>'
        '<time xmlns=""><string>2026-01-01T00:00:00.000</string></time></state>'
    )
    assert decode_fields(ET.fromstring(payload)) == {
        "status": "tracking",
        "devices": [{"name": "dome", "status": "tracking"}],
        "time": "2026-01-01T00:00:00.000",
    }


def test_float_fields_travel_as_double_even_when_set_to_an_int() -> None:
    text = encode_fields(CoolingState(setpoint=-20, power=45, enabled=True, time=T0))  # type: ignore[arg-type]
    assert text.startswith('<setpoint xmlns=""><double>-20.0</double></setpoint><power xmlns=""><int>45</int>')


def test_top_level_element_leaves_the_parent_namespace() -> None:
    assert encode_top(True) == '<boolean xmlns="">true</boolean>'
    assert encode_top(None) == '<nil xmlns=""/>'
    assert encode_top(FitsHeaderEntry(1, "c")).startswith('<state xmlns="urn:pyobs:rpc:1">')


def test_decoding_is_tolerant() -> None:
    # vocabulary re-serialised into a parent namespace, empty numbers, an <int> for a float
    assert _decode('<items xmlns="urn:x"><item><int>3</int></item><item><int/></item></items>') == [3, 0]
    assert _decode('<state xmlns="urn:pyobs:rpc:1"><x xmlns="urn:pyobs:rpc:1"><int>1</int></x><y>2.5</y></state>') == {
        "x": 1,
        "y": "2.5",
    }
    assert _decode("<string/>") == ""


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        ("<boolean>yes</boolean>", "true or false"),
        ("<int>1.5</int>", "no integer"),
        ("<double>fast</double>", "no number"),
        ("<dict><entry><val><int>1</int></val></entry></dict>", "without a <key>"),
        ("<dict><entry><key><items/></key><val><nil/></val></entry></dict>", "cannot be a key"),
    ],
)
def test_bad_values_are_named(xml: str, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        _decode(xml)


def test_unsendable_values_are_refused() -> None:
    with pytest.raises(EncodeError, match="cannot send a value of type object"):
        encode(object())
    with pytest.raises(EncodeError, match="characters XML cannot carry"):
        encode("bell\x07")
