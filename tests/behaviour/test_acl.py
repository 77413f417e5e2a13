"""Per-module ACLs (pyobs-core's ``acl:`` option): the callee checks the caller the transport names."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from support import IKitchenSink, KitchenSink, opened, seen

from pyobs.comm import Comm
from pyobs.interfaces import IConfig, IModule
from pyobs.modules import Module
from pyobs.utils.exceptions import ForbiddenError, RemoteError

SINK_METHODS = sorted(
    "echo_bool echo_int echo_float echo_str echo_enum echo_list echo_tuple echo_dict echo_point echo_track "
    "echo_optional echo_annotated combine nothing sleep sleep_announced fail whoami".split()
)
MODULE_METHODS = ["get_config_value", "get_permitted_methods", "reset_error", "set_config_value"]


async def _callers(backend: Any, *names: str) -> list[Comm]:
    comms = [backend.comm(n) for n in names]
    for c in comms:
        await c.open()
    for c in comms:
        await seen(c, "sink")
    return comms


async def _close(sink: Module, comms: list[Comm]) -> None:
    for c in comms:
        await c.close()
    await sink.close()


async def test_a_caller_not_allowed_is_denied_with_forbidden_error(backend: Any) -> None:
    sink = await opened(KitchenSink(comm=backend.comm("sink"), acl={"allow": {"client": "*"}}))
    comms = await _callers(backend, "client", "other")
    client, other = comms
    try:
        assert await (await client.proxy("sink", IKitchenSink)).echo_int(7) == 7
        proxy = await other.proxy("sink", IKitchenSink)
        with pytest.raises(ForbiddenError, match="Caller 'other' is not permitted to invoke 'nothing'"):
            await proxy.nothing()
        assert sink.calls == []  # the method never ran
        # ForbiddenError is a RemoteError, as in pyobs-core: generic handlers still catch it
        with pytest.raises(RemoteError):
            await proxy.echo_int(1)
        # a denied caller may still ask what it may call
        assert await (await other.proxy("sink", IModule)).get_permitted_methods() == []
    finally:
        await _close(sink, comms)


async def test_deny_list_blocks_only_the_callers_named(backend: Any) -> None:
    sink = await opened(KitchenSink(comm=backend.comm("sink"), acl={"deny": ["other"]}))
    comms = await _callers(backend, "client", "other")
    client, other = comms
    try:
        assert await (await client.proxy("sink", IKitchenSink)).whoami() == "client"
        with pytest.raises(ForbiddenError, match="'other'"):
            await (await other.proxy("sink", IKitchenSink)).whoami()
        with pytest.raises(ForbiddenError):
            await (await other.proxy("sink", IModule)).reset_error()
    finally:
        await _close(sink, comms)


async def test_allow_by_interface_name_covers_exactly_its_methods(backend: Any) -> None:
    acl = {"allow": {"observer": ["IKitchenSink"], "scheduler": ["IConfig", "reset_error"]}}
    sink = await opened(KitchenSink(comm=backend.comm("sink"), acl=acl))
    comms = await _callers(backend, "observer", "scheduler")
    observer, scheduler = comms
    try:
        sink_proxy = await observer.proxy("sink", IKitchenSink)
        assert await sink_proxy.echo_str("hi") == "hi"
        await sink_proxy.nothing()
        assert sink.calls == [("nothing", None)]
        with pytest.raises(ForbiddenError, match="'get_config_value'"):
            await (await observer.proxy("sink", IConfig)).get_config_value("x")
        with pytest.raises(ForbiddenError, match="'echo_str'"):
            await (await scheduler.proxy("sink", IKitchenSink)).echo_str("hi")
        assert await (await scheduler.proxy("sink", IModule)).reset_error() is True
    finally:
        await _close(sink, comms)


async def test_log_mode_logs_the_denial_and_allows_the_call(backend: Any, caplog: pytest.LogCaptureFixture) -> None:
    sink = await opened(KitchenSink(comm=backend.comm("sink"), acl={"allow": {"client": "*"}, "mode": "log"}))
    comms = await _callers(backend, "other")
    try:
        proxy = await comms[0].proxy("sink", IKitchenSink)
        with caplog.at_level(logging.WARNING, logger="pyobs.comm.comm"):
            assert await proxy.whoami() == "other"
        assert any(
            "other" in r.getMessage() and "would be denied" in r.getMessage() and "whoami" in r.getMessage()
            for r in caplog.records
        ), [r.getMessage() for r in caplog.records]
        # rules that are only logged are not reported as restrictions (as pyobs-core)
        assert await (await comms[0].proxy("sink", IModule)).get_permitted_methods() == sorted(
            SINK_METHODS + MODULE_METHODS
        )
    finally:
        await _close(sink, comms)


async def test_get_permitted_methods_answers_for_each_caller(backend: Any) -> None:
    acl = {"allow": {"observer": ["IKitchenSink", "get_permitted_methods"], "scheduler": "*", "reader": ["whoami"]}}
    sink = await opened(KitchenSink(comm=backend.comm("sink"), acl=acl))
    comms = await _callers(backend, "observer", "scheduler", "reader", "other")
    try:
        permitted = {c.name: await (await c.proxy("sink", IModule)).get_permitted_methods() for c in comms}
        assert permitted == {
            "observer": sorted([*SINK_METHODS, "get_permitted_methods"]),
            "scheduler": sorted(SINK_METHODS + MODULE_METHODS),
            "reader": ["whoami"],
            "other": [],
        }
    finally:
        await _close(sink, comms)


async def test_without_acl_everybody_may_call_everything(backend: Any) -> None:
    sink = await opened(KitchenSink(comm=backend.comm("sink")))
    comms = await _callers(backend, "caller")
    try:
        assert await (await comms[0].proxy("sink", IModule)).get_permitted_methods() == sorted(
            SINK_METHODS + MODULE_METHODS
        )
        assert await (await comms[0].proxy("sink", IKitchenSink)).whoami() == "caller"
    finally:
        await _close(sink, comms)
