"""The user-defined interface of the behaviour suite, declared again with pyobs-core's Interface base.

Same names, methods, parameter order and types as ``tests/behaviour/support.py`` on our side, so both
sides agree on the wire (interface ``IKitchenSink`` version 1, positional parameters).
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pyobs.events import Event
from pyobs.interfaces import Interface
from pyobs.modules import timeout
from pyobs.utils.exceptions import InvalidArgumentError, MoveError


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


@dataclass
class Point:
    x: float
    y: float
    label: str | None = None


@dataclass
class Track:
    name: str
    points: list[Point]
    color: Color = Color.RED


class IKitchenSink(Interface):
    """Every type of the value vocabulary (pyobs-core side)."""

    @abstractmethod
    async def echo_bool(self, value: bool, **kwargs: Any) -> bool: ...
    @abstractmethod
    async def echo_int(self, value: int, **kwargs: Any) -> int: ...
    @abstractmethod
    async def echo_float(self, value: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def echo_str(self, value: str, **kwargs: Any) -> str: ...
    @abstractmethod
    async def echo_enum(self, value: Color, **kwargs: Any) -> Color: ...
    @abstractmethod
    async def echo_list(self, value: list[int], **kwargs: Any) -> list[int]: ...
    @abstractmethod
    async def echo_tuple(self, value: tuple[int, str, float], **kwargs: Any) -> tuple[int, str, float]: ...
    @abstractmethod
    async def echo_dict(self, value: dict[str, float], **kwargs: Any) -> dict[str, float]: ...
    @abstractmethod
    async def echo_point(self, value: Point, **kwargs: Any) -> Point: ...
    @abstractmethod
    async def echo_track(self, value: Track, **kwargs: Any) -> Track: ...
    @abstractmethod
    async def echo_optional(self, value: int | None = None, **kwargs: Any) -> int | None: ...
    @abstractmethod
    async def echo_annotated(self, value: Annotated[float, "deg"], **kwargs: Any) -> Annotated[float, "deg"]: ...
    @abstractmethod
    async def combine(self, a: int, b: float, c: str = "x", **kwargs: Any) -> str: ...
    @abstractmethod
    async def nothing(self, **kwargs: Any) -> None: ...
    @abstractmethod
    async def sleep(self, seconds: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def sleep_announced(self, seconds: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def fail(self, kind: str, **kwargs: Any) -> None: ...
    @abstractmethod
    async def whoami(self, **kwargs: Any) -> str: ...


class FlapMoved(Event):
    """A user-defined event; data ``{"flap": str, "angle": float}`` like ours."""

    def __init__(self, flap: str = "", angle: float = 0.0, **kwargs: Any) -> None:
        Event.__init__(self, **kwargs)
        self.data = {"flap": flap, "angle": angle}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        # pyobs-core's EventFactory hands over the event's data (plus bookkeeping keys)
        data = d["data"] if isinstance(d.get("data"), dict) else d
        ev = cls(flap=data["flap"], angle=data["angle"])
        for key in ("uuid", "timestamp"):
            if key in d:
                setattr(ev, key, d[key])
        return ev

    @property
    def flap(self) -> str:
        return str(self.data["flap"])

    @property
    def angle(self) -> float:
        return float(self.data["angle"])


class KitchenSinkMixin:
    """The implementation of IKitchenSink (a plain mixin, so pyobs-core does not take it for an
    interface): echoes, checking the decoded Python types like our side does."""

    async def echo_bool(self, value: bool, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_int(self, value: int, **kwargs: Any) -> int:
        if type(value) is not int:
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_float(self, value: float, **kwargs: Any) -> float:
        if type(value) is not float:
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_str(self, value: str, **kwargs: Any) -> str:
        if type(value) is not str:
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_enum(self, value: Color, **kwargs: Any) -> Color:
        if not isinstance(value, Color):
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_list(self, value: list[int], **kwargs: Any) -> list[int]:
        if not isinstance(value, list):
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_tuple(self, value: tuple[int, str, float], **kwargs: Any) -> tuple[int, str, float]:
        if not isinstance(value, tuple):
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_dict(self, value: dict[str, float], **kwargs: Any) -> dict[str, float]:
        if not isinstance(value, dict):
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_point(self, value: Point, **kwargs: Any) -> Point:
        if not isinstance(value, Point):
            raise TypeError(f"got {type(value).__name__}")
        return value

    async def echo_track(self, value: Track, **kwargs: Any) -> Track:
        if not isinstance(value, Track) or not all(isinstance(p, Point) for p in value.points):
            raise TypeError(f"got {value!r}")
        return value

    async def echo_optional(self, value: int | None = None, **kwargs: Any) -> int | None:
        return value

    async def echo_annotated(self, value: Annotated[float, "deg"], **kwargs: Any) -> Annotated[float, "deg"]:
        return value

    async def combine(self, a: int, b: float, c: str = "x", **kwargs: Any) -> str:
        return f"{a}|{b}|{c}"

    async def nothing(self, **kwargs: Any) -> None:
        return None

    async def sleep(self, seconds: float, **kwargs: Any) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @timeout("seconds + 2")
    async def sleep_announced(self, seconds: float, **kwargs: Any) -> float:
        await asyncio.sleep(seconds)
        return seconds

    async def fail(self, kind: str, **kwargs: Any) -> None:
        if kind == "value":
            raise ValueError("bad value 42")
        if kind == "key":
            raise KeyError("missing")
        if kind == "move":
            raise MoveError("cannot move there")
        if kind == "invalid":
            raise InvalidArgumentError("no such thing")
        if kind == "timeout":
            raise TimeoutError("the method itself timed out")

    async def whoami(self, **kwargs: Any) -> str:
        return str(kwargs.get("sender", ""))
