"""Calls both ways with every type of the value vocabulary, through the user-defined IKitchenSink and
through catalog interfaces; returned values are checked with their exact Python types."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import Core, Ours
from support import Color, IKitchenSink, Point, Track

from pyobs.interfaces import (
    ICamera,
    IExposureTime,
    IFitsHeaderBefore,
    IFocuser,
    IImageType,
    IMotion,
    IPointingRaDec,
)
from pyobs.interfaces.types import FitsHeaderEntry
from pyobs.utils.enums import ImageType

pytestmark = pytest.mark.asyncio(loop_scope="session")

# (method, argument, what comes back in pyobs-core's tagged form)
VOCABULARY: list[tuple[str, Any, Any]] = [
    ("echo_bool", True, True),
    ("echo_bool", False, False),
    ("echo_int", -7, -7),
    ("echo_int", 2**40, 2**40),
    ("echo_float", 2.5, 2.5),
    ("echo_float", -20.0, -20.0),
    ("echo_float", 1e-05, 1e-05),
    ("echo_str", "héllo <&> wörld", "héllo <&> wörld"),
    ("echo_str", "", ""),
    ("echo_enum", Color.GREEN, {"enum": "Color", "value": "green"}),
    ("echo_list", [1, 2, 3], [1, 2, 3]),
    ("echo_list", [], []),
    ("echo_tuple", (1, "a", 2.5), {"tuple": [1, "a", 2.5]}),
    ("echo_dict", {"a": 1.5, "b": -2.0}, {"dict": {"a": 1.5, "b": -2.0}}),
    ("echo_point", Point(1.0, 2.0, "p"), {"dataclass": "Point", "fields": {"x": 1.0, "y": 2.0, "label": "p"}}),
    ("echo_point", Point(1.5, -2.5), {"dataclass": "Point", "fields": {"x": 1.5, "y": -2.5, "label": None}}),
    (
        "echo_track",
        Track("t", [Point(1.0, 2.0), Point(3.0, 4.0, "q")], Color.GREEN),
        {
            "dataclass": "Track",
            "fields": {
                "name": "t",
                "points": [
                    {"dataclass": "Point", "fields": {"x": 1.0, "y": 2.0, "label": None}},
                    {"dataclass": "Point", "fields": {"x": 3.0, "y": 4.0, "label": "q"}},
                ],
                "color": {"enum": "Color", "value": "green"},
            },
        },
    ),
    ("echo_optional", None, None),
    ("echo_optional", 5, 5),
    ("echo_annotated", 1.25, 1.25),
]


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


@pytest.mark.parametrize(
    ("method", "value", "tagged"), VOCABULARY, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(VOCABULARY)]
)
async def test_we_call_pyobs_core(ours: Ours, core: Core, method: str, value: Any, tagged: Any) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    result = await getattr(sink, method)(value)
    # pyobs-core's implementation raised TypeError unless it decoded the exact Python type
    assert _same(result, value), f"{method}({value!r}) returned {result!r}"


@pytest.mark.parametrize(
    ("method", "value", "tagged"), VOCABULARY, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(VOCABULARY)]
)
async def test_pyobs_core_calls_us(ours: Ours, core: Core, method: str, value: Any, tagged: Any) -> None:
    # our implementation asserts the exact Python types it got (AssertionError otherwise)
    result = await core.sink.call("oursink", "IKitchenSink", method, value)
    assert result == tagged
    if isinstance(tagged, float):
        assert isinstance(result, float)
    if isinstance(tagged, int) and not isinstance(tagged, bool):
        assert type(result) is int


async def test_defaults_and_several_arguments(ours: Ours, core: Core) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    assert await sink.combine(1, 2.5) == "1|2.5|x"
    assert await sink.combine(3, -0.5, "y") == "3|-0.5|y"
    assert await sink.combine(a=4, b=1.0, c="kw") == "4|1.0|kw"
    assert await sink.echo_optional() is None
    assert await sink.nothing() is None
    assert await core.sink.call("oursink", "IKitchenSink", "combine", 1, 2.5) == "1|2.5|x"
    assert await core.sink.call("oursink", "IKitchenSink", "combine", 3, -0.5, "y") == "3|-0.5|y"
    assert await core.sink.call("oursink", "IKitchenSink", "echo_optional") is None
    assert await core.sink.call("oursink", "IKitchenSink", "nothing") is None


async def test_callee_learns_the_callers_name(ours: Ours, core: Core) -> None:
    assert await core.sink.call("oursink", "IKitchenSink", "whoami") == "coresink"
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    assert await sink.whoami() == "ourprobe"


async def test_we_call_pyobs_core_catalog_interfaces(ours: Ours, core: Core) -> None:
    scope = await ours.probe.proxy("corescope", IPointingRaDec)
    assert await scope.move_radec(10.5, -20.25) is None
    await scope.set_focus(11.5)  # IFocuser
    await scope.stop_motion()  # IMotion, optional parameter left at its default
    await scope.init()  # IMotion.init announces 20 s
    cam = await ours.probe.proxy("corecam", ICamera)
    assert isinstance(cam, IExposureTime) and isinstance(cam, IImageType)
    await cam.set_image_type(ImageType.DARK)
    await cam.set_image_type(ImageType.OBJECT)
    await cam.set_exposure_time(0.0)
    filename = await cam.grab_data()
    assert isinstance(filename, str) and filename.startswith("/cache/") and filename.endswith(".fits.gz")
    assert await cam.grab_data(False) != filename  # a new image, positional bool


async def test_pyobs_core_calls_our_catalog_interfaces(ours: Ours, core: Core) -> None:
    assert await core.sink.call("ourscope", "IPointingRaDec", "move_radec", 83.8, -5.4) is None
    assert ours.scope.radec == (83.8, -5.4)
    assert await core.sink.call("ourscope", "IMotion", "stop_motion") is None
    assert await core.sink.call("ourfocus", "IFocuser", "set_focus", 12.5) is None
    assert ours.focus.position == pytest.approx(12.5)
    filename = await core.sink.call("ourcam", "ICamera", "grab_data")
    assert isinstance(filename, str) and filename.endswith((".fits", ".fits.gz"))
    assert await core.sink.call("ourcam", "IImageType", "set_image_type", ImageType.FOCUS) is None
    assert await core.sink.call("ourcam", "IImageType", "set_image_type", ImageType.OBJECT) is None
    permitted = await core.sink.call("ourscope", "IModule", "get_permitted_methods")
    assert "move_radec" in permitted and "init" in permitted
    assert await core.sink.call("ourscope", "IModule", "reset_error") is True


async def test_we_call_pyobs_core_module_methods(ours: Ours, core: Core) -> None:
    scope = await ours.probe.proxy("corescope", IMotion)
    permitted = await scope.get_permitted_methods()
    assert isinstance(permitted, list) and "move_radec" in permitted and "set_focus" in permitted
    assert await scope.reset_error() is True
    focuser = await ours.probe.proxy("corescope", IFocuser)
    assert focuser is not None


async def test_we_get_pyobs_cores_fits_headers(ours: Ours, core: Core) -> None:
    # a catalog method returning dict[str, FitsHeaderEntry] whose values are int | float | str | None
    scope = await ours.probe.proxy("corescope", IFitsHeaderBefore)
    await scope.set_focus(42.5)
    cards = await scope.get_fits_header_before()
    assert cards["TEL-FOCU"] == FitsHeaderEntry(42.5, "focus [mm]")
    assert cards["FRAMENUM"] == FitsHeaderEntry(7, "an int") and type(cards["FRAMENUM"].value) is int
    assert cards["OBJECT"] == FitsHeaderEntry("M42", "a string")
    assert cards["FILTER"] == FitsHeaderEntry(None, "no value")
    assert cards["NS"].value == "<none>"
    assert (await scope.get_fits_header_before(["a", "b"]))["NS"].value == "a,b"
    assert all(isinstance(c, FitsHeaderEntry) for c in cards.values())


async def test_pyobs_core_gets_our_fits_headers(ours: Ours, core: Core) -> None:
    cards = await core.sink.call("oursim", "IFitsHeaderBefore", "get_fits_header_before")
    assert set(cards) == {"dict"}
    assert cards["dict"], "no cards"
    for key, card in cards["dict"].items():
        assert card["dataclass"] == "FitsHeaderEntry", key
        assert isinstance(card["fields"]["comment"], str)
        assert card["fields"]["value"] is None or isinstance(card["fields"]["value"], (int, float, str))
    assert isinstance(cards["dict"]["TEL-ALT"]["fields"]["value"], float)
    more = await core.sink.call("oursim", "IFitsHeaderBefore", "get_fits_header_before", ["oursim", "x"])
    assert set(more["dict"]) == set(cards["dict"])


async def test_concurrent_calls_both_ways(ours: Ours, core: Core) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    results = await asyncio.gather(*(sink.combine(i, i / 2, str(i)) for i in range(30)))
    assert results == [f"{i}|{i / 2}|{i}" for i in range(30)]

    replies = await asyncio.gather(
        *(core.sink.request("call", 30.0, module="oursink", interface="IKitchenSink", method="combine",
                            args=[i, i / 2, str(i)]) for i in range(30))
    )  # fmt: skip
    assert [r["result"] for r in replies] == [f"{i}|{i / 2}|{i}" for i in range(30)]


async def test_large_values_both_ways(ours: Ours, core: Core) -> None:
    if ours.server.kind == "ejabberd":
        # the test ejabberd bounds stanzas at 16 KB (23.01 crashes on deep nesting, docs/xmpp.md)
        numbers, text = list(range(-150, 150)), "pyobs <&> " * 500
    else:
        numbers, text = list(range(-1000, 1000)), "pyobs <&> " * 5000
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    assert await sink.echo_list(numbers) == numbers
    assert await sink.echo_str(text) == text
    assert await core.sink.call("oursink", "IKitchenSink", "echo_list", numbers) == numbers
    assert await core.sink.call("oursink", "IKitchenSink", "echo_str", text) == text
