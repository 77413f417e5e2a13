"""Modules and interfaces the behaviour suite uses: a user-defined interface covering the whole
value vocabulary, a telescope written like the seed's examples, and helpers."""

from __future__ import annotations

import asyncio
import contextlib
from abc import abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pyobs.comm import Comm
from pyobs.events import Event, NewImageEvent
from pyobs.interfaces import (
    ICamera,
    IFocuser,
    IPointingRaDec,
    ITelescope,
)
from pyobs.interfaces.interface import Interface
from pyobs.interfaces.types import FocuserState, MotionState
from pyobs.modules import Module, timeout
from pyobs.utils.enums import MotionStatus
from pyobs.utils.exceptions import MoveError


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


class SinkError(Exception):
    """A user-defined exception class (importable by the caller)."""


class IKitchenSink(Interface):
    """A user-defined interface with every type of the value vocabulary."""

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


class KitchenSink(Module, IKitchenSink):
    """Implements IKitchenSink by echoing."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, Any]] = []
        self.started = asyncio.Event()

    async def echo_bool(self, value: bool, **kwargs: Any) -> bool:
        assert type(value) is bool
        return value

    async def echo_int(self, value: int, **kwargs: Any) -> int:
        assert type(value) is int
        return value

    async def echo_float(self, value: float, **kwargs: Any) -> float:
        assert type(value) is float
        return value

    async def echo_str(self, value: str, **kwargs: Any) -> str:
        return value

    async def echo_enum(self, value: Color, **kwargs: Any) -> Color:
        assert isinstance(value, Color)
        return value

    async def echo_list(self, value: list[int], **kwargs: Any) -> list[int]:
        assert isinstance(value, list)
        return value

    async def echo_tuple(self, value: tuple[int, str, float], **kwargs: Any) -> tuple[int, str, float]:
        assert isinstance(value, tuple)
        return value

    async def echo_dict(self, value: dict[str, float], **kwargs: Any) -> dict[str, float]:
        return value

    async def echo_point(self, value: Point, **kwargs: Any) -> Point:
        assert isinstance(value, Point)
        return value

    async def echo_track(self, value: Track, **kwargs: Any) -> Track:
        assert isinstance(value, Track) and all(isinstance(p, Point) for p in value.points)
        return value

    async def echo_optional(self, value: int | None = None, **kwargs: Any) -> int | None:
        return value

    async def echo_annotated(self, value: Annotated[float, "deg"], **kwargs: Any) -> Annotated[float, "deg"]:
        return value

    async def combine(self, a: int, b: float, c: str = "x", **kwargs: Any) -> str:
        return f"{a}|{b}|{c}"

    async def nothing(self, **kwargs: Any) -> None:
        self.calls.append(("nothing", None))

    async def sleep(self, seconds: float, **kwargs: Any) -> float:
        self.started.set()
        await asyncio.sleep(seconds)
        return seconds

    @timeout(lambda self, seconds: seconds + 1.0)
    async def sleep_announced(self, seconds: float, **kwargs: Any) -> float:
        self.started.set()
        await asyncio.sleep(seconds)
        return seconds

    async def fail(self, kind: str, **kwargs: Any) -> None:
        if kind == "value":
            raise ValueError("bad value 42")
        if kind == "move":
            raise MoveError("cannot move there")
        if kind == "user":
            raise SinkError("sink is full")
        if kind == "unknown":
            raise _make_unimportable_error("exotic failure")
        if kind == "timeout":
            raise TimeoutError("the method itself timed out")

    async def whoami(self, **kwargs: Any) -> str:
        return str(kwargs.get("sender", ""))


def _make_unimportable_error(message: str) -> Exception:
    cls = type("ExoticError", (Exception,), {"__module__": "some.plugin.nowhere"})
    return cls(message)


class Telescope(Module, ITelescope, IPointingRaDec):
    """A minimal telescope: moves instantly, publishes its motion state."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.position: tuple[float, float] | None = None

    async def open(self) -> None:
        await super().open()
        await self.comm.set_state(ITelescope, MotionState(status=MotionStatus.IDLE))

    async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
        self.position = (ra, dec)
        await self.comm.set_state(ITelescope, MotionState(status=MotionStatus.TRACKING))

    async def init(self, **kwargs: Any) -> None:
        await self.comm.set_state(ITelescope, MotionState(status=MotionStatus.IDLE))

    async def park(self, **kwargs: Any) -> None:
        await self.comm.set_state(ITelescope, MotionState(status=MotionStatus.PARKED))

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        await self.comm.set_state(ITelescope, MotionState(status=MotionStatus.IDLE))


class Focuser(Module, IFocuser):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.focus = 10.0

    async def open(self) -> None:
        await super().open()
        await self._publish()

    async def _publish(self) -> None:
        await self.comm.set_state(IFocuser, FocuserState(focus=self.focus, focus_offset=0.0))

    async def set_focus(self, focus: float, **kwargs: Any) -> None:
        self.focus = focus
        await self._publish()

    async def set_focus_offset(self, offset: float, **kwargs: Any) -> None:
        await self._publish()

    async def init(self, **kwargs: Any) -> None: ...
    async def park(self, **kwargs: Any) -> None: ...
    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None: ...


class SeedClient(Module):
    """The seed's snippets, verbatim inside a module."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images: list[tuple[str, str]] = []
        self.weather: list[str] = []

    async def open(self) -> None:
        from pyobs.events import GoodWeatherEvent, NewImageEvent

        await Module.open(self)
        await self.comm.register_event(NewImageEvent, self._on_new_image)
        await self.comm.register_event(GoodWeatherEvent, self._on_good_weather)

    async def _on_new_image(self, event: NewImageEvent, sender: str) -> bool:
        self.images.append((sender, event.filename))
        return True

    async def _on_good_weather(self, event: Event, sender: str) -> bool:
        self.weather.append(sender)
        return True

    async def point(self) -> None:
        from pyobs.interfaces import ITelescope

        # get a proxy to the telescope module
        telescope = await self.proxy("telescope", ITelescope)

        # call its methods just like local ones
        await telescope.move_radec(ra=83.8, dec=-5.4)

    async def focus(self, focus_value: float) -> bool:
        focuser = await self.comm.safe_proxy("focuser", IFocuser)
        if focuser is not None:
            await focuser.set_focus(focus_value)
        return focuser is not None

    async def cameras(self) -> list[str]:
        cameras = await self.comm.clients_with_interface(ICamera)
        return cameras


class Camera(Module):
    """Sends events as in the seed."""

    async def open(self) -> None:
        from pyobs.events import ExposureStatusChangedEvent

        await Module.open(self)
        await self.comm.register_event(ExposureStatusChangedEvent)
        await self.comm.register_event(NewImageEvent)

    async def _expose(self) -> None:
        from pyobs.events import ExposureStatusChangedEvent
        from pyobs.utils.enums import ExposureStatus

        await self.comm.send_event(ExposureStatusChangedEvent(ExposureStatus.EXPOSING))


async def opened(module: Module) -> Module:
    await module.open()
    return module


@contextlib.asynccontextmanager
async def module_and_caller(
    backend: Any,
    module_class: type[Module],
    name: str,
    interface: type[Interface],
    caller: str = "caller",
    **options: Any,
) -> AsyncIterator[tuple[Any, Comm, Any]]:
    """Module ``name`` and a comm ``caller`` that sees it (``options`` are the caller's): (module,
    caller, the caller's proxy to the module for ``interface``); both closed at the end."""
    module = await opened(module_class(comm=backend.comm(name)))
    comm = backend.comm(caller, **options)
    await comm.open()
    try:
        await seen(comm, name)
        yield module, comm, await comm.proxy(name, interface)
    finally:
        await comm.close()
        await module.close()


def sink_and_caller(backend: Any, **options: Any) -> contextlib.AbstractAsyncContextManager[tuple[Any, Comm, Any]]:
    """A KitchenSink ``sink`` and a comm ``caller`` that sees it: (sink, caller, proxy)."""
    return module_and_caller(backend, KitchenSink, "sink", IKitchenSink, **options)


async def seen(comm: Comm, name: str, timeout: float = 5.0) -> None:
    """Wait until ``comm`` sees module ``name`` online."""
    from backends.base import eventually

    await eventually(lambda: comm.is_online(name), timeout, f"{comm.name} to see {name}")


async def unseen(comm: Comm, name: str, timeout: float = 5.0) -> None:
    from backends.base import eventually

    await eventually(lambda: not comm.is_online(name), timeout, f"{comm.name} to see {name} gone")
