"""XmppTransport: the Transport contract on an XMPP server, speaking pyobs-core 2.19's wire format.

Who is online comes from roster presence, what a peer offers from its disco#info, calls are
``jabber:iq:rpc`` IQs, events and state live on ``pubsub.<domain>`` nodes (see
``docs/xmpp.md`` and the wire spec). Everything on the hot path (calls, answers, events,
notifications) is written as prebuilt strings and read from raw ElementTree elements.

Connection handling: the comm reconnects by itself (first retry at once, then every
:data:`RECONNECT_MAX_DELAY` s at most), announces itself again, re-subscribes and publishes the
events that were sent while the server was away (a bounded queue; the oldest are dropped with a
warning when it is full). Calls made while disconnected fail at once with a connection error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.comm.errors import describe, rebuild
from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec, interface_by_name
from pyobs.interfaces.types import ModuleCapabilities
from pyobs.utils.exceptions import ForbiddenError, RemoteError, UnknownMethodError

from ..transport import Announcement, Extend, Transport, TransportHandler
from . import discovery, pubsub, rpc
from .client import Client
from .values import INVALID_XML, DecodeError, EncodeError, decode_fields, escape, escape_attr

log = logging.getLogger(__name__)

#: longest pause between two reconnection attempts (s)
RECONNECT_MAX_DELAY = 0.25
#: after reconnecting, how long to wait for the peers we knew to come back before flushing events
RESTORE_GRACE = 5.0
#: how long open() waits for the discovery of the peers already online (slow ones are reported later)
DISCOVERY_WAIT = 2.0
#: peers that went offline this shortly before we lost the server are expected back with it
RECENTLY_GONE = 2.0
#: an unavailable presence counts after this long (unless our own connection ends meanwhile)
OFFLINE_DEBOUNCE = 0.05
#: delay of the pubsub copy of an event that went to peers directly (s)
PUBSUB_DELAY = 0.002
#: a keepalive ping to the server every so many seconds, answered within PING_TIMEOUT
PING_INTERVAL = 30.0
PING_TIMEOUT = 10.0
Q_PING = "{urn:xmpp:ping}ping"
Q_DIRECT_SUBSCRIBE = f"{{{discovery.DIRECT_EVENTS}}}subscribe"
CAPS_NS = "http://jabber.org/protocol/caps"


class XmppConnectionError(RemoteError, ConnectionError):
    """Not connected to the XMPP server (or the connection was lost during the operation)."""


class XmppAuthError(XmppConnectionError, PermissionError):
    """The server refused our credentials, or its certificate is not trusted: retrying won't help."""


class IqError(RemoteError):
    """An IQ was answered with an error."""

    def __init__(self, condition: str, text: str = "", what: str = "") -> None:
        detail = f"{what}: " if what else ""
        super().__init__(f"{detail}{condition}{f' ({text})' if text else ''}")
        self.condition = condition
        self.text = text


def split_jid(jid: str) -> tuple[str, str, str]:
    """``local@domain/resource`` → (local, domain, resource); ValueError naming what is wrong."""
    bare, _, resource = jid.partition("/")
    local, at, domain = bare.partition("@")
    if not at or not local or not domain:
        raise ValueError(f"invalid JID {jid!r}: expected name@domain[/resource]")
    if ":" in local:
        raise ValueError(f"invalid module name {local!r} in JID {jid!r}: names must not contain ':'")
    return local, domain, resource


@dataclass(eq=False)
class _Pending:
    """An IQ we sent and wait for."""

    future: asyncio.Future[Element]
    expect_from: str | None
    extend: Extend | None = None  # calls: the callee may announce a duration


@dataclass(eq=False)
class _PeerState:
    name: str
    jid: str
    caps: str | None = None
    info: discovery.PeerInfo | None = None
    discovered: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    reported: bool = False
    stale: bool = False
    #: event names we subscribed to at this peer
    events: set[str] = field(default_factory=set)


class XmppTransport(Transport):
    """See :class:`pyobs.comm.xmpp.XmppComm` for the options."""

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        server: str | None = None,
        use_tls: bool = True,
        require_tls: bool = False,
        direct_tls: bool = False,
        ca_file: str | None = None,
        allow_plain: bool = False,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        event_queue_size: int = 10000,
        version: str = "",
    ) -> None:
        local, domain, resource = split_jid(jid)
        self.name = local
        self.domain = domain
        self.resource = resource or "pyobs"
        self.bare = f"{local}@{domain}"
        self.full = f"{self.bare}/{self.resource}"
        self.pubsub = f"pubsub.{domain}"
        self._password = password
        self._address: tuple[str, int] | None = _parse_server(server) if server else None
        self._use_tls = use_tls
        self._require_tls = require_tls
        self._direct_tls = direct_tls
        self._ca_file = ca_file
        self._allow_plain = allow_plain
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.version = version
        if event_queue_size < 1:
            raise ValueError("event_queue_size must be at least 1")

        self._client: Client | None = None
        self._handler: TransportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session = False  # a session is up
        self._closing = False
        self._attempt: asyncio.Future[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._conflict = False
        self._last_error = ""

        self._ids = itertools.count(1)
        self._id_prefix = "p" + base64.b32encode(os.urandom(5)).decode().lower() + "-"
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

        self._info: Announcement | None = None
        self._online = False  # our presence was sent in this session
        self._show: tuple[str, str] = ("", "")  # presence <show> and <status>
        self._disco_body = ""
        self._caps_ver = ""
        self._created_nodes: set[str] = set()

        self._peers: dict[str, _PeerState] = {}
        self._peer_returned = asyncio.Event()
        #: peers we expect back after a reconnect, and when peers went offline
        self._expected: set[str] = set()
        self._gone_at: dict[str, float] = {}
        #: peers whose unavailable presence is being confirmed
        self._leaving: dict[str, asyncio.TimerHandle] = {}
        self._state_subs: set[tuple[str, str]] = set()
        self._own_state: dict[str, Any] = {}
        self._published_state: dict[str, Any] = {}

        self._events: deque[tuple[str, str]] = deque()
        self._event_queue_size = event_queue_size
        self._unacked: OrderedDict[str, tuple[str, str]] = OrderedDict()
        #: peers that take our events as direct messages: name → (full JID, event names)
        self._direct: dict[str, tuple[str, frozenset[str]]] = {}
        #: pubsub publishes of events that went to peers directly first, and their timer
        self._deferred: list[str] = []
        self._deferred_timer: asyncio.TimerHandle | None = None
        #: event name → '<message to="JID' prefixes of those peers
        self._direct_targets: dict[str, list[str]] = {}
        self._dropped = 0

        self._call_prefix: dict[str, str] = {}
        self._call_body: dict[str, str] = {}
        self._pubsub_head = pubsub.iq_head(self.pubsub)

    # ================================================================== connection

    def _make_client(self) -> Client:
        client = Client(
            self.full,
            self._password,
            on_iq=self._on_iq,
            on_message=self._on_message,
            on_presence=self._on_presence,
            use_tls=self._use_tls,
            direct_tls=self._direct_tls,
            ca_file=self._ca_file,
            allow_plain=self._allow_plain,
        )
        client.add_event_handler("session_start", self._on_session_start)
        client.add_event_handler("connection_failed", self._on_connection_failed)
        client.add_event_handler("failed_all_auth", self._on_auth_failed)
        client.add_event_handler("ssl_invalid_chain", self._on_invalid_cert)
        client.add_event_handler("stream_error", self._on_stream_error)
        client.add_event_handler("disconnected", self._on_disconnected)
        return client

    @property
    def connected(self) -> bool:
        return self._session

    @property
    def address(self) -> str:
        return f"{self._address[0]}:{self._address[1]}" if self._address else self.domain

    async def open(self, handler: TransportHandler) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._conflict = False
        self._client = self._make_client()
        try:
            await self._connect(self.connect_timeout, retry=True)
        except BaseException:
            self._closing = True
            await self._dispose_client()
            raise

    async def _dispose_client(self) -> None:
        """Abort the connection and end slixmpp's own task (nothing left running)."""
        client = self._client
        if client is None:
            return
        client.cancel_connection_attempt()
        client.abort()
        filters = getattr(client, "_run_out_filters", None)  # slixmpp's send-queue task
        if isinstance(filters, asyncio.Future) and not filters.done():
            filters.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(filters, 1.0)

    async def _connect(self, timeout: float, retry: bool) -> None:
        """Connect and log in within ``timeout`` s (retrying refused connections if ``retry``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        delay = 0.02
        while True:
            try:
                await self._attempt_session(max(0.05, end - loop.time()))
                return
            except XmppAuthError:
                raise
            except XmppConnectionError as exc:
                if not retry or self._closing or loop.time() + delay >= end:
                    raise XmppConnectionError(
                        f"{self.bare}: cannot connect to the XMPP server {self.address}: {exc}"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _attempt_session(self, timeout: float) -> None:
        client = self._client
        assert client is not None and self._loop is not None
        attempt = self._attempt = self._loop.create_future()
        self._last_error = ""
        if self._address is not None:
            client.connect(*self._address)
        else:
            client.connect()
        try:
            await asyncio.wait_for(asyncio.shield(attempt), timeout)
        except TimeoutError:
            self._attempt = None
            client.cancel_connection_attempt()
            client.abort()
            raise XmppConnectionError(f"no session within {timeout:.1f} s") from None
        finally:
            if self._attempt is attempt:
                self._attempt = None

    def _fail_attempt(self, exc: Exception) -> None:
        attempt = self._attempt
        if attempt is not None and not attempt.done():
            attempt.set_exception(exc)
            attempt.exception()  # retrieved: no "never retrieved" warnings if nobody awaits

    def _on_connection_failed(self, error: Any) -> None:
        if self._client is not None:
            self._client.cancel_connection_attempt()  # we retry ourselves, quickly
        self._fail_attempt(XmppConnectionError(str(error) or "connection refused"))

    def _on_auth_failed(self, _: Any) -> None:
        self._last_error = "authentication failed"
        self._fail_attempt(
            XmppAuthError(f"{self.bare}: the server rejected the credentials (or no usable SASL mechanism)")
        )

    def _on_invalid_cert(self, error: Any) -> None:
        hint = " (set ca_file to trust a self-signed certificate)" if self._ca_file is None else ""
        self._last_error = f"TLS certificate of {self.domain} not trusted: {error}{hint}"
        self._fail_attempt(XmppAuthError(self._last_error))
        if self._client is not None:
            self._client.abort()

    def _on_stream_error(self, stanza: Any) -> None:
        condition = str(stanza["condition"]) if stanza is not None else ""
        self._last_error = f"stream error {condition}"
        if condition == "conflict":
            self._conflict = True
            log.error("%s: another session logged in with the same JID; not reconnecting", self.full)

    def _on_session_start(self, _: Any) -> None:
        client = self._client
        if client is None:
            return
        if self._require_tls and not client.encrypted:
            self._fail_attempt(XmppAuthError(f"{self.domain} offers no TLS and require_tls is set"))
            client.abort()
            return
        self._session = True
        attempt = self._attempt
        if attempt is not None and not attempt.done():
            attempt.set_result(None)
        self._ping_task = self._spawn(self._keepalive())

    def _on_disconnected(self, reason: Any) -> None:
        was_up = self._session
        self._session = False
        self._online = False
        self._published_state.clear()
        self._created_nodes.clear()  # the server may have lost them: create them again (idempotent)
        if self._ping_task is not None:
            self._ping_task.cancel()
            self._ping_task = None
        why = self._last_error or (str(reason) if reason else "connection closed")
        if isinstance(reason, ssl.SSLError):
            hint = " (set ca_file to trust a self-signed certificate)" if self._ca_file is None else ""
            self._fail_attempt(XmppAuthError(f"TLS with {self.domain} failed: {reason}{hint}"))
        self._fail_attempt(XmppConnectionError(why))
        self._deferred.clear()
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._deferred_timer = None
        self._fail_pending(XmppConnectionError(f"{self.bare}: connection to the XMPP server {self.address} lost"))
        # events the server never confirmed go out again after reconnecting (receivers de-duplicate)
        if self._unacked:
            self._events.extendleft(reversed(list(self._unacked.values())))
            self._unacked.clear()
            self._trim_events()
        if not was_up or self._closing:
            return
        for timer in self._leaving.values():
            timer.cancel()
        self._leaving.clear()
        for peer in self._peers.values():
            peer.stale = True
        # peers whose session the server ended just before ours (a server shutdown) come back too
        now = time.monotonic()
        self._expected = set(self._peers) | {n for n, t in self._gone_at.items() if now - t < RECENTLY_GONE}
        if self._handler is not None:
            self._handler.connection_changed(False, why)
        if self._conflict:
            return
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = self._spawn(self._reconnect())

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
                p.future.exception()

    async def _reconnect(self) -> None:
        """Reconnect until it works (or we close); then restore presence, subscriptions and events."""
        delay = 0.0
        while not self._closing:
            if delay:
                await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.02), RECONNECT_MAX_DELAY)
            try:
                await self._attempt_session(self.connect_timeout)
            except XmppAuthError as exc:
                log.error("%s: %s", self.bare, exc)
                delay = 5.0
                continue
            except XmppConnectionError:
                continue
            break
        if self._closing:
            return
        log.info("%s: reconnected to %s", self.bare, self.address)
        try:
            if self._info is not None:
                await self._go_online()
            await self._restore_subscriptions()
        except XmppConnectionError:
            return  # lost again: _on_disconnected started the next round
        if self._handler is not None:
            self._handler.connection_changed(True)
        self._flush_events()

    async def _keepalive(self) -> None:
        while self._session:
            await asyncio.sleep(PING_INTERVAL)
            if not self._session:
                return
            try:
                await self._iq(
                    f'<iq type="get" to="{escape_attr(self.domain)}" id="', '"><ping xmlns="urn:xmpp:ping"/></iq>',
                    None, PING_TIMEOUT, "ping",
                )  # fmt: skip
            except TimeoutError:
                log.warning("%s: server did not answer a ping within %s s; reconnecting", self.bare, PING_TIMEOUT)
                if self._client is not None:
                    self._client.abort()
                return
            except RemoteError:
                continue

    async def close(self) -> None:
        self._closing = True
        client = self._client
        for task in (self._reconnect_task, self._ping_task):
            if task is not None:
                task.cancel()
        for peer in self._peers.values():
            if peer.task is not None:
                peer.task.cancel()
        for timer in self._leaving.values():
            timer.cancel()
        self._leaving.clear()
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._flush_deferred()
        if client is not None and self._session:
            client.write('<presence type="unavailable"/>')
            client.flush()
            try:
                await asyncio.wait_for(client.disconnect(wait=1.0), 2.0)
            except (TimeoutError, Exception):
                client.abort()
        elif client is not None:
            client.cancel_connection_attempt()
            client.abort()
        self._session = False
        await self._dispose_client()
        self._fail_pending(XmppConnectionError(f"{self.bare}: closed"))
        if self._events:
            log.warning("%s: %d queued events not sent before closing", self.bare, len(self._events))
            self._events.clear()
        for task in list(self._tasks):
            task.cancel()
        self._peers.clear()
        self._direct.clear()
        self._direct_targets = {}
        self._state_subs.clear()
        self._expected.clear()
        self._info = None

    # ================================================================== sending

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s: background task failed: %s", self.bare, exc, exc_info=exc)

    def _write(self, data: str) -> None:
        client = self._client
        if client is None or not client.write(data):
            raise XmppConnectionError(f"{self.bare}: not connected to the XMPP server {self.address}")

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    async def _iq(
        self, head: str, body: str, expect_from: str | None, timeout: float | None = None, what: str = ""
    ) -> Element:
        """Send ``head + id + body`` and wait (at most ``timeout`` s) for the result; IqError on an error."""
        assert self._loop is not None
        iq_id = self._next_id()
        fut: asyncio.Future[Element] = self._loop.create_future()
        self._pending[iq_id] = _Pending(fut, expect_from)
        try:
            self._write(head + iq_id + body)
            if timeout is None:
                reply = await fut
            else:
                reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(iq_id, None)
        if reply.get("type") == "error":
            cond, text = rpc.error_condition(reply)
            raise IqError(cond, text, what)
        return reply

    # ================================================================== receiving (raw)

    def _on_iq(self, xml: Element) -> bool:
        typ = xml.get("type")
        iq_id = xml.get("id", "")
        if typ == "result" or typ == "error":
            pending = self._pending.get(iq_id)
            if pending is None:
                return iq_id.startswith(self._id_prefix)  # a late answer to something finished: drop
            frm = xml.get("from")
            if pending.expect_from is not None and frm is not None and frm != pending.expect_from:
                log.warning(
                    "%s: ignored an answer to %s from %s (expected %s)", self.bare, iq_id, frm, pending.expect_from
                )
                return True
            if pending.extend is not None and typ == "result":
                query = xml.find(rpc.Q_QUERY)
                if query is not None:
                    t = query.find(rpc.Q_TIMEOUT)
                    if t is not None:
                        self._extend(pending, t, frm)
                        return True
            del self._pending[iq_id]
            if not pending.future.done():
                pending.future.set_result(xml)
            return True
        if typ == "set":
            query = xml.find(rpc.Q_QUERY)
            if query is not None:
                self._on_call(xml, query)
                return True
            sub = xml.find(Q_DIRECT_SUBSCRIBE)
            if sub is not None:
                self._on_direct_subscribe(xml, sub)
                return True
            return False
        if typ == "get":
            query = xml.find(discovery.Q_QUERY)
            if query is not None:
                self._on_disco(xml, query)
                return True
            if xml.find(Q_PING) is not None:
                self._reply_empty(xml)
                return True
        return False

    def _extend(self, pending: _Pending, el: Element, frm: str | None) -> None:
        text = "".join(el.itertext()).strip()
        try:
            seconds = float(text)
        except ValueError:
            log.warning("%s: ignored a methodTimeout without a number from %s: %r", self.bare, frm, text[:40])
            return
        if pending.extend is not None and seconds >= 0:
            pending.extend(seconds)

    def _reply_empty(self, xml: Element) -> None:
        with contextlib.suppress(XmppConnectionError):
            to, iq_id = escape_attr(xml.get("from", self.domain)), escape_attr(xml.get("id", ""))
            self._write(f'<iq type="result" to="{to}" id="{iq_id}"/>')

    def _on_message(self, xml: Element) -> bool:
        if xml.get("from") != self.pubsub:
            return self._on_direct_event(xml)
        handler = self._handler
        if handler is None:
            return True
        try:
            for note in pubsub.notifications(xml):
                if note.kind == "event":
                    self._on_event(note)
                else:
                    self._on_state(note)
        except Exception:
            log.exception("%s: failed to handle a pubsub notification", self.bare)
        return True

    def _on_direct_event(self, xml: Element) -> bool:
        """An event a peer sent us directly (we asked it to, see _sync_event_subscriptions)."""
        if xml.find(pubsub.Q_EVENT) is None or self._handler is None:
            return False
        frm = xml.get("from", "")
        if xml.get("type") == "error":  # our event bounced: that peer is gone
            name = frm.partition("@")[0]
            entry = self._direct.get(name)
            if entry is not None and entry[0] == frm:
                del self._direct[name]
                self._rebuild_direct()
            return True
        bare, _, resource = frm.partition("/")
        local, _, domain = bare.partition("@")
        if domain != self.domain or resource != self.resource:
            return False
        try:
            for note in pubsub.notifications(xml):
                if note.kind != "event" or note.module != local:
                    # the server vouches for the sender: nobody sends events in another's name
                    log.warning("%s: dropped an event for %s's node sent by %s", self.bare, note.module, frm)
                    continue
                self._on_event(note)
        except Exception:
            log.exception("%s: failed to handle an event from %s", self.bare, frm)
        return True

    def _on_direct_subscribe(self, xml: Element, el: Element) -> None:
        """A peer asks for our events of the listed types as messages (replaces its earlier list)."""
        frm = xml.get("from", "")
        to, iq_id = escape_attr(frm), escape_attr(xml.get("id", ""))
        bare, _, resource = frm.partition("/")
        local, _, domain = bare.partition("@")
        if not local or domain != self.domain or resource != self.resource:
            with contextlib.suppress(XmppConnectionError):
                self._write(rpc.iq_error(to, iq_id, "not-allowed", "cancel", 405, "not a module of this fleet"))
            return
        events = frozenset(el.get("events", "").split())
        if events:
            self._direct[local] = (frm, events)
        else:
            self._direct.pop(local, None)
        self._rebuild_direct()
        with contextlib.suppress(XmppConnectionError):
            self._write(f'<iq type="result" to="{to}" id="{iq_id}"/>')

    def _rebuild_direct(self) -> None:
        targets: dict[str, list[str]] = {}
        for jid, events in self._direct.values():
            prefix = f'<message to="{escape_attr(jid)}'
            for name in events:
                targets.setdefault(name, []).append(prefix)
        self._direct_targets = targets

    def _on_event(self, note: pubsub.Notification) -> None:
        if note.payload.tag != pubsub.Q_EVENT_PAYLOAD:
            log.warning("%s: event from %s without a pyobs:event payload, dropped", self.bare, note.module)
            return
        try:
            data = json.loads(note.payload.text or "")
            event = Event.from_dict(data)
        except ValueError as exc:
            log.warning("%s: dropped an undecodable %s from %s: %s", self.bare, note.name, note.module, exc)
            return
        except RecursionError:
            log.warning("%s: dropped a %s from %s nested too deeply", self.bare, note.name, note.module)
            return
        if event.type != note.name:
            log.warning(
                "%s: dropped a %s published on the %s node of %s", self.bare, event.type, note.name, note.module
            )
            return
        assert self._handler is not None
        self._handler.event_received(note.module, event)

    def _on_state(self, note: pubsub.Notification) -> None:
        try:
            value = decode_fields(note.payload)
        except (DecodeError, RecursionError) as exc:
            log.warning("%s: dropped undecodable state %s of %s: %s", self.bare, note.name, note.module, exc)
            return
        assert self._handler is not None
        self._handler.state_received(note.module, note.name, value)

    # ================================================================== calls: callee

    def _on_call(self, xml: Element, query: Element) -> None:
        frm = xml.get("from", "")
        to = escape_attr(frm)
        iq_id = escape_attr(xml.get("id", ""))
        method = rpc.peek_method(query)
        handler = self._handler
        sender = frm.partition("@")[0] if "@" in frm else frm
        if not method:
            log.warning("%s: rejected a call from %s without a method name", self.bare, frm)
            self._send_reply(rpc.fault(to, iq_id, describe(ValueError("call without <methodName>"))))
            return
        if handler is None or handler.method(method) is None:
            log.warning("%s: %s called unknown method %r", self.bare, sender, method[:100])
            self._send_reply(
                rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, f"no method {method[:100]}", query)
            )
            return
        self._spawn(self._serve(handler, sender, to, iq_id, query, method))

    async def _serve(
        self, handler: TransportHandler, sender: str, to: str, iq_id: str, query: Element, method: str
    ) -> None:
        try:
            name, args = rpc.parse_call(query)
        except (rpc.RpcFormatError, DecodeError) as exc:
            log.warning("%s: rejected a garbled call of %s() from %s: %s", self.bare, method, sender, exc)
            self._send_reply(rpc.fault(to, iq_id, describe(ValueError(str(exc)))))
            return

        def announce(seconds: float) -> None:
            self._send_reply(rpc.method_timeout(to, iq_id, seconds))

        try:
            result = await handler.handle_call(sender, name, args, announce)
            reply = rpc.result(to, iq_id, result)
        except UnknownMethodError as exc:
            reply = rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, str(exc), query)
        except EncodeError as exc:
            log.error("%s: cannot send the result of %s(): %s", self.bare, name, exc)
            reply = rpc.fault(to, iq_id, describe(TypeError(f"{name}() returned a value that cannot be sent: {exc}")))
        except Exception as exc:
            if isinstance(exc, TypeError):
                log.warning("%s: rejected a call of %s() from %s: %s", self.bare, name, sender, exc)
            else:
                log.info("%s: %s() called by %s raised %s: %s", self.bare, name, sender, type(exc).__name__, exc)
            reply = rpc.fault(to, iq_id, describe(exc))
        self._send_reply(reply)

    def _send_reply(self, text: str) -> None:
        try:
            self._write(text)
        except XmppConnectionError:
            log.warning("%s: could not answer a call: not connected", self.bare)

    # ================================================================== calls: caller

    def _peer_jid(self, peer: str) -> str:
        state = self._peers.get(peer)
        return state.jid if state is not None else f"{peer}@{self.domain}/{self.resource}"

    async def call(self, peer: str, method: MethodSpec, args: list[Any], extend: Extend) -> Any:
        jid = self._peer_jid(peer)
        prefix = self._call_prefix.get(jid)
        if prefix is None:
            prefix = self._call_prefix[jid] = rpc.call_prefix(jid)
        name = method.name
        body = self._call_body.get(name)
        if body is None:
            body = self._call_body[name] = rpc.call_body(name)
        try:
            params = rpc.encode_params(args)
        except EncodeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        assert self._loop is not None
        iq_id = self._next_id()
        fut: asyncio.Future[Element] = self._loop.create_future()
        self._pending[iq_id] = _Pending(fut, jid, extend)
        try:
            self._write(prefix + iq_id + body + params + rpc.CALL_END)
            reply = await fut
        except XmppConnectionError as exc:
            raise XmppConnectionError(f"call {peer}.{name}() failed: {exc}") from None
        finally:
            self._pending.pop(iq_id, None)
        if reply.get("type") == "error":
            cond, text = rpc.error_condition(reply)
            if cond == "item-not-found":
                raise UnknownMethodError(f"module '{peer}' has no method '{name}'")
            if cond == "forbidden":
                raise ForbiddenError(f"call {peer}.{name}() forbidden{f': {text}' if text else ''}")
            if cond in ("service-unavailable", "recipient-unavailable", "remote-server-not-found"):
                raise RemoteError(f"cannot call {peer}.{name}(): module '{peer}' is offline")
            raise RemoteError(f"could not call {peer}.{name}(): {cond}{f' ({text})' if text else ''}")
        try:
            answer = rpc.parse_reply(reply)
        except (rpc.RpcFormatError, DecodeError, RecursionError) as exc:
            raise RemoteError(f"{peer}.{name}() sent an invalid reply: {exc}") from None
        if answer.fault is not None:
            raise rebuild(answer.fault, f"{peer}.{name}()")
        return answer.value

    # ================================================================== announce / discovery

    async def announce(self, info: Announcement) -> None:
        self._info = info
        self._own_state.update(info.state)
        self._rebuild_disco()
        if not self._session:
            return  # done when the connection is back
        if self._online:
            await self._create_event_nodes()
            self._send_presence()
            peers = [p for p in self._peers.values() if p.info is not None]
            await asyncio.gather(self._sync_all_event_subscriptions(), self._push_subscriptions(peers))
            return
        await self._go_online()

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        if self._info is None:
            return
        self._info.sends = set(sends)
        self._info.receives = set(receives)
        await self.announce(self._info)

    def _rebuild_disco(self) -> None:
        info = self._info
        assert info is not None
        caps: dict[str, Any] = dict(info.capabilities)
        if info.is_module and not isinstance(caps.get("IModule"), ModuleCapabilities):
            caps["IModule"] = ModuleCapabilities(label=info.label or self.name, version=self.version)
        try:
            self._disco_body = discovery.info_body(info, caps)
        except EncodeError as exc:
            raise ValueError(f"{self.name}: cannot announce capabilities: {exc}") from None
        digest = hashlib.sha1(self._disco_body.encode()).digest()
        self._caps_ver = base64.b64encode(digest).decode()

    async def set_module_state(self, state: str, message: str = "") -> None:
        """The module's lifecycle state, shown in presence (spec §3.2): ``ready`` available,
        ``error`` ``<show>dnd</show>`` with the message as status, ``local`` ``<show>away</show>``;
        kept for every later presence (re-announces, reconnects)."""
        show = {"error": "dnd", "local": "away"}.get(str(state), "")
        status = message if show == "dnd" else ""
        if (show, status) == self._show:
            return
        self._show = (show, status)
        if self._online:
            self._send_presence()

    def _send_presence(self) -> None:
        show, status = self._show
        extra = f"<show>{show}</show>" if show else ""
        if status:
            extra += f"<status>{escape(INVALID_XML.sub('', status))}</status>"
        caps = f'<c xmlns="{CAPS_NS}" hash="sha-1" node="urn:pyobs" ver="{self._caps_ver}"/>'
        self._write(f"<presence>{extra}{caps}</presence>")

    async def _go_online(self) -> None:
        """Event nodes and initial state first, then presence; returns when the peers already
        online are discovered (bounded)."""
        assert self._info is not None
        await self._create_event_nodes()
        states = [(i, s) for i, s in self._own_state.items() if self._published_state.get(i) is not s]
        results = await asyncio.gather(*(self._publish_state(i, s) for i, s in states), return_exceptions=True)
        for (iface, _), res in zip(states, results, strict=True):
            if isinstance(res, XmppConnectionError):
                raise res
            if isinstance(res, BaseException):
                log.warning("%s: publishing the initial state of %s failed: %s", self.bare, iface, res)
        self._send_presence()
        self._online = True
        # the server answers this ping only after it delivered the presence of everyone online
        with contextlib.suppress(TimeoutError, IqError):
            await self._iq(
                f'<iq type="get" to="{escape_attr(self.domain)}" id="', '"><ping xmlns="urn:xmpp:ping"/></iq>',
                None, self.timeout, "ping",
            )  # fmt: skip
        if self._expected:
            await self._wait_for_returning_peers()
        waits = [p.discovered.wait() for p in self._peers.values() if not p.discovered.is_set()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), min(self.timeout, DISCOVERY_WAIT))

    async def _wait_for_returning_peers(self) -> None:
        """After a reconnect: give the peers we knew a moment to come back (they reconnect too when
        the server restarted), so queued events reach them; the others are gone."""
        loop = asyncio.get_running_loop()
        end = loop.time() + min(self.timeout, RESTORE_GRACE)
        while self._expected:
            remaining = end - loop.time()
            if remaining <= 0:
                break
            self._peer_returned.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._peer_returned.wait(), remaining)
        self._expected.clear()
        for name in [n for n, p in self._peers.items() if p.stale]:
            self._peer_gone(name)  # not online any more after our reconnect

    async def _create_event_nodes(self) -> None:
        assert self._info is not None
        nodes = []
        for name in sorted(self._info.sends):
            node = pubsub.event_node(self.name, name, _event_version(name))
            if node not in self._created_nodes:
                nodes.append(node)
        if nodes:
            await asyncio.gather(*(self._create_node(n) for n in nodes))

    async def _create_node(self, node: str) -> None:
        try:
            await self._iq(self._pubsub_head, pubsub.create_body(node, transient=True), self.pubsub, self.timeout, node)
        except IqError as exc:
            if exc.condition == "conflict":
                self._created_nodes.add(node)
                return
            if exc.condition in ("not-acceptable", "bad-request", "feature-not-implemented", "not-allowed"):
                # the server does not take our node configuration: create it with its defaults
                try:
                    await self._iq(
                        self._pubsub_head, pubsub.create_body(node, transient=False), self.pubsub, self.timeout
                    )
                except IqError as exc2:
                    if exc2.condition != "conflict":
                        log.warning("%s: cannot create event node %s: %s", self.bare, node, exc2)
                        return
                self._created_nodes.add(node)
                return
            log.warning("%s: cannot create event node %s: %s", self.bare, node, exc)
            return
        except TimeoutError:
            log.warning("%s: creating event node %s timed out", self.bare, node)
            return
        self._created_nodes.add(node)

    def _on_disco(self, xml: Element, query: Element) -> None:
        to = escape_attr(xml.get("from", ""))
        iq_id = escape_attr(xml.get("id", ""))
        with contextlib.suppress(XmppConnectionError):
            self._write(discovery.info_result(to, iq_id, self._disco_body, query.get("node")))

    def _on_presence(self, xml: Element) -> bool:
        typ = xml.get("type")
        if typ is not None and typ != "unavailable":
            return False  # subscription handling etc.: slixmpp
        frm = xml.get("from", "")
        bare, _, resource = frm.partition("/")
        local, _, domain = bare.partition("@")
        if not local or domain != self.domain or resource != self.resource or bare == self.bare:
            return True
        if typ is None:
            c = xml.find(f"{{{CAPS_NS}}}c")
            self._peer_available(local, frm, c.get("ver") if c is not None else None)
        elif local not in self._peers:
            if self._direct.pop(local, None) is not None:
                self._rebuild_direct()
        elif local not in self._leaving and self._loop is not None:
            # confirmed a moment later: when the server shuts down it ends the other sessions
            # just before ours, and those peers are not gone, the server is
            self._leaving[local] = self._loop.call_later(OFFLINE_DEBOUNCE, self._peer_left, local)
        return True

    def _peer_left(self, name: str) -> None:
        self._leaving.pop(name, None)
        self._peer_gone(name)

    def _peer_available(self, name: str, jid: str, caps: str | None) -> None:
        leaving = self._leaving.pop(name, None)
        if leaving is not None:  # it left and came back at once: read its disco#info again
            leaving.cancel()
            peer = self._peers.get(name)
            if peer is not None:
                peer.caps = "\x00"  # read its disco#info again
        if name in self._expected:
            self._expected.discard(name)
            self._peer_returned.set()
        peer = self._peers.get(name)
        if peer is not None and not peer.stale and peer.caps == caps and peer.jid == jid:
            return  # a presence update (show/status) only
        if peer is None:
            peer = self._peers[name] = _PeerState(name, jid, caps)
        else:  # back after our reconnect, or it changed what it offers: read its disco#info again
            peer.caps = caps
            peer.jid = jid
            if peer.task is not None and not peer.task.done():
                peer.task.cancel()
            peer.discovered = asyncio.Event()
            if peer.stale:
                peer.stale = False
                peer.events.clear()  # subscribe again (idempotent on the server)
        peer.task = self._spawn(self._discover(peer, peer.discovered))

    def _peer_gone(self, name: str) -> None:
        peer = self._peers.pop(name, None)
        if peer is None:
            return
        self._gone_at[name] = time.monotonic()
        if len(self._gone_at) > 4 * len(self._peers) + 100:
            cutoff = time.monotonic() - RECENTLY_GONE
            self._gone_at = {n: t for n, t in self._gone_at.items() if t > cutoff}
        if peer.task is not None and not peer.task.done():
            peer.task.cancel()
        peer.discovered.set()
        self._state_subs = {k for k in self._state_subs if k[0] != name}
        if self._direct.pop(name, None) is not None:
            self._rebuild_direct()
        if peer.reported and self._handler is not None:
            self._handler.peer_offline(name)

    async def _discover(self, peer: _PeerState, done: asyncio.Event) -> None:
        """Read a peer's disco#info, subscribe to its events, report it; ``done`` is set at the end
        (this discovery's own event: a newer discovery of the same peer has its own)."""
        try:
            info = await self._query_info(peer)
            if info is None and self._peers.get(peer.name) is peer:
                peer.caps = "\x00"  # matches no presence: its next one tries again
            if info is None or self._peers.get(peer.name) is not peer:
                return
            peer.info = info
            await asyncio.gather(self._sync_event_subscriptions(peer), self._push_subscriptions([peer]))
            if self._peers.get(peer.name) is not peer or self._handler is None:
                return
            sends = {name for name, _ in info.sends}
            peer.reported = True
            self._handler.peer_online(peer.name, list(info.interfaces), sends, info.label)
        finally:
            done.set()

    async def _query_info(self, peer: _PeerState) -> discovery.PeerInfo | None:
        delay = 0.1
        for attempt in range(5):
            try:
                reply = await self._disco_iq(peer.jid)
                return discovery.parse_info(reply)
            except IqError as exc:
                log.info("%s: %s answered disco#info with %s", self.bare, peer.name, exc.condition)
                return None
            except TimeoutError:
                log.warning("%s: %s did not answer disco#info (attempt %d)", self.bare, peer.name, attempt + 1)
            except XmppConnectionError:
                return None
            await asyncio.sleep(delay)
            delay *= 2
        return None

    async def _disco_iq(self, jid: str) -> Element:
        return await self._iq(
            f'<iq type="get" to="{escape_attr(jid)}" id="',
            f'"><query xmlns="{discovery.NS}"/></iq>',
            jid, self.timeout, "disco#info",
        )  # fmt: skip

    async def resolve(self, peer: str) -> bool:
        state = self._peers.get(peer)
        if state is None:
            return False
        if not state.discovered.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.discovered.wait(), min(self.timeout, 5.0))
        return state.reported and self._peers.get(peer) is state

    # ================================================================== events

    def _wanted_events(self, peer: _PeerState) -> set[str]:
        if self._info is None or peer.info is None:
            return set()
        receives = self._info.receives
        return {name for name, version in peer.info.sends if name in receives and _event_version(name) == version}

    async def _sync_event_subscriptions(self, peer: _PeerState) -> None:
        """Subscribe to the peer's event nodes we handle (idempotent on the server)."""
        wanted = self._wanted_events(peer)
        if self._closing or not self._session:
            return
        if peer.info is not None and peer.info.direct:
            if wanted == peer.events:
                return
            # a pyobs-comm peer: it sends us its events as messages, one hop less than pubsub
            events = escape_attr(" ".join(sorted(wanted)))
            try:
                await self._iq(
                    f'<iq type="set" to="{escape_attr(peer.jid)}" id="',
                    f'"><subscribe xmlns="{discovery.DIRECT_EVENTS}" events="{events}"/></iq>',
                    peer.jid, self.timeout, "event subscription",
                )  # fmt: skip
                peer.events = set(wanted)
                return
            except (IqError, TimeoutError) as exc:
                log.warning("%s: %s refused direct events (%s); using pubsub", self.bare, peer.name, exc)
        new = sorted(wanted - peer.events)
        if not new:
            return
        results = await asyncio.gather(*(self._subscribe_event(peer, e) for e in new), return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                log.warning("%s: event subscription at %s failed: %s", self.bare, peer.name, res)

    async def _subscribe_event(self, peer: _PeerState, event: str) -> None:
        node = pubsub.event_node(peer.name, event, _event_version(event))
        try:
            await self._iq(self._pubsub_head, pubsub.subscribe_body(node, self.bare), self.pubsub, self.timeout, node)
        except IqError as exc:
            if exc.condition != "item-not-found":
                raise
            # the node does not exist yet (a peer that creates it late): retry in the background
            self._spawn(self._subscribe_later(peer, event, node))
            return
        peer.events.add(event)

    async def _subscribe_later(self, peer: _PeerState, event: str, node: str) -> None:
        delay = 0.2
        while self._peers.get(peer.name) is peer and self._session:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self._iq(
                    self._pubsub_head, pubsub.subscribe_body(node, self.bare), self.pubsub, self.timeout, node
                )
            except IqError as exc:
                if exc.condition == "item-not-found":
                    continue
                log.warning("%s: cannot subscribe to %s: %s", self.bare, node, exc)
                return
            except TimeoutError:
                continue
            peer.events.add(event)
            return

    async def _push_subscriptions(self, peers: list[_PeerState]) -> None:
        """Subscribe peers that handle events we send to our nodes, as their owner.

        A peer subscribes itself when it discovers us (as pyobs-core does), but only a moment
        later; subscribing it ourselves before ``open()``/``register_event()`` returns means the
        very first event we send reaches it.
        """
        if self._info is None or not self._session:
            return
        sends = self._info.sends
        per_node: dict[str, list[str]] = {}
        changed = False
        for peer in peers:
            if peer.info is None:
                continue
            if peer.info.direct:  # pyobs-comm peers get our events as messages: add them at once
                wanted = {n for n, v in peer.info.receives if n in sends and _event_version(n) == v}
                old = self._direct.get(peer.name)
                have = old[1] if old is not None and old[0] == peer.jid else frozenset()
                if not wanted <= have:
                    self._direct[peer.name] = (peer.jid, have | wanted)
                    changed = True
                continue
            for name, version in peer.info.receives:
                if name in sends and _event_version(name) == version:
                    node = pubsub.event_node(self.name, name, version)
                    if node in self._created_nodes:
                        per_node.setdefault(node, []).append(peer.jid.partition("/")[0])
        if changed:
            self._rebuild_direct()
        if not per_node:
            return

        async def one(node: str, jids: list[str]) -> None:
            try:
                await self._iq(
                    self._pubsub_head, pubsub.subscribe_other_body(node, jids), self.pubsub, self.timeout, node
                )
            except IqError as exc:
                log.debug("%s: cannot subscribe %s to %s: %s", self.bare, jids, node, exc)
            except TimeoutError:
                log.warning("%s: subscribing %s to %s timed out", self.bare, jids, node)

        await asyncio.gather(*(one(n, j) for n, j in per_node.items()))

    async def _sync_all_event_subscriptions(self) -> None:
        peers = [p for p in self._peers.values() if p.info is not None]
        await asyncio.gather(*(self._sync_event_subscriptions(p) for p in peers))

    async def publish_event(self, event: Event) -> None:
        etype = type(event)
        node = pubsub.event_node(self.name, etype.__name__, etype.version)
        text = pubsub.event_json(event.to_dict())
        if self._session and self._online and not self._events:
            self._send_event(node, text)
            return
        self._events.append((node, text))
        self._trim_events()

    def _trim_events(self) -> None:
        dropped = 0
        while len(self._events) > self._event_queue_size:
            self._events.popleft()
            dropped += 1
        if dropped:
            self._dropped += dropped
            log.warning(
                "%s: not connected and the event queue is full (%d): dropped the %d oldest event(s), %d so far",
                self.bare, self._event_queue_size, dropped, self._dropped,
            )  # fmt: skip

    def _send_event(self, node: str, text: str) -> None:
        iq_id = self._next_id()
        publish = self._pubsub_head + iq_id + pubsub.publish_event_body(node, text)
        targets = self._direct_targets.get(node.split(":", 4)[3]) if self._direct_targets else None
        try:
            if targets:
                # peers that asked for it get a message each, now; the pubsub node (for everybody
                # else) a moment later, so the server routes the messages before it works on that
                middle = pubsub.direct_event_head(node) + text + pubsub.DIRECT_EVENT_TAIL
                self._write("".join([t + middle for t in targets]))
                self._deferred.append(publish)
                if self._deferred_timer is None:
                    assert self._loop is not None
                    self._deferred_timer = self._loop.call_later(PUBSUB_DELAY, self._flush_deferred)
            else:
                self._write(publish)
        except XmppConnectionError:
            self._events.append((node, text))
            self._trim_events()
            return
        assert self._loop is not None
        fut: asyncio.Future[Element] = self._loop.create_future()
        self._pending[iq_id] = _Pending(fut, self.pubsub)
        self._unacked[iq_id] = (node, text)
        fut.add_done_callback(lambda f, i=iq_id: self._event_acked(i, f))  # type: ignore[misc]
        if len(self._unacked) > self._event_queue_size:  # a server that stopped answering: stay bounded
            old_id, (old_node, _) = self._unacked.popitem(last=False)
            pending = self._pending.pop(old_id, None)
            if pending is not None:
                pending.future.cancel()
            log.warning("%s: the server did not confirm a publish to %s; not tracked any more", self.bare, old_node)

    def _flush_deferred(self) -> None:
        self._deferred_timer = None
        data, self._deferred = "".join(self._deferred), []
        if data:
            with contextlib.suppress(XmppConnectionError):  # unacknowledged: sent again on reconnect
                self._write(data)

    def _event_acked(self, iq_id: str, fut: asyncio.Future[Element]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the connection went away: _on_disconnected re-queued it
        entry = self._unacked.pop(iq_id, None)
        reply = fut.result()
        if reply.get("type") == "error" and entry is not None:
            cond, text = rpc.error_condition(reply)
            log.warning("%s: publishing to %s failed: %s %s", self.bare, entry[0], cond, text)

    def _flush_events(self) -> None:
        while self._events and self._session:
            node, text = self._events.popleft()
            self._send_event(node, text)

    # ================================================================== state

    async def publish_state(self, interface: str, state: Any) -> None:
        self._own_state[interface] = state
        if not self._session:
            return  # published when the connection is back
        await self._publish_state(interface, state)

    async def _publish_state(self, interface: str, state: Any) -> None:
        iface = interface_by_name(interface)
        version = iface.version if iface is not None else 1
        node = pubsub.state_node(self.name, interface, version)
        try:
            body = pubsub.publish_state_body(node, interface, version, state)
        except EncodeError as exc:
            raise TypeError(f"state of {interface} cannot be sent: {exc}") from None
        await self._iq(self._pubsub_head, body, self.pubsub, self.timeout, node)
        self._published_state[interface] = state

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        self._state_subs.add((peer, interface))
        return await self._subscribe_state(peer, interface)

    async def _subscribe_state(self, peer: str, interface: str) -> Any:
        iface = interface_by_name(interface)
        node = pubsub.state_node(peer, interface, iface.version if iface is not None else 1)
        try:
            await self._iq(self._pubsub_head, pubsub.subscribe_body(node, self.bare), self.pubsub, self.timeout, node)
        except IqError as exc:
            if exc.condition == "item-not-found":
                self._spawn(self._subscribe_state_later(peer, interface, node))
                return None
            raise
        reply = await self._iq(
            pubsub.iq_head(self.pubsub, "get"), pubsub.items_body(node, 1), self.pubsub, self.timeout, node
        )
        payload = pubsub.newest_item(reply)
        if payload is None:
            return None
        try:
            return decode_fields(payload)
        except (DecodeError, RecursionError) as exc:
            log.warning("%s: undecodable state %s of %s: %s", self.bare, interface, peer, exc)
            return None

    async def _subscribe_state_later(self, peer: str, interface: str, node: str) -> None:
        delay = 0.2
        while (peer, interface) in self._state_subs and self._session and peer in self._peers:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self._iq(
                    self._pubsub_head, pubsub.subscribe_body(node, self.bare), self.pubsub, self.timeout, node
                )
            except (IqError, TimeoutError):
                continue
            return

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        if (peer, interface) not in self._state_subs:
            return
        self._state_subs.discard((peer, interface))
        iface = interface_by_name(interface)
        node = pubsub.state_node(peer, interface, iface.version if iface is not None else 1)
        with contextlib.suppress(IqError, XmppConnectionError):
            await self._iq(self._pubsub_head, pubsub.unsubscribe_body(node, self.bare), self.pubsub, self.timeout, node)

    async def _restore_subscriptions(self) -> None:
        """After a reconnect: subscribe to the state we followed again and fetch its latest value."""
        subs = list(self._state_subs)

        async def one(peer: str, interface: str) -> None:
            value = await self._subscribe_state(peer, interface)
            if value is not None and self._handler is not None:
                self._handler.state_received(peer, interface, value)

        results = await asyncio.gather(*(one(p, i) for p, i in subs), return_exceptions=True)
        for (peer, iface), res in zip(subs, results, strict=True):
            if isinstance(res, XmppConnectionError):
                raise res
            if isinstance(res, BaseException):
                log.warning("%s: cannot subscribe again to state %s of %s: %s", self.bare, iface, peer, res)

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        state = self._peers.get(peer)
        if state is None:
            return None
        if not state.discovered.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.discovered.wait(), self.timeout)
        return state.info.capabilities.get(interface) if state.info is not None else None


def _event_version(name: str) -> int:
    from pyobs.events.event import event_by_name

    etype = event_by_name(name)
    return etype.version if etype is not None else 1


def _parse_server(server: str) -> tuple[str, int]:
    host, sep, port = server.rpartition(":")
    if not sep:
        return server, 5222
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"invalid server {server!r}: expected host:port") from None
    if not host or not 0 < number < 65536:
        raise ValueError(f"invalid server {server!r}: expected host:port")
    return host, number
