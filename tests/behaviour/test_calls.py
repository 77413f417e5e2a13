"""Proxies and remote calls: the same semantics on every transport."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from support import (
    Color,
    Focuser,
    IKitchenSink,
    KitchenSink,
    Point,
    SeedClient,
    SinkError,
    Telescope,
    Track,
    module_and_caller,
    opened,
    seen,
    sink_and_caller,
    unseen,
)

from pyobs.comm import Proxy
from pyobs.interfaces import ICamera, IFocuser, IModule, IMotion, IPointingRaDec, ITelescope
from pyobs.modules import Module
from pyobs.utils.exceptions import MoveError, RemoteError, RemoteTimeoutError


async def test_seed_snippets_run_verbatim(backend: Any) -> None:
    tel = await opened(Telescope(comm=backend.comm("telescope")))
    foc = await opened(Focuser(comm=backend.comm("focuser")))
    client = await opened(SeedClient(comm=backend.comm("client")))
    try:
        await seen(client.comm, "telescope")
        await seen(client.comm, "focuser")
        await client.point()
        assert tel.position == (83.8, -5.4)
        assert await client.focus(12.5) is True
        assert foc.focus == 12.5
        assert await client.cameras() == []
    finally:
        for m in (client, foc, tel):
            await m.close()


async def test_proxy_exposes_every_interface_of_the_module(backend: Any) -> None:
    async with module_and_caller(backend, Telescope, "telescope", ITelescope) as (tel, caller, proxy):
        assert isinstance(proxy, Proxy)
        assert isinstance(proxy, ITelescope) and isinstance(proxy, IPointingRaDec)
        assert isinstance(proxy, IModule) and isinstance(proxy, IMotion)
        await proxy.move_radec(10.0, 20.0)  # declared in IPointingRaDec, asked as ITelescope
        assert tel.position == (10.0, 20.0)
        async with caller.proxy("telescope", IPointingRaDec) as p2:  # pyobs-core 2.x form
            await p2.move_radec(ra=1, dec=2)  # ints are cast to the declared float
        assert tel.position == (1.0, 2.0) and type(tel.position[0]) is float
        assert set(await caller.get_interfaces("telescope")) >= {ITelescope, IPointingRaDec, IModule}
        assert await caller.clients_with_interface(IPointingRaDec) == ["telescope"]
        assert await caller.clients_with_interface(ICamera) == []


async def test_proxy_to_unknown_module_fails_at_once(backend: Any) -> None:
    caller = backend.comm("caller")
    await caller.open()
    try:
        start = time.monotonic()
        with pytest.raises(ValueError, match="'nobody' is not online"):
            await caller.proxy("nobody", ITelescope)
        assert time.monotonic() - start < 1.0
        assert await caller.safe_proxy("nobody", ITelescope) is None
        with pytest.raises(ValueError, match="nobody"):
            await caller.get_interfaces("nobody")
    finally:
        await caller.close()


async def test_proxy_with_wrong_interface_names_it(backend: Any) -> None:
    tel = await opened(Telescope(comm=backend.comm("telescope")))
    caller = backend.comm("caller")
    await caller.open()
    try:
        await seen(caller, "telescope")
        with pytest.raises(ValueError, match="does not implement ICamera"):
            await caller.proxy("telescope", ICamera)
        assert await caller.safe_proxy("telescope", IFocuser) is None
    finally:
        await caller.close()
        await tel.close()


async def test_proxy_of_an_object_returns_it(backend: Any) -> None:
    foc = Focuser(comm=backend.comm("focuser"))
    assert await foc.proxy(foc, IFocuser) is foc
    with pytest.raises(ValueError, match="does not implement ITelescope"):
        await foc.proxy(foc, ITelescope)


@pytest.mark.parametrize(
    "method,value",
    [
        ("echo_bool", True),
        ("echo_bool", False),
        ("echo_int", -7),
        ("echo_float", 2.5),
        ("echo_float", float("inf")),
        ("echo_str", "a <b> & 'c' ü"),
        ("echo_str", ""),
        ("echo_enum", Color.GREEN),
        ("echo_list", [1, 2, 3]),
        ("echo_list", []),
        ("echo_tuple", (1, "two", 3.0)),
        ("echo_dict", {"a": 1.5, "b": -2.0}),
        ("echo_point", Point(1.0, 2.0, "p")),
        ("echo_point", Point(1.0, 2.0)),
        ("echo_track", Track("t", [Point(0.0, 1.0), Point(2.0, 3.0, "x")], Color.GREEN)),
        ("echo_optional", None),
        ("echo_optional", 5),
        ("echo_annotated", 12.25),
    ],
)
async def test_values_round_trip_with_their_types(backend: Any, method: str, value: Any) -> None:
    async with sink_and_caller(backend) as (_sink, _caller, proxy):
        result = await getattr(proxy, method)(value)
        assert result == value
        assert type(result) is type(value)


async def test_arguments_are_cast_and_checked_before_sending(backend: Any) -> None:
    async with sink_and_caller(backend) as (sink, caller, proxy):
        assert await proxy.combine(1, 2) == "1|2.0|x"  # default filled, int cast to float
        assert await proxy.combine(a=3, b=1.5, c="y") == "3|1.5|y"
        assert await proxy.echo_enum("red") == Color.RED  # enum values are accepted
        with pytest.raises(TypeError, match="argument 'a'"):
            await proxy.combine("not a number", 2.0)
        with pytest.raises(TypeError, match="missing required argument 'b'"):
            await proxy.combine(1)
        with pytest.raises(TypeError, match="unexpected keyword argument 'd'"):
            await proxy.combine(1, 2.0, d=4)
        with pytest.raises(ValueError, match="not a valid Color"):
            await proxy.echo_enum("purple")
        with pytest.raises(AttributeError, match="no method 'nope'"):
            await caller.execute("sink", "nope")
        assert await proxy.nothing() is None
        assert sink.calls == [("nothing", None)]


async def test_callee_learns_who_called(backend: Any) -> None:
    async with sink_and_caller(backend) as (_sink, _caller, proxy):
        assert await proxy.whoami() == "caller"


async def test_every_call_has_a_deadline(backend: Any) -> None:
    async with sink_and_caller(backend, timeout=0.5) as (_sink, _caller, proxy):
        start = time.monotonic()
        with pytest.raises(RemoteTimeoutError, match=r"sink\.sleep\(\)") as info:
            await proxy.sleep(3.0)
        elapsed = time.monotonic() - start
        assert isinstance(info.value, TimeoutError)
        assert 0.4 < elapsed < 2.0
        # the comm keeps working afterwards
        assert await proxy.echo_int(3) == 3


async def test_timeout_decorator_extends_the_callers_deadline(backend: Any) -> None:
    async with sink_and_caller(backend, timeout=0.5) as (_sink, _caller, proxy):
        assert await proxy.sleep_announced(1.2) == 1.2


async def test_remote_exceptions_arrive_as_their_class(backend: Any) -> None:
    async with sink_and_caller(backend) as (_sink, _caller, proxy):
        with pytest.raises(ValueError, match="bad value 42"):
            await proxy.fail("value")
        with pytest.raises(MoveError, match="cannot move there"):
            await proxy.fail("move")
        with pytest.raises(SinkError, match="sink is full"):
            await proxy.fail("user")
        with pytest.raises(TimeoutError, match="the method itself timed out") as info:
            await proxy.fail("timeout")
        assert not isinstance(info.value, RemoteTimeoutError)
        with pytest.raises(RemoteError, match="exotic failure") as exotic:
            await proxy.fail("unknown")
        assert exotic.value.original_type == "some.plugin.nowhere.ExoticError"
        assert await proxy.echo_int(1) == 1  # still alive


async def test_call_to_a_module_that_went_away_fails_promptly(backend: Any) -> None:
    async with sink_and_caller(backend, timeout=30.0) as (sink, caller, proxy):
        call = asyncio.ensure_future(proxy.sleep_announced(20.0))
        await asyncio.wait_for(sink.started.wait(), 5.0)
        start = time.monotonic()
        await sink.close()
        with pytest.raises(RemoteError, match="sink"):
            await asyncio.wait_for(call, 10.0)
        assert time.monotonic() - start < 5.0
        await unseen(caller, "sink")
        with pytest.raises(RemoteError, match="offline"):
            await proxy.echo_int(1)
        with pytest.raises(ValueError, match="not online"):
            await caller.proxy("sink", IKitchenSink)


async def test_modules_are_gone_from_clients_after_close(backend: Any) -> None:
    watcher = backend.comm("watcher")
    await watcher.open()
    try:
        tel = await opened(Telescope(comm=backend.comm("telescope")))
        await seen(watcher, "telescope")
        await tel.close()
        await unseen(watcher, "telescope")
        # and it can come back
        tel2 = await opened(Telescope(comm=backend.comm("telescope")))
        await seen(watcher, "telescope")
        proxy = await watcher.proxy("telescope", ITelescope)
        await proxy.move_radec(5.0, 6.0)
        assert tel2.position == (5.0, 6.0)
        await tel2.close()
    finally:
        await watcher.close()


async def test_module_is_callable_as_soon_as_open_returns(backend: Any) -> None:
    caller = backend.comm("caller")
    await caller.open()
    sink = KitchenSink(comm=backend.comm("sink"))
    try:
        await sink.open()
        await seen(caller, "sink", timeout=2.0)
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.echo_str("hi") == "hi"
        assert sink.module_state == "ready"
    finally:
        await sink.close()
        await caller.close()


async def test_module_without_comm_runs_alone() -> None:
    module = Module()
    await module.open()
    try:
        assert module.comm.clients == []
        with pytest.raises(ValueError, match="not online"):
            await module.proxy("telescope", ITelescope)
    finally:
        await module.close()
