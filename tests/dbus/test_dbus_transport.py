"""DbusComm as D-Bus sees it: introspection, native calls from foreign clients, malformed input,
match-rule event routing, name escaping, modules in other processes, and the bus going away."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from backends.base import eventually
from backends.dbus import DbusBackend, DbusDaemon
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.introspection import Node
from event_watch import EventWatch
from module_process import start_module_process
from support import Camera, Color, Focuser, IKitchenSink, KitchenSink, Point, SeedClient, opened, seen, unseen

from pyobs.comm.dbus import DbusComm
from pyobs.comm.dbus.codec import NULL, escape_name, unescape_name
from pyobs.comm.transport import NotConnected
from pyobs.events import NewImageEvent
from pyobs.interfaces import Binning, BinningCapabilities, BinningState, IBinning, IFocuser
from pyobs.interfaces.types import FocuserState
from pyobs.modules import Module
from pyobs.testing.process import stop_process
from pyobs.utils.exceptions import MoveError

TESTS = Path(__file__).parent.parent


async def _call(
    raw: MessageBus, backend: DbusBackend, iface: str, member: str, sig: str = "", body: list[Any] | None = None
) -> Message:
    msg = backend.message("sink", iface, member, sig, body)
    reply = await asyncio.wait_for(raw.call(msg), 5.0)
    assert reply is not None
    return reply


# ---------------------------------------------------------------------------------- introspection


async def test_introspection_shows_our_interfaces_and_signatures(
    dbus_backend: DbusBackend, sink: KitchenSink, raw: MessageBus
) -> None:
    reply = await _call(raw, dbus_backend, "org.freedesktop.DBus.Introspectable", "Introspect")
    node = Node.parse(reply.body[0])
    ifaces = {i.name: i for i in node.interfaces}
    assert {"org.pyobs.IKitchenSink", "org.pyobs.IModule", "org.pyobs.IConfig", "org.pyobs.Module"} <= set(ifaces)
    methods = {m.name: m for m in ifaces["org.pyobs.IKitchenSink"].methods}
    expected = {
        "echo_bool": ("b", "b"),
        "echo_int": ("x", "x"),
        "echo_float": ("d", "d"),
        "echo_str": ("s", "s"),
        "echo_enum": ("s", "s"),
        "echo_list": ("ax", "ax"),
        "echo_tuple": ("(xsd)", "(xsd)"),
        "echo_dict": ("a{sd}", "a{sd}"),
        "echo_point": ("a{sv}", "a{sv}"),
        "echo_optional": ("v", "v"),
        "echo_annotated": ("d", "d"),
        "combine": ("xds", "s"),
        "nothing": ("", ""),
    }
    for name, (ins, outs) in expected.items():
        m = methods[name]
        assert "".join(str(a.signature) for a in m.in_args) == ins, name
        assert "".join(str(a.signature) for a in m.out_args) == outs, name
    assert [a.name for a in methods["combine"].in_args] == ["a", "b", "c"]
    # parent nodes lead to the module's object (busctl tree)
    dest, path = dbus_backend.target("sink")
    parent = path.rsplit("/", 1)[0]
    reply = await asyncio.wait_for(
        raw.call(
            Message(destination=dest, path=parent, interface="org.freedesktop.DBus.Introspectable", member="Introspect")
        ),
        5.0,
    )
    assert reply is not None and Node.parse(reply.body[0]).nodes[0].name == path.rsplit("/", 1)[1]


@pytest.mark.skipif(shutil.which("busctl") is None, reason="busctl is not installed")
async def test_busctl_introspect_and_call(dbus_bus: str, dbus_backend: DbusBackend, sink: KitchenSink) -> None:
    dest, path = dbus_backend.target("sink")

    async def busctl(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "busctl", f"--address={dbus_bus}", "--no-pager", *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 20.0)
        return out.decode()

    out = await busctl("introspect", dest, path)
    assert "org.pyobs.IKitchenSink" in out and ".echo_track" in out and "a{sv}" in out
    out = await busctl("call", dest, path, "org.pyobs.IKitchenSink", "combine", "xds", "3", "1.5", "y")
    assert out.strip() == 's "3|1.5|y"'
    out = await busctl("call", dest, path, "org.pyobs.IKitchenSink", "combine", "xd", "3", "1.5")  # default for c
    assert out.strip() == 's "3|1.5|x"'


# ---------------------------------------------------------------------------------- foreign clients


async def test_foreign_client_calls_with_native_types(
    dbus_backend: DbusBackend, sink: KitchenSink, raw: MessageBus
) -> None:
    ks = "org.pyobs.IKitchenSink"
    reply = await _call(raw, dbus_backend, ks, "echo_int", "x", [2**40])
    assert reply.message_type is MessageType.METHOD_RETURN and reply.body == [2**40]
    point = {"x": Variant("d", 1.0), "y": Variant("x", 2), "label": NULL}  # an int where a float is declared
    reply = await _call(raw, dbus_backend, ks, "echo_point", "a{sv}", [point])
    assert reply.signature == "a{sv}"
    assert {k: v.value for k, v in reply.body[0].items()} == {"x": 1.0, "y": 2.0, "label": b""}
    assert reply.body[0]["y"].signature == "d"
    reply = await _call(raw, dbus_backend, ks, "echo_optional", "v", [NULL])
    assert reply.signature == "v" and reply.body[0].signature == "ay" and reply.body[0].value == b""
    reply = await _call(raw, dbus_backend, ks, "echo_tuple", "(xsd)", [[1, "a", 2.5]])
    assert list(reply.body[0]) == [1, "a", 2.5]
    reply = await _call(raw, dbus_backend, ks, "whoami")
    assert reply.body == [raw.unique_name]  # a foreign caller is known by its unique name
    # a remote exception: its class in the error name, message, type and pyobs bases in the body
    reply = await _call(raw, dbus_backend, ks, "fail", "s", ["move"])
    assert reply.message_type is MessageType.ERROR
    assert reply.error_name == "org.pyobs.Error.pyobs.utils.exceptions.MoveError"
    assert reply.body == [
        "cannot move there",
        "pyobs.utils.exceptions.MoveError",
        ["pyobs.utils.exceptions.MotionError"],
    ]


async def test_malformed_calls_get_dbus_errors_and_the_module_keeps_running(
    dbus_backend: DbusBackend, sink: KitchenSink, raw: MessageBus, caplog: pytest.LogCaptureFixture
) -> None:
    ks = "org.pyobs.IKitchenSink"
    caplog.set_level(logging.WARNING, logger="pyobs.comm.dbus")

    async def error(member: str, sig: str = "", body: list[Any] | None = None, iface: str = ks) -> tuple[str, str]:
        reply = await _call(raw, dbus_backend, iface, member, sig, body)
        assert reply.message_type is MessageType.ERROR, (member, reply.body)
        return str(reply.error_name), str(reply.body[0])

    name, text = await error("echo_int", "s", ["five"])
    assert name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert "echo_int()" in text and "'x'" in text and "'s'" in text
    name, text = await error("no_such_method")
    assert name == "org.freedesktop.DBus.Error.UnknownMethod" and "no_such_method" in text
    name, text = await error("echo_enum", "s", ["purple"])
    assert name == "org.freedesktop.DBus.Error.InvalidArgs" and "purple" in text and "Color" in text
    name, text = await error("echo_point", "a{sv}", [{"x": Variant("d", 1.0)}])
    assert name == "org.freedesktop.DBus.Error.InvalidArgs" and "missing field 'y'" in text
    name, text = await error("echo_point", "a{sv}", [{"x": Variant("s", "left"), "y": Variant("d", 1.0)}])
    assert name == "org.freedesktop.DBus.Error.InvalidArgs" and "Point.x" in text
    name, text = await error("Set", "ssv", [ks, "State", Variant("s", "x")], iface="org.freedesktop.DBus.Properties")
    assert name == "org.freedesktop.DBus.Error.PropertyReadOnly"
    name, text = await error("Get", "ss", ["org.pyobs.INothing", "State"], iface="org.freedesktop.DBus.Properties")
    assert name == "org.freedesktop.DBus.Error.UnknownInterface"
    name, text = await error("Explode", "", [], iface="org.pyobs.Module")
    assert name == "org.freedesktop.DBus.Error.UnknownMethod"
    # fire-and-forget garbage gets no reply but is logged
    dest, path = dbus_backend.target("sink")
    await raw.send(
        Message(destination=dest, path=path, interface=ks, member="echo_int", signature="d", body=[1.0], flags=1)
    )
    # one line at once, the others counted (a flood of bad calls must not flood the log)
    transport: Any = sink.comm.transport
    parts = (transport.server, transport.state)  # the parts that answer calls, each with its own limit
    await eventually(
        lambda: caplog.text.count("rejected call") + sum(p._limited.suppressed for p in parts) >= 7,
        what="log lines for rejected calls",
    )
    assert caplog.text.count("rejected call") <= 2 * len(parts)
    # the module keeps running, for pyobs callers and foreign ones alike
    caller = dbus_backend.comm("caller")
    await caller.open()
    try:
        await seen(caller, "sink")
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.echo_enum(Color.GREEN) is Color.GREEN
        reply = await _call(raw, dbus_backend, ks, "echo_int", "x", [7])
        assert reply.body == [7]
    finally:
        await caller.close()


async def test_malformed_event_signals_are_dropped_and_logged(
    dbus_backend: DbusBackend, raw: MessageBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pyobs.comm.dbus")
    client = await opened(SeedClient(comm=dbus_backend.comm("client")))
    path = "/" + dbus_backend.prefix.replace(".", "/")
    try:

        def emit(sig: str, body: list[Any], member: str = "NewImageEvent") -> None:
            raw.send(Message.new_signal(path, "org.pyobs.Event", member, sig, body))

        # a process that is no module (owns no name with our prefix) sends no events
        emit("sda{sv}", ["u0", 1.0, {"filename": Variant("s", "/no.fits"), "image_type": Variant("s", "object")}])
        await eventually(lambda: "not a module" in caplog.text, what="the foreign event dropped")
        await raw.request_name(f"{dbus_backend.prefix}.rawsender")
        await eventually(
            lambda: client.comm.transport.peers.module_of(raw.unique_name) == "rawsender",  # type: ignore[attr-defined]
            what="the raw sender known as a module",
        )
        emit("s", ["{not json"])
        emit("sda{sv}", ["u1", 1.0, {}])  # missing filename
        emit("sda{sv}", ["u2", 1.0, {"filename": Variant("x", 5)}])  # wrong type
        emit("sda{sv}", ["u3", 1.0, {"filename": Variant("s", "/a.fits"), "image_type": Variant("s", "nonsense")}])
        emit("sda{sv}", ["", 1.0, {"filename": Variant("s", "/b.fits")}])  # no uuid
        emit("sda{sv}", ["u5", 1.0, {"filename": Variant("s", "/c.fits")}], member="NoSuchEvent")
        emit("sda{sv}", ["u6", 1.0, {"filename": Variant("s", "/ok.fits"), "image_type": Variant("s", "object")}])
        await eventually(lambda: client.images != [], what="the valid event")
        await asyncio.sleep(0.1)
        assert client.images == [("rawsender", "/ok.fits")]
        # the first line of each kind at once, the rest counted (rate-limited)
        limited = client.comm.transport.events._limited  # type: ignore[attr-defined]  (the event part's own)
        assert caplog.text.count("dropped") + limited.suppressed >= 6
        assert "signature 's'" in caplog.text
    finally:
        await client.close()


# ---------------------------------------------------------------------------------- routing


async def test_events_reach_only_modules_with_a_match_rule(dbus_backend: DbusBackend) -> None:
    """Event signals are routed by the bus: a module that does not handle a type never sees it."""
    cam = await opened(Camera(comm=dbus_backend.comm("camera")))
    client = await opened(SeedClient(comm=dbus_backend.comm("client")))
    bystander = dbus_backend.comm("bystander")
    seen_by_bystander: list[str] = []
    transport: Any = bystander.transport
    original = transport._on_signal

    def spy(msg: Message) -> None:
        if msg.interface == "org.pyobs.Event":
            seen_by_bystander.append(str(msg.member))
        original(msg)

    transport._on_signal = spy
    await bystander.open()
    try:
        await seen(client.comm, "camera")
        await seen(bystander, "camera")
        await cam.comm.send_event(NewImageEvent("/x.fits"))
        await eventually(lambda: client.images == [("camera", "/x.fits")], what="NewImageEvent at the client")
        await client.comm.unregister_event(NewImageEvent)
        await cam.comm.send_event(NewImageEvent("/y.fits"))
        await asyncio.sleep(0.2)
        assert client.images == [("camera", "/x.fits")]
        assert seen_by_bystander == []
    finally:
        await bystander.close()
        await client.close()
        await cam.close()


@pytest.mark.parametrize("name", ["cam-1", "2nd camera", "kamera-ü", "a.b"])
async def test_any_module_name_becomes_a_valid_bus_name(dbus_backend: DbusBackend, name: str) -> None:
    assert unescape_name(escape_name(name)) == name
    module = await opened(KitchenSink(comm=dbus_backend.comm(name)))
    caller = dbus_backend.comm("caller")
    await caller.open()
    try:
        await seen(caller, name)
        proxy = await caller.proxy(name, IKitchenSink)
        assert await proxy.echo_str("hi") == "hi"
        assert await proxy.whoami() == "caller"
    finally:
        await caller.close()
        await module.close()


async def test_second_module_with_the_same_name_fails_clearly(dbus_backend: DbusBackend) -> None:
    first = dbus_backend.comm("twin")
    await first.open()
    second = dbus_backend.comm("twin")
    try:
        with pytest.raises(ValueError, match="'twin' is already online"):
            await second.open()
    finally:
        await second.close()
        await first.close()


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ValueError, match="invalid bus 'sessionbus'"):
        DbusComm("x", bus="sessionbus")
    with pytest.raises(ValueError, match="invalid D-Bus name prefix"):
        DbusComm("x", prefix="org.py-obs")
    with pytest.raises(ValueError, match="invalid module name"):
        DbusComm("")


async def test_unreachable_bus_is_a_clear_error(tmp_path: Path) -> None:
    comm = DbusComm("x", bus=f"unix:path={tmp_path}/nothing", timeout=2.0)
    with pytest.raises(ConnectionError, match="cannot connect to the D-Bus bus"):
        await comm.open()


async def test_announced_duration_extends_the_callers_deadline(dbus_backend: DbusBackend, sink: KitchenSink) -> None:
    caller = dbus_backend.comm("caller", timeout=0.3)
    await caller.open()
    try:
        await seen(caller, "sink")
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.sleep_announced(0.8) == 0.8  # CallTimeout signal moved the deadline
    finally:
        await caller.close()


# ---------------------------------------------------------------------------------- processes


def _start_module(backend: DbusBackend, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    config = {"class": "support.KitchenSink", "comm": backend.comm_config(name)}
    return start_module_process(tmp_path, name, config, TESTS / "behaviour")


async def test_module_in_its_own_process_is_seen_gone_at_once_when_killed(
    dbus_backend: DbusBackend, tmp_path: Path
) -> None:
    watch = EventWatch()
    caller = dbus_backend.comm("caller")
    await watch.attach(caller)
    await caller.open()
    proc = _start_module(dbus_backend, tmp_path, "remote")
    try:
        await seen(caller, "remote", timeout=20.0)
        proxy = await caller.proxy("remote", IKitchenSink)
        assert await proxy.echo_point(Point(1.0, 2.0)) == Point(1.0, 2.0)
        with pytest.raises(MoveError, match="cannot move there"):
            await proxy.fail("move")
        pending = asyncio.ensure_future(proxy.sleep(30.0))
        await asyncio.sleep(0.2)
        killed = time.monotonic()
        proc.kill()
        with pytest.raises(Exception, match="remote"):
            await asyncio.wait_for(pending, 5.0)
        await unseen(caller, "remote", timeout=5.0)
        assert time.monotonic() - killed < 1.0  # NameOwnerChanged, no polling
        await eventually(lambda: watch.closed != [], what="ModuleClosedEvent")
        gone = watch.first("closed")
        assert gone.module == "remote" and gone.at - killed < 1.0
    finally:
        stop_process(proc, 10.0)
        await caller.close()


# ---------------------------------------------------------------------------------- the bus goes away


async def test_modules_reconnect_when_the_bus_daemon_returns(tmp_path: Path) -> None:
    daemon = DbusDaemon(tmp_path)
    daemon.start()
    backend = DbusBackend(daemon.address)
    modules: list[Any] = []
    try:
        sink = await opened(KitchenSink(comm=backend.comm("sink")))
        cam = await opened(Camera(comm=backend.comm("camera")))
        foc = await opened(Focuser(comm=backend.comm("focuser")))
        client = await opened(SeedClient(comm=backend.comm("client")))
        modules = [client, foc, cam, sink]
        states: list[float] = []

        async def on_state(state: FocuserState, sender: str) -> None:
            states.append(state.focus)

        for name in ("sink", "camera", "focuser"):
            await seen(client.comm, name)
        await client.comm.subscribe_state("focuser", IFocuser, on_state)
        proxy = await client.comm.proxy("sink", IKitchenSink)
        assert await proxy.echo_int(1) == 1

        daemon.stop(signal.SIGKILL)
        await eventually(lambda: not client.comm.connected and not sink.comm.connected, what="connection loss")
        # the core's policy: peers are kept for the grace, calls fail at once
        assert client.comm.is_online("sink")
        with pytest.raises(NotConnected, match="not connected"):
            await proxy.echo_int(3)
        # an event sent while the bus is away waits in the outbox (it used to raise) ...
        await cam.comm.send_event(NewImageEvent("/kept.fits"))
        assert cam.comm.outbox.waiting == 1

        daemon.start()
        await eventually(lambda: all(m.comm.connected for m in modules), timeout=10.0, what="reconnection")
        for name in ("sink", "camera", "focuser"):
            await seen(client.comm, name, timeout=5.0)
        proxy = await client.comm.proxy("sink", IKitchenSink)
        assert await proxy.echo_int(2) == 2
        # ... and goes out once the bus is back, before the ones sent after it
        await eventually(lambda: ("camera", "/kept.fits") in client.images, what="kept event after reconnect")
        await cam.comm.send_event(NewImageEvent("/again.fits"))
        await eventually(lambda: ("camera", "/again.fits") in client.images, what="event after reconnect")
        assert [f for _, f in client.images] == ["/kept.fits", "/again.fits"]
        assert cam.comm.outbox.waiting == 0 and cam.comm.outbox.sent["NewImageEvent"] == 2
        await foc.set_focus(42.0)
        await eventually(lambda: 42.0 in states, what="state change after reconnect")
    finally:
        for m in modules:
            await m.close()
        daemon.stop()


# ---------------------------------------------------------------------------------- state and capabilities


class Binner(Module, IBinning):
    """Publishes binning state and constant capabilities."""

    async def open(self) -> None:
        self.comm.set_capabilities(IBinning, BinningCapabilities([Binning(1, 1), Binning(2, 2)]))
        await super().open()
        await self.comm.set_state(IBinning, BinningState(1, 1))

    async def set_binning(self, x: int, y: int, **kwargs: Any) -> None:
        await self.comm.set_state(IBinning, BinningState(x, y))


async def test_state_and_capabilities_are_dbus_properties(dbus_backend: DbusBackend, raw: MessageBus) -> None:
    binner = await opened(Binner(comm=dbus_backend.comm("binner")))
    caller = dbus_backend.comm("caller")
    await caller.open()
    dest, path = dbus_backend.target("binner")
    props = "org.freedesktop.DBus.Properties"
    changes: list[Any] = []

    def on_signal(msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and msg.member == "PropertiesChanged" and msg.path == path:
            changes.append(msg.body)

    raw.add_message_handler(on_signal)
    rule = f"type='signal',path='{path}',interface='{props}',member='PropertiesChanged',arg0='org.pyobs.IBinning'"
    await raw.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[rule],
        )
    )
    try:
        await seen(caller, "binner")
        caps = await caller.get_capabilities("binner", IBinning)
        assert caps == BinningCapabilities([Binning(1, 1), Binning(2, 2)])
        states: list[BinningState] = []

        async def on_state(state: BinningState, sender: str) -> None:
            states.append(state)

        await caller.subscribe_state("binner", IBinning, on_state)
        assert (await caller.get_state("binner", IBinning)).x == 1
        # as any D-Bus client sees them
        msg = Message(
            destination=dest, path=path, interface=props, member="GetAll", signature="s", body=["org.pyobs.IBinning"]
        )
        reply = await asyncio.wait_for(raw.call(msg), 5.0)
        assert reply is not None and set(reply.body[0]) == {"State", "Capabilities"}
        state = reply.body[0]["State"].value
        assert state["x"].value == 1 and state["x"].signature == "x" and state["time"].signature == "s"
        binnings = reply.body[0]["Capabilities"].value["binnings"]
        assert binnings.signature == "av" and [b.value["y"].value for b in binnings.value] == [1, 2]

        proxy = await caller.proxy("binner", IBinning)
        await proxy.set_binning(2, 3)
        await eventually(lambda: any(s.y == 3 for s in states), what="state pushed to the subscriber")
        assert states[-1].x == 2 and isinstance(states[-1], BinningState)
        await eventually(lambda: changes != [], what="PropertiesChanged at the raw client")
        iface, changed, invalidated = changes[-1]
        assert iface == "org.pyobs.IBinning" and changed["State"].value["y"].value == 3 and invalidated == []
    finally:
        raw.remove_message_handler(on_signal)
        await caller.close()
        await binner.close()


async def test_events_registered_later_are_announced(dbus_backend: DbusBackend) -> None:
    sink = await opened(KitchenSink(comm=dbus_backend.comm("sink")))
    caller = dbus_backend.comm("caller")
    await caller.open()
    try:
        await seen(caller, "sink")
        assert "NewImageEvent" not in caller._peers["sink"].sends
        await sink.comm.register_event(NewImageEvent)  # after going online: the Described signal
        await eventually(lambda: "NewImageEvent" in caller._peers["sink"].sends, what="updated description")
    finally:
        await caller.close()
        await sink.close()


# ---------------------------------------------------------------------------------- caller identity (ACL)


async def test_the_caller_is_the_bus_name_its_connection_owns(dbus_backend: DbusBackend, raw: MessageBus) -> None:
    """The ACL checks the module name the bus daemon vouches for: the sender's unique name, mapped
    to the well-known module name it owns; a connection that owns none is named by its unique name."""
    guarded = await opened(KitchenSink(comm=dbus_backend.comm("sink"), acl={"allow": {"client": "*"}}))
    try:
        ks = "org.pyobs.IKitchenSink"
        reply = await _call(raw, dbus_backend, ks, "whoami")
        assert reply.message_type is MessageType.ERROR
        assert reply.error_name is not None and reply.error_name.endswith("ForbiddenError"), reply.error_name
        assert reply.body[1] == "pyobs.utils.exceptions.ForbiddenError"
        assert f"Caller '{raw.unique_name}' is not permitted" in reply.body[0]
        # owning the module name "client" on the bus is what makes a connection that module
        owned = await asyncio.wait_for(raw.request_name(f"{dbus_backend.prefix}.{escape_name('client')}"), 5.0)
        assert owned.value == 1  # RequestNameReply.PRIMARY_OWNER
        # no waiting: the bus delivers NameOwnerChanged to the module before this connection's next call
        reply = await _call(raw, dbus_backend, ks, "whoami")
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        assert reply.body == ["client"]
    finally:
        await guarded.close()


async def test_a_denied_module_is_denied_right_after_a_reconnect(tmp_path: Path) -> None:
    """After the bus returns, a module is reachable as soon as it owns its name again, before it has
    looked up who owns the other names: a caller it cannot name yet must wait for that, not pass
    as an anonymous connection that a deny list does not name."""
    daemon = DbusDaemon(tmp_path)
    daemon.start()
    backend = DbusBackend(daemon.address)
    guarded = await opened(KitchenSink(comm=backend.comm("sink"), acl={"deny": ["client"]}))
    raw: MessageBus | None = None
    try:
        daemon.stop(signal.SIGKILL)
        await eventually(lambda: not guarded.comm.connected, what="connection loss")
        daemon.start()
        raw = await MessageBus(bus_address=daemon.address).connect()
        await asyncio.wait_for(raw.request_name(f"{backend.prefix}.{escape_name('client')}"), 5.0)
        dest, path = backend.target("sink")
        msg = Message(destination=dest, path=path, interface="org.pyobs.IKitchenSink", member="whoami")
        # call as fast as we can until the module answers: the first call it sees is the one that
        # arrives while it is still discovering
        deadline = time.monotonic() + 15.0
        reply = await asyncio.wait_for(raw.call(msg), 5.0)
        while reply is not None and reply.error_name == "org.freedesktop.DBus.Error.ServiceUnknown":
            assert time.monotonic() < deadline, "the module did not come back"
            reply = await asyncio.wait_for(raw.call(msg), 5.0)
        assert reply is not None and reply.message_type is MessageType.ERROR, reply.body
        assert reply.body[1] == "pyobs.utils.exceptions.ForbiddenError", reply.body
        assert "Caller 'client'" in reply.body[0]
    finally:
        if raw is not None:
            raw.disconnect()
        await guarded.close()
        daemon.stop()


async def test_close_flushes_a_burst_the_socket_could_not_take_at_once(dbus_backend: DbusBackend) -> None:
    """Signals still in dbus-fast's write queue when close() runs are written before disconnecting."""
    got: list[str] = []

    async def on_image(event: NewImageEvent, sender: str) -> bool:
        got.append(event.filename)
        return True

    receiver = dbus_backend.comm("receiver")
    await receiver.register_event(NewImageEvent, on_image)
    await receiver.open()
    sender = dbus_backend.comm("sender")
    await sender.register_event(NewImageEvent)
    await sender.open()
    try:
        await eventually(lambda: receiver.is_online("sender"), what="discovery")
        pad = "x" * 4000
        names = [f"/{i}-{pad}.fits" for i in range(1500)]  # ~6 MB: more than a socket buffer takes
        for name in names:
            await sender.send_event(NewImageEvent(name))
        await sender.close()
        assert sender.outbox.unsent == 0
        await eventually(lambda: len(got) >= len(names), timeout=20.0, what=f"{len(names)} events (have {len(got)})")
        assert got == names
    finally:
        await sender.close()
        await receiver.close()
