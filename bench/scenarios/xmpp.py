"""XmppComm, one process per module, on a throw-away prosody (pyobs.testing.xmpp_server).

Ours and pyobs-core 2.19.1 use the same server, one after the other. Floor: plain slixmpp, an IQ
with a jabber:iq:rpc-sized payload answered by a minimal callback, between two processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from harness.common import emit, now_ns
from harness.roles import Context, SubscriberLog, measure_calls, publish_series

if TYPE_CHECKING:
    from harness.driver import Run

NAME = "xmpp"
TITLE = "XmppComm (one process per module, prosody on 127.0.0.1)"
IN_PROCESS = False
IMPLS = ("ours", "core")
IMPORT = {"ours": "pyobs.comm.xmpp", "core": "pyobs.comm.xmpp"}
#: worker roles of the floor's event measurement (the driver runs them like ours)
FLOOR_EVENT_ROLES = {
    "message": ("floor_msg_subscriber", "floor_msg_publisher"),
    "pubsub": ("floor_subscriber", "floor_publisher"),
}
FLOOR = (
    "plain slixmpp through the same prosody: IQ with an rpc-sized payload answered by a minimal callback; "
    "events: a <message> to each subscriber's full JID (as ours sends to our peers); "
    "the pubsub floor (XEP-0060 publish to a node with persist_items=0, subscribers by full JID) in its own rows"
)
#: events 25 ms apart: well above pyobs-core's latency to 10 subscribers, so nothing queues up
EVENT_INTERVAL = 0.025
GOALS = [
    ("call_rtt.p50", "vs_core>=", 2.5, "issue 4: XMPP call round trip p50 ≥ 2.5x lower than pyobs-core"),
    ("throughput.per_s", "vs_core>=", 4.0, "issue 4: XMPP calls/s with 50 in flight ≥ 4x pyobs-core"),
    ("event_1.every.p50", "vs_core>=", 4.0, "issue 4: XMPP event to 1 subscriber p50 ≥ 4x lower than pyobs-core"),
    ("open_to_visible.p50", "ours<=", 0.1, "issue 4: XMPP open() → discoverable by peers ≤ 100 ms"),
]


def users(subscribers: list[int] | tuple[int, ...], starts: int) -> list[str]:
    """Every account a worker may log in with (module names are the JIDs' local parts)."""
    names = ["bench-callee", "bench-caller", "bench-observer", "bench-floor-a", "bench-floor-b"]
    for k in subscribers:
        names += [f"bench-pub{k}", *(f"bench-sub{k}-{i}" for i in range(k))]
    return names + [f"bench-start{i}" for i in range(starts)]


NS = "urn:pyobs:bench"
#: about what a jabber:iq:rpc call of move_radec(ra, dec) carries
PAYLOAD = (
    f'<query xmlns="{NS}"><methodCall><methodName>move_radec</methodName><params>'
    "<param><value><double>1.0</double></value></param><param><value><double>2.0</double></value></param>"
    "<param><value><struct><member><name>kwargs</name><value><string /></value></member></struct></value></param>"
    "</params></methodCall></query>"
)


def available(impl: str) -> str | None:
    if shutil.which("prosody") is None:
        return "prosody is not installed"
    if impl == "ours":
        try:
            if importlib.util.find_spec("pyobs.comm.xmpp.comm") is None:
                return "pyobs.comm.xmpp does not exist yet"
            importlib.import_module("pyobs.comm.xmpp")
        except Exception as exc:
            return f"pyobs.comm.xmpp does not import: {exc}"
    return None


@contextlib.asynccontextmanager
async def environment(run: Run) -> AsyncIterator[dict[str, Any]]:
    from pyobs.testing.xmpp_server import TestServer

    names = users(run.profile.subscribers, run.profile.starts)
    async with TestServer(users=names, tuned_gc=not run.prosody_gc) as server:
        pacing = "its own" if run.prosody_gc else "tuned"
        run.say(f"prosody on {server.address} ({server.directory}; {pacing} GC pacing)")
        pid = server._process.pid if server._process is not None else None
        yield {"server": server.address, "domain": server.domain, "password": server.password, "server_pid": pid}


def make_comm(impl: str, name: str, env: dict[str, Any]) -> Any:
    from pyobs.comm.xmpp import XmppComm

    return XmppComm(user=name, domain=env["domain"], password=env["password"], server=env["server"], use_tls=False)


# ---------------------------------------------------------------------------- floor: plain slixmpp


async def floor(run: Run, env: dict[str, Any]) -> dict[str, Any]:
    callee = await run.spawn("floor-callee", "ours", NAME, "floor_callee", {"name": "bench-floor-b"})
    await callee.expect("ready", run.timeout(60))
    params = {**run.remote_params(), "name": "bench-floor-a", "target": "bench-floor-b"}
    caller = await run.spawn("floor-caller", "ours", NAME, "floor_caller", params)
    cpu: dict[str, float] = {}
    run.watch_cpu(caller, callee, cpu)
    metrics: dict[str, Any] = (await caller.expect("result", run.timeout(180)))["metrics"]
    metrics.setdefault("cpu_per_call", {}).update(cpu)
    return metrics


async def _connect(ctx: Context, name: str, plugins: tuple[str, ...] = ()) -> Any:
    import slixmpp

    env = ctx.env
    host, port = env["server"].rsplit(":", 1)
    # loopback without TLS (as the comms are configured): allow SCRAM over the plain connection
    client = slixmpp.ClientXMPP(
        f"{name}@{env['domain']}/floor",
        env["password"],
        plugin_config={"feature_mechanisms": {"unencrypted_scram": True}},
    )
    for plugin in plugins:
        client.register_plugin(plugin)
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_start(_: Any) -> None:
        if not started.done():
            started.set_result(None)

    client.add_event_handler("session_start", on_start)
    client.connect(host, int(port))
    async with asyncio.timeout(30):
        await started
    return client


async def role_floor_callee(ctx: Context) -> None:
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    client = await _connect(ctx, ctx.params["name"])

    def answer(iq: Any) -> None:
        if iq["type"] in ("get", "set"):
            reply = iq.reply()
            reply.append(ET.Element(f"{{{NS}}}query"))
            reply.send()

    client.register_handler(Callback("bench", MatchXPath(f"{{jabber:client}}iq/{{{NS}}}query"), answer))
    emit("ready", t=now_ns())
    await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))
    client.disconnect()


async def role_floor_caller(ctx: Context) -> None:
    p = ctx.params
    client = await _connect(ctx, p["name"])
    to = f"{p['target']}@{ctx.env['domain']}/floor"
    payload = ET.fromstring(PAYLOAD)

    async def call() -> None:
        iq = client.Iq()
        iq["type"] = "set"
        iq["to"] = to
        iq.append(payload)
        await iq.send(timeout=10)

    metrics = await measure_calls(call, p)
    client.disconnect()
    emit("result", metrics=metrics)


FLOOR_NODE = "bench/floor/events"
PUBSUB_NS = "http://jabber.org/protocol/pubsub"


async def _ensure_node(client: Any, service: str) -> None:
    """Create the floor's event node as ours creates event nodes (items not persisted); may exist."""
    from slixmpp.exceptions import IqError

    form = client["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=PUBSUB_NS + "#node_config")
    form.add_field(var="pubsub#persist_items", value="0")
    # whoever creates it, the other participants publish too (ejabberd: only publishers may)
    form.add_field(var="pubsub#publish_model", value="open")
    try:
        await client["xep_0060"].create_node(service, FLOOR_NODE, config=form, timeout=10)
    except IqError as exc:
        if exc.condition != "conflict":  # conflict: created by another participant already
            raise


async def role_floor_subscriber(ctx: Context) -> None:
    client = await _connect(ctx, ctx.params["name"], ("xep_0004", "xep_0060"))
    service = f"pubsub.{ctx.env['domain']}"
    log = SubscriberLog()

    def on_item(msg: Any) -> None:
        payload = msg["pubsub_event"]["items"]["item"]["payload"]
        if payload is not None and payload.text:
            log.got(int(json.loads(payload.text)["data"]["seq"]))

    client.add_event_handler("pubsub_publish", on_item)
    await _ensure_node(client, service)
    await client["xep_0060"].subscribe(service, FLOOR_NODE, bare=False, timeout=10)
    await log.serve(ctx)
    client.disconnect()


async def role_floor_publisher(ctx: Context) -> None:
    client = await _connect(ctx, ctx.params["name"], ("xep_0004", "xep_0060"))
    service = f"pubsub.{ctx.env['domain']}"
    await _ensure_node(client, service)

    async def send(i: int) -> None:
        payload = ET.Element(f"{{{NS}}}event")
        payload.text = _event_json(i)
        await client["xep_0060"].publish(service, FLOOR_NODE, payload=payload, timeout=10)

    await publish_series(ctx, send)
    client.disconnect()


def _event_json(i: int) -> str:
    """A payload like a pyobs event's JSON."""
    return json.dumps(
        {"type": "NewImageEvent", "timestamp": time.time(), "uuid": "0" * 36, "data": {"seq": i, "filename": "x"}}
    )


async def role_floor_msg_subscriber(ctx: Context) -> None:
    client = await _connect(ctx, ctx.params["name"])
    log = SubscriberLog()

    def on_message(msg: Any) -> None:
        body = msg["body"]
        if body:
            log.got(int(json.loads(body)["data"]["seq"]))

    client.add_event_handler("message", on_message)
    client.send_presence()
    await log.serve(ctx)
    client.disconnect()


async def role_floor_msg_publisher(ctx: Context) -> None:
    client = await _connect(ctx, ctx.params["name"])
    targets = [f"{name}@{ctx.env['domain']}/floor" for name in ctx.params["subscribers"]]

    async def send(i: int) -> None:
        body = _event_json(i)
        for jid in targets:
            client.send_message(mto=jid, mbody=body, mtype="normal")

    await publish_series(ctx, send)
    client.disconnect()
