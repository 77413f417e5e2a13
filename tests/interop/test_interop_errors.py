"""Deadlines (``@timeout`` / methodTimeout) and exceptions, both ways."""

from __future__ import annotations

import time

import pytest
from harness import Core, CorePeer, Ours
from support import IKitchenSink

from pyobs.interfaces import ICamera
from pyobs.utils.exceptions import (
    InvalidArgumentError,
    MotionError,
    MoveError,
    RemoteTimeoutError,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# our probe's comm has a default deadline of 3 s (see conftest)


async def test_our_deadline_is_extended_by_pyobs_cores_timeout(ours: Ours, core: Core) -> None:
    assert ours.probe.comm.timeout == 3.0
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    start = time.monotonic()
    assert await sink.sleep_announced(4.5) == 4.5  # pyobs-core announces "seconds + 2"
    assert time.monotonic() - start >= 4.5


async def test_our_deadline_without_announcement(ours: Ours, core: Core) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    start = time.monotonic()
    with pytest.raises(RemoteTimeoutError, match="coresink"):
        await sink.sleep(6.0)
    assert 2.5 < time.monotonic() - start < 5.5


async def test_pyobs_core_camera_exposure_longer_than_our_deadline(ours: Ours, core: Core) -> None:
    cam = await ours.probe.proxy("corecam", ICamera)
    await cam.set_exposure_time(4.0)
    try:
        start = time.monotonic()
        filename = await cam.grab_data()  # pyobs-core announces exposure_time + 30
        assert time.monotonic() - start >= 4.0
        assert filename.endswith(".fits.gz")
    finally:
        await cam.set_exposure_time(0.0)


async def test_pyobs_core_waits_for_our_announced_timeout(ours: Ours, core: Core) -> None:
    # pyobs-core's caller would wait 120 s for a first answer; we announce seconds + 1
    reply = await core.sink.request(
        "call", 30.0, module="oursink", interface="IKitchenSink", method="sleep_announced", args=[3.0]
    )
    assert reply["ok"], reply
    assert reply["result"] == 3.0 and reply["elapsed"] >= 3.0


async def test_pyobs_core_obeys_the_value_we_announce(ours: Ours, core: Core) -> None:
    # announcing less than the call takes makes pyobs-core's caller give up after what we announced,
    # long before its own 120 s: so it did read our methodTimeout
    ours.sink.announce = 1.0
    try:
        error = await core.sink.call_fails("oursink", "IKitchenSink", "sleep_announced", 6.0, timeout=30.0)
    finally:
        ours.sink.announce = None
    assert error["type"] == "builtins.TimeoutError"  # pyobs-core raises the builtin here (spec §17.8)
    assert 0.8 < error["elapsed"] < 5.0


@pytest.mark.parametrize(("announce", "seconds"), [(1.95, 1.7), (2.9, 2.6)])
async def test_pyobs_core_waits_at_least_what_we_announce(
    ours: Ours, core: Core, announce: float, seconds: float
) -> None:
    # methodTimeout carries whole seconds and pyobs-core waits exactly that long: a fractional
    # announcement must be rounded up, or the caller gives up before the promised time
    ours.sink.announce = announce
    try:
        reply = await core.sink.request(
            "call", 30.0, module="oursink", interface="IKitchenSink", method="sleep_announced", args=[seconds]
        )
    finally:
        ours.sink.announce = None
    assert reply["ok"], f"announced {announce} s, the call took {seconds} s, pyobs-core gave up: {reply['error']}"
    assert reply["result"] == seconds


@pytest.mark.parametrize(
    ("kind", "exc_type", "base", "text"),
    [
        ("value", ValueError, ValueError, "bad value 42"),
        ("key", KeyError, KeyError, "missing"),
        ("move", MoveError, MotionError, "cannot move there"),
        ("invalid", InvalidArgumentError, InvalidArgumentError, "no such thing"),
        ("timeout", TimeoutError, TimeoutError, "the method itself timed out"),
    ],
)
async def test_pyobs_core_exceptions_arrive_as_themselves(
    ours: Ours, core: Core, kind: str, exc_type: type[Exception], base: type[Exception], text: str
) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    with pytest.raises(exc_type) as info:
        await sink.fail(kind)
    assert type(info.value) is exc_type
    assert isinstance(info.value, base)
    assert not isinstance(info.value, RemoteTimeoutError)
    assert text in str(info.value)
    # and the module is still fine afterwards
    assert await sink.echo_int(1) == 1


@pytest.mark.parametrize(
    ("kind", "qualname", "text"),
    [
        ("value", "builtins.ValueError", "bad value 42"),
        ("move", "pyobs.utils.exceptions.MoveError", "cannot move there"),
        ("timeout", "builtins.TimeoutError", "the method itself timed out"),
    ],
)
async def test_our_exceptions_reach_pyobs_core_like_its_own(
    ours: Ours, core: Core, core_twin: CorePeer, kind: str, qualname: str, text: str
) -> None:
    """pyobs-core's caller must see the same as when a pyobs-core module raises the same exception."""
    await core.sink.wait_record("sees coreflap", 60.0, kind="event", type="ModuleOpenedEvent", sender="coreflap")
    theirs = await core.sink.call_fails("coreflap", "IKitchenSink", "fail", kind)
    error = await core.sink.call_fails("oursink", "IKitchenSink", "fail", kind)
    for key in ("type", "original_type", "mro", "message"):
        assert error[key] == theirs[key], f"{key}: ours {error[key]!r}, pyobs-core's own {theirs[key]!r}"
    assert text in error["message"]
    # pyobs-core rebuilds its own exception classes; builtins become UnclassifiedError naming them
    if qualname.startswith("pyobs."):
        assert error["type"] == qualname
        assert "pyobs.utils.exceptions.MotionError" in error["mro"]
    else:
        assert error["type"] == "pyobs.utils.exceptions.UnclassifiedError"
        assert error["original_type"] == qualname


async def test_our_unknown_exception_class_reaches_pyobs_core_by_name(ours: Ours, core: Core) -> None:
    # support.SinkError does not exist in pyobs-core's process: it gets UnclassifiedError naming it
    error = await core.sink.call_fails("oursink", "IKitchenSink", "fail", "user")
    assert error["type"] == "pyobs.utils.exceptions.UnclassifiedError"
    assert error["original_type"] == "support.SinkError"
    assert "sink is full" in error["message"]


@pytest.mark.parametrize(("method", "arg"), [("echo_enum", "purple"), ("echo_int", "x"), ("echo_point", 5)])
async def test_pyobs_core_gets_a_fault_for_bad_arguments(ours: Ours, core: Core, method: str, arg: object) -> None:
    # we decode strictly by the interface declaration: a value of the wrong type is a TypeError fault
    # naming method and argument; an unknown enum value a ValueError, as pyobs-core's callee says
    error = await core.sink.call_fails("oursink", "IKitchenSink", method, arg)
    assert error["type"] == "pyobs.utils.exceptions.UnclassifiedError"
    expected = "builtins.ValueError" if method == "echo_enum" else "builtins.TypeError"
    assert error["original_type"] == expected
    assert f"{method}() argument 'value'" in error["message"]
    assert error["elapsed"] < 10.0


async def test_we_accept_an_int_for_a_float(ours: Ours, core: Core) -> None:
    # pyobs-core's encoder sends <int> for an int given to a float parameter; we decode tolerantly
    result = await core.sink.call("oursink", "IKitchenSink", "echo_float", 3)
    assert result == 3.0 and isinstance(result, float)
