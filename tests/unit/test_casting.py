"""Casting plain values to annotated types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Optional

import pytest

from pyobs.utils.casting import CastError, cast, to_plain
from pyobs.utils.time import Time


class Mode(StrEnum):
    A = "a"
    B = "b"


@dataclass
class Inner:
    x: int
    y: float = 0.0


@dataclass
class Outer:
    name: str
    inner: Inner
    items: list[Inner]
    mode: Mode | None = None


@pytest.mark.parametrize(
    "value,tp,expected",
    [
        (1, float, 1.0),
        (2.0, int, 2),
        ("b", Mode, Mode.B),
        (None, Optional[int], None),  # noqa: UP045 - the typing form must work too
        (3, int | None, 3),
        ([1, 2], tuple[int, ...], (1, 2)),
        ([1, "a"], tuple[int, str], (1, "a")),
        ({"a": 1}, dict[str, float], {"a": 1.0}),
        (5, Annotated[float, "deg"], 5.0),
        ("true", bool, True),
        ("2026-01-01T00:00:00.000", Time, Time.parse("2026-01-01T00:00:00")),
        ({"x": 1}, Inner, Inner(1, 0.0)),
        (
            {"name": "n", "inner": {"x": 1, "y": 2}, "items": [{"x": 3}], "mode": "a"},
            Outer,
            Outer("n", Inner(1, 2.0), [Inner(3)], Mode.A),
        ),
        ("anything", Any, "anything"),
    ],
)
def test_cast(value: Any, tp: Any, expected: Any) -> None:
    result = cast(value, tp)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "value,tp,message",
    [
        ("x", int, "expected int, got str"),
        (True, int, "expected int, got bool"),
        (1.5, int, "expected int"),
        ("c", Mode, "'c' is not a valid Mode"),
        ({"y": 1.0}, Inner, "missing field 'x'"),
        ({"x": "no"}, Inner, "Inner.x: expected int"),
        ([1, 2, 3], tuple[int, str], "expected tuple"),
        (None, int, "expected int, got NoneType"),
        (3, str, "expected str, got int"),
    ],
)
def test_cast_errors_name_the_problem(value: Any, tp: Any, message: str) -> None:
    with pytest.raises(CastError, match=message):
        cast(value, tp)


def test_to_plain_round_trip() -> None:
    value = Outer("n", Inner(1, 2.0), [Inner(3)], Mode.A)
    plain = to_plain(value)
    assert plain == {"name": "n", "inner": {"x": 1, "y": 2.0}, "items": [{"x": 3, "y": 0.0}], "mode": "a"}
    assert cast(plain, Outer) == value
    assert to_plain(Time.parse("2026-01-01T00:00:01.25")) == "2026-01-01T00:00:01.250"
    with pytest.raises(CastError, match="cannot send"):
        to_plain(object())
