"""Attacks on a module over D-Bus from another process on the same bus, written from the D-Bus
spec: garbled calls, deeply nested variants, huge arrays, floods of calls and of event signals,
and spoofing (events from a process that is no module, taking a module's name).

After each attack the module (in its own process) answers a normal call within its deadline, its
memory stays within MEMORY_BOUND_MB of its start, and the attacker got the documented answer.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
from pathlib import Path
from typing import Any

from backends.base import eventually
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from fuzz_support import LIMITS, Health, log_lines, rss_mb, start_target, stop_target

from pyobs.comm.dbus.codec import escape_name

NAME = "worker"
IFACE = "org.pyobs.IFuzzTarget"
COUNTS: dict[str, int] = {}
BODIES: list[tuple[str, list[Any]]] = [
    ("", []), ("s", ["x"]), ("x", [5]), ("xd", [1, 2.0]), ("xs", [1, "a"]), ("ax", [[1, 2]]), ("as", [["a"]]),
    ("a{sv}", [{"a": Variant("s", "b")}]), ("v", [Variant("ax", [1])]), ("d", [float("nan")]),
    ("(si)", [["a", 1]]), ("ss", ["a", "b"]), ("ssv", ["a", "b", Variant("u", 1)]), ("ad", [[1e308, -0.0]]),
]  # fmt: skip
MEMBERS = ["add", "echo", "count", "stats", "Nope", "Describe", "Get", "GetAll", "Set", "Introspect", "x" * 200]
IFACES = [IFACE, "org.pyobs.Module", "org.pyobs.Nope", None, "org.freedesktop.DBus.Properties"]


def _count(kind: str, n: int = 1) -> None:
    COUNTS[kind] = COUNTS.get(kind, 0) + n


def _nested(levels: int) -> Variant:
    v = Variant("x", 1)
    for _ in range(levels):
        v = Variant("av", [v])
    return v


async def test_attacks_over_dbus(dbus_backend: Any, tmp_path: Path) -> None:
    prefix = dbus_backend.prefix
    dest = f"{prefix}.{escape_name(NAME)}"
    path = "/" + prefix.replace(".", "/")
    proc = start_target(dbus_backend.comm_config(NAME), tmp_path, NAME)
    caller = dbus_backend.comm("caller", timeout=5.0)
    await caller.open()
    attacker = await MessageBus(bus_address=dbus_backend.address).connect()
    health = Health(proc, caller, NAME)
    rng = random.Random(13)
    loop = asyncio.get_running_loop()

    async def call(member: str, sig: str, body: list[Any], iface: str | None = IFACE, timeout: float = 10) -> Message:
        nonlocal attacker
        msg = Message(destination=dest, path=path, interface=iface, member=member, signature=sig, body=body)
        reply = await asyncio.wait_for(attacker.call(msg), timeout)
        assert reply is not None
        return reply

    try:
        await health.wait_online()

        # ------------------------------------------------------------------ garbled
        for _ in range(300):
            sig, body = rng.choice(BODIES)
            member, iface = rng.choice(MEMBERS), rng.choice(IFACES)
            reply = await call(member, sig, body, iface)
            assert reply.message_type in (MessageType.ERROR, MessageType.METHOD_RETURN)
            _count("garbled calls: answered")
            if reply.message_type is MessageType.ERROR:
                _count("garbled calls: D-Bus errors")
        await health.check("garbled")

        # ------------------------------------------------------------------ deep
        for levels in (10, 30, 31, 63, 100):
            try:
                reply = await call("count", "v", [_nested(levels)])
                assert reply.message_type is MessageType.ERROR  # count takes 'ax'
                _count("deep variants: refused by the module")
            except Exception:  # past the D-Bus nesting limit (64) the library or the daemon refuses it
                _count("deep variants: refused by the bus")
                if not attacker.connected:
                    attacker = await MessageBus(bus_address=dbus_backend.address).connect()
        await health.check("deep")

        # ------------------------------------------------------------------ huge
        reply = await call("count", "ax", [list(range(1_000_000))], timeout=30)
        assert reply.message_type is MessageType.METHOD_RETURN and reply.body == [1_000_000]
        big = "x\r\n\t" * 500_000
        reply = await call("echo", "s", [big], timeout=30)
        assert reply.body == [big]  # CR, LF, TAB unchanged
        _count("huge calls (8 MB array, 2 MB string): answered exactly", 2)
        await health.check("huge")

        # ------------------------------------------------------------------ flood
        async def drained() -> None:
            """A round trip to the bus daemon: it has read everything we wrote before (the
            attacker's own library fails on a full socket buffer, which is not what we test)."""
            ping = Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus.Peer",
                member="Ping",
            )
            await asyncio.wait_for(attacker.call(ping), 10)

        cap = int(LIMITS["max_calls"])
        before = rss_mb(proc)
        waits = []
        for i in range(cap + 800):
            waits.append(asyncio.ensure_future(call("sleep", "d", [3.0], timeout=30)))
            if i % 50 == 49:
                await drained()
        await eventually(lambda: sum(1 for w in waits if w.done()) >= 800, timeout=20, what="busy answers")
        pending_growth = rss_mb(proc) - before
        replies = await asyncio.gather(*waits)
        busy = sum(1 for r in replies if r.message_type is MessageType.ERROR and "ModuleBusyError" in str(r.error_name))
        served = sum(1 for r in replies if r.message_type is MessageType.METHOD_RETURN)
        kinds = collections.Counter(str(r.error_name) for r in replies if r.message_type is MessageType.ERROR)
        assert busy >= 800 and served <= cap and busy + served == len(replies), (busy, served, kinds)
        _count("flood: slow calls sent", len(replies))
        _count("flood: busy errors", busy)
        health.report[f"rss growth with {cap} calls pending (MB)"] = round(pending_growth, 1)

        def event(i: int) -> Message:
            return Message.new_signal(path, "org.pyobs.Event", "FuzzEvent", "sda{sv}", [f"e{i}", 1.0, {}])

        for i in range(3000):  # from a process that is no module: dropped
            await attacker.send(event(i))
            if i % 50 == 49:
                await drained()
        _count("flood: event signals from a non-module", 3000)
        stats = await health.check("flood (non-module events)")
        assert stats["handled"] == 0 and stats["dropped_events"] == 0
        # owning a name with the fleet's prefix makes a process a module (the bus is the trust boundary)
        await attacker.request_name(f"{prefix}.rawsender")
        for i in range(3000):
            await attacker.send(event(10_000 + i))
            if i % 50 == 49:
                await drained()
        _count("flood: event signals from a name owner to a slow handler", 3000)
        deadline = loop.time() + 20
        stats = await health.check("flood (events)")
        while stats["dropped_events"] + stats["handled"] + LIMITS["handler_queue_size"] + 4 < 3000:
            assert loop.time() < deadline, stats
            await asyncio.sleep(0.2)
            stats = await health.check("flood (events)")
        while stats["handled"] == 0:  # the handler takes 0.5 s per event
            assert loop.time() < deadline, stats
            await asyncio.sleep(0.1)
            stats = await health.check("flood (events)")
        assert stats["dropped_events"] > 0 and stats["senders"] == ["rawsender"]
        assert log_lines(tmp_path, NAME, "is behind") <= 3

        # ------------------------------------------------------------------ spoofing
        from dbus_fast import RequestNameReply

        taken = await attacker.request_name(dest)
        assert taken is not RequestNameReply.PRIMARY_OWNER  # the module keeps its name
        _count("spoofing: taking the module's name (refused by the bus)")
        await health.check("spoofing")
        health.report["rss peak over baseline (MB)"] = round(health.peak - health.baseline, 1)
        print("\nD-Bus attack counts:", json.dumps(COUNTS, indent=1), "\nmemory:", health.report)
    finally:
        attacker.disconnect()
        await caller.close()
        stop_target(proc)
