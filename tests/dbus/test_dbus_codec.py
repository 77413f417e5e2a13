"""The documented mapping of our types to D-Bus signatures (docs/dbus.md), without a bus."""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum
from typing import Annotated, Any, Literal

import pytest
from dbus_fast import Message, Variant
from dbus_fast.validators import is_bus_name_valid, is_interface_name_valid

from pyobs.comm.dbus.codec import (
    NULL,
    EncodeError,
    compile_type,
    error_name,
    escape_name,
    plain,
    signature,
    to_variant,
    unescape_name,
)
from pyobs.utils.time import Time


class S(StrEnum):
    A = "a"


class N(IntEnum):
    ONE = 1


class Mixed(Enum):
    A = "a"
    B = 2


@dataclass
class P:
    x: float
    tags: list[str]
    label: str | None = None


@pytest.mark.parametrize(
    ("tp", "sig"),
    [
        (bool, "b"),
        (int, "x"),
        (float, "d"),
        (str, "s"),
        (S, "s"),
        (N, "x"),
        (Mixed, "v"),
        (Time, "s"),
        (list[int], "ax"),
        (list[P], "aa{sv}"),
        (tuple[int, ...], "ax"),
        (tuple[int, str, float], "(xsd)"),
        (list, "av"),
        (tuple, "av"),
        (dict[str, float], "a{sd}"),
        (dict[int, str], "a{xs}"),
        (dict[tuple[int, int], str], "v"),
        (P, "a{sv}"),
        (int | None, "v"),
        (int | str, "v"),
        (Any, "v"),
        (Literal["a", "b"], "s"),
        (Literal[1, 2], "v"),
        (Annotated[float, "deg"], "d"),
        (list[dict[str, list[int]]], "aa{sax}"),
    ],
)
def test_signature_of_declared_types(tp: Any, sig: str) -> None:
    assert signature(tp) == sig


def _wire(sig: str, value: Any) -> Any:
    """Marshal and unmarshal one value as a message body, as the bus would carry it."""
    from dbus_fast._private.unmarshaller import Unmarshaller  # type: ignore[import-not-found]

    msg = Message(path="/a", interface="a.b", member="C", signature=sig, body=[value], serial=1)
    data = bytes(msg._marshall(False))
    unmarshaller = Unmarshaller(io.BytesIO(data))  # type: ignore[arg-type]
    unmarshaller.unmarshall()
    assert unmarshaller.message is not None
    return unmarshaller.message.body[0]


def test_typed_values_cross_the_wire_and_come_back_plain() -> None:
    sig, enc = compile_type(list[P])
    assert enc is not None
    back = plain(_wire(sig, enc([P(1.5, ["a"]), P(2.0, [], "z")])))
    assert back == [{"x": 1.5, "tags": ["a"], "label": None}, {"x": 2.0, "tags": [], "label": "z"}]
    sig, enc = compile_type(tuple[S, N, Time])
    assert enc is not None
    t = Time.from_unix(0)
    assert plain(_wire(sig, enc((S.A, N.ONE, t)))) == ["a", 1, "1970-01-01T00:00:00.000"]


def test_variants_by_runtime_type_and_the_null_variant() -> None:
    value = {"n": None, "i": 3, "f": 1.5, "s": "x", "l": [1, None, "y"], "d": {"k": [True]}, "p": P(1.0, [])}
    back = plain(_wire("v", to_variant(value)))
    assert back == {
        "n": None,
        "i": 3,
        "f": 1.5,
        "s": "x",
        "l": [1, None, "y"],
        "d": {"k": [True]},
        "p": {"x": 1.0, "tags": [], "label": None},
    }
    assert to_variant(None) is NULL and plain(Variant("ay", b"")) is None
    assert to_variant({1: "a"}).signature == "a{xv}"


def test_values_dbus_cannot_carry_are_named() -> None:
    with pytest.raises(EncodeError, match="does not fit D-Bus int64"):
        to_variant(2**70)
    with pytest.raises(EncodeError, match="keys must be all str or all int"):
        to_variant({(1, 2): "a"})
    with pytest.raises(EncodeError, match="cannot send a value of type object"):
        to_variant(object())


@pytest.mark.parametrize("name", ["camera", "cam_1", "cam-1", "1cam", "a.b", "a b", "kamera-ü", "-2d", "x" * 40])
def test_module_names_escape_reversibly_into_bus_names(name: str) -> None:
    element = escape_name(name)
    assert unescape_name(element) == name
    assert is_bus_name_valid(f"org.pyobs.module.{element}")
    if name.isidentifier() and name.isascii():
        assert element == name  # readable names stay readable


@pytest.mark.parametrize(
    "qualname", ["builtins.ValueError", "pyobs.utils.exceptions.MoveError", "mod.f.<locals>.Err", "x.1abc.E"]
)
def test_error_names_are_valid(qualname: str) -> None:
    name = error_name(qualname)
    assert name.startswith("org.pyobs.Error.") and is_interface_name_valid(name)
