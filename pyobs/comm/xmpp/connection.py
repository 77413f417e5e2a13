"""Connection to the XMPP server: connect, reconnect, keepalive, close, and the raw write/IQ plumbing.

Also routes incoming IQs (answers to our IQs, calls, direct subscriptions, disco, ping) to the
other parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Awaitable
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.comm.errors import describe
from pyobs.utils.exceptions import RemoteError

from ..backoff import RECONNECT_FIRST, backoff
from ..transport import TransportHandler
from . import control, discovery, rpc
from .base import (
    CLOSE_CONFIRM_WAIT,
    CLOSE_RESERVE,
    DISCO_IN_FLIGHT,
    PUBSUB_ATTEMPTS,
    Q_DIRECT_SUBSCRIBE,
    Q_PING,
    Q_ROSTER,
    RECENTLY_GONE,
    RECONNECT_JITTER,
    RECONNECT_MAX_DELAY,
    ROSTER_NS,
    TRANSIENT_PUBSUB,
    IqError,
    XmppAuthError,
    XmppBase,
    XmppConnectionError,
    XmppNodeOwnershipError,
    _Pending,
    log,
)
from .client import Q_IQ, Client
from .values import escape_attr


class ConnectionMixin(XmppBase):
    # ================================================================== connection

    def _make_client(self) -> Client:
        client = Client(
            self.full,
            self._password,
            on_iq=self._on_iq,
            on_message=self._on_message,
            on_presence=self._on_presence,
            on_oversized=self._on_oversized,
            limits=self._stanza_limits,
            use_tls=self._use_tls,
            direct_tls=self._direct_tls,
            ca_file=self._ca_file,
            allow_plain=self._allow_plain,
            ignore_cert_errors=self._ignore_cert_errors,
        )
        # nobody gets into our roster (the fleet) by asking: subscription requests are refused
        client.auto_authorize = False
        client.auto_subscribe = False
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
        self._disco_slots = asyncio.Semaphore(DISCO_IN_FLIGHT)
        self._closing = False
        self._conflict = False
        self._client = self._make_client()
        try:
            # a refused connection fails at once; a server that does not answer gets connect_timeout
            await self._connect(self.connect_timeout, retry=False)
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
        await client.stop_send_task()

    async def _connect(self, timeout: float, retry: bool) -> None:
        """Connect and log in within ``timeout`` s (retrying refused connections if ``retry``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        pauses = backoff(RECONNECT_FIRST, RECONNECT_MAX_DELAY)
        while True:
            try:
                await self._attempt_session(max(0.05, end - loop.time()))
                return
            except XmppAuthError:
                raise
            except XmppConnectionError as exc:
                pause = next(pauses)
                if not retry or self._closing or loop.time() + pause >= end:
                    raise XmppConnectionError(
                        f"{self.bare}: cannot connect to the XMPP server {self.address}: {exc}"
                    ) from None
            await asyncio.sleep(pause)

    async def _attempt_session(self, timeout: float) -> None:
        client = self._client
        assert client is not None and self._loop is not None
        if len(self._addresses) > 1:  # a silent node must not use up the time the others have
            timeout = min(timeout, max(2.0, self.connect_timeout / len(self._addresses)))
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
            self._next_address()
            raise XmppConnectionError(f"no session within {timeout:.1f} s") from None
        except XmppAuthError:
            raise
        except XmppConnectionError:
            self._next_address()
            raise
        finally:
            if self._attempt is attempt:
                self._attempt = None
        await self._load_roster()

    async def _load_roster(self) -> None:
        """Read our roster: with no explicit ``trusted`` list, its accounts are the fleet."""
        if self._trusted_explicit is not None:
            return
        try:
            reply = await self._iq(
                '<iq type="get" id="', f'"><query xmlns="{ROSTER_NS}"/></iq>', None, self.timeout, "roster"
            )
        except (TimeoutError, RemoteError) as exc:
            if self._client is not None:
                self._client.abort()
            raise XmppConnectionError(f"cannot read the roster: {exc or 'timed out'}") from None
        query = reply.find(Q_ROSTER)
        self._roster = frozenset(_roster_items(query)) if query is not None else frozenset()
        if not self._roster:
            self._limited.warning(
                "empty-roster", "%s: our roster is empty, so no peer is trusted: put the fleet's accounts in a "
                "shared roster group on the server, or list them in the comm's 'trusted' option", self.bare,
            )  # fmt: skip

    def _on_roster_push(self, xml: Element, query: Element) -> None:
        """The server changed our roster (RFC 6120 roster push): the fleet changed."""
        roster = set(self._roster)
        for item in query:
            jid = item.get("jid", "").partition("/")[0]
            if item.get("subscription") in ("both", "to", "from"):
                roster.add(jid)
            else:
                roster.discard(jid)
        self._roster = frozenset(roster)
        self._reply_empty(xml)

    def _next_address(self) -> None:
        """After a failed attempt: the next server of the list (another node of the cluster)."""
        if len(self._addresses) > 1 and self._address is not None:
            i = self._addresses.index(self._address)
            self._address = self._addresses[(i + 1) % len(self._addresses)]

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
        if self.peer_check_interval > 0:
            self._check_task = self._spawn(self._check_peers())

    def _on_disconnected(self, reason: Any) -> None:
        was_up = self._session
        self._session = False
        self._online = False
        self._published_state.clear()
        self._created_nodes.clear()  # the server may have lost them: create them again (idempotent)
        for task in (self._ping_task, self._check_task):
            if task is not None:
                task.cancel()
        self._ping_task = self._check_task = None
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
        # events the server never confirmed stay in _unacked: written again after reconnecting
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
        # a running reconnect loop notices the drop itself (its current step fails) and starts over
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = self._spawn(self._reconnect())

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
                p.future.exception()

    async def _reconnect(self) -> None:
        """Reconnect until connected again (or closing): one loop whose every round starts from
        "no session" — connect, log in, read the roster, go online, restore the subscriptions —
        and which starts over from the top whenever any of that fails or the connection drops
        meanwhile. Only a round that ended with the session still up reports the connection back
        (``comm.connected``), so that a drop at any stage cannot leave it waiting or lying."""
        # a random start: modules that lost the server together do not all log in at once (each
        # login costs the server a SCRAM derivation, and the presences of all of them cross)
        pause = random.uniform(0.0, RECONNECT_JITTER)
        pauses = backoff(RECONNECT_FIRST, RECONNECT_MAX_DELAY)
        while not self._closing:
            if pause:
                await asyncio.sleep(pause)
            pause = next(pauses)
            if self._session:  # a half-restored session from the round before: start clean
                self._abort_session()
                continue
            try:
                await self._attempt_session(self.connect_timeout)
            except XmppAuthError as exc:
                log.error("%s: %s", self.bare, exc)
                pause = 5.0  # credentials do not fix themselves quickly
                continue
            except XmppConnectionError:
                continue
            if self._closing:
                return
            try:
                async with asyncio.timeout(max(self.connect_timeout, 3 * self.timeout)):
                    if self._info is not None:
                        await self._go_online()
                    await self._restore_subscriptions()
            except XmppNodeOwnershipError as exc:
                log.error("%s: not online again after reconnecting: %s", self.bare, exc)
                return  # an administrator must act: retrying would fail alike
            except (XmppConnectionError, TimeoutError, RemoteError) as exc:
                log.info("%s: restoring the session failed (%s); starting over", self.bare, exc or "timed out")
                continue
            if not self._session or self._closing:
                continue  # lost while restoring (a step that does not raise on it)
            log.info("%s: reconnected to %s", self.bare, self.address)
            self._resend_unacked()  # older than anything in the core's outbox: first
            if self._handler is not None:
                self._handler.connection_changed(True)
            return

    def _abort_session(self) -> None:
        """Drop the connection at once (the disconnect handler resets the session state)."""
        client = self._client
        if client is not None:
            client.abort()
        if self._session:  # no disconnect event came (no socket any more): reset by hand
            self._on_disconnected("aborted")

    async def _keepalive(self) -> None:
        while self._session:
            await asyncio.sleep(self.ping_interval)
            if not self._session:
                return
            try:
                await self._iq(
                    f'<iq type="get" to="{escape_attr(self.domain)}" id="', '"><ping xmlns="urn:xmpp:ping"/></iq>',
                    None, self.ping_timeout, "ping",
                )  # fmt: skip
            except TimeoutError:
                log.warning("%s: server did not answer a ping within %s s; reconnecting", self.bare, self.ping_timeout)
                if self._client is not None:
                    self._client.abort()
                return
            except RemoteError:
                continue

    async def close(self) -> None:
        self._closing = True
        client = self._client
        for task in (self._reconnect_task, self._ping_task, self._check_task):
            if task is not None:
                task.cancel()
        for peer in self._peers.values():
            if peer.task is not None:
                peer.task.cancel()
        for timer in self._leaving.values():
            timer.cancel()
        self._leaving.clear()
        self._flush_batch()
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._flush_deferred()
        was_up = self._session
        if client is not None and self._session and self._unacked:
            await self._await_confirmations()
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
        if self._unacked:
            log.warning(
                "%s: %d published events not confirmed by the server before closing%s; they may not have "
                "been delivered", self.bare, len(self._unacked), "" if was_up else " (not connected)",
            )  # fmt: skip
        self._unacked.clear()
        for task in list(self._tasks):
            task.cancel()
        self._peers.clear()
        self._caps_waiting.clear()
        self._direct.clear()
        self._direct_targets = {}
        self._state_subs.clear()
        self._expected.clear()
        self._info = None

    async def _await_confirmations(self) -> None:
        """Before closing: wait while the server keeps confirming the events we wrote (a shaper may
        hold a burst back), bounded by CLOSE_CONFIRM_WAIT without progress and by the comm's close
        deadline (Comm.close allows max(timeout, 5 s)) less CLOSE_RESERVE."""
        loop = asyncio.get_running_loop()
        end = loop.time() + max(self.timeout, 5.0) - CLOSE_RESERVE
        while self._unacked and self._session:
            before = len(self._unacked)
            self._acks_drained.clear()
            remaining = end - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._acks_drained.wait(), min(CLOSE_CONFIRM_WAIT, remaining))
            except TimeoutError:
                if len(self._unacked) >= before:
                    return  # no progress: the server is not reading

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

    async def _pubsub_set(self, body: str, what: str, transient: frozenset[str] = TRANSIENT_PUBSUB) -> Element:
        """A pubsub set (node creation, a first publish) retried with backoff while the answer is a
        transient condition: concurrent creations on ejabberd abort each other's transactions and are
        answered ``internal-server-error`` or ``item-not-found``. Bounded: :data:`PUBSUB_ATTEMPTS`."""
        delay = 0.02
        for attempt in range(PUBSUB_ATTEMPTS):
            try:
                return await self._iq(self._pubsub_head, body, self.pubsub, self.timeout, what)
            except IqError as exc:
                if exc.condition not in transient or attempt == PUBSUB_ATTEMPTS - 1:
                    raise
                log.debug("%s: %s answered %s; retrying in %.0f ms", self.bare, what, exc.condition, delay * 1e3)
            await asyncio.sleep(delay * (0.5 + random.random()))  # jitter: concurrent sessions spread out
            delay *= 2
        raise AssertionError("unreachable")

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
            for child in xml:  # the call envelope is the only child of a call
                if child.tag == rpc.Q_COMPACT_CALL or child.tag == rpc.Q_QUERY:
                    self._on_call(xml, child)
                    return True
                if child.tag == control.Q_CANCEL:
                    self._on_cancel(xml, child)
                    return True
            sub = xml.find(Q_DIRECT_SUBSCRIBE)
            if sub is not None:
                self._on_direct_subscribe(xml, sub)
                return True
            roster = xml.find(Q_ROSTER)
            if roster is not None:
                frm = xml.get("from")
                if frm is None or frm == self.bare:  # only the server pushes our roster
                    self._on_roster_push(xml, roster)
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

    def _reply_empty(self, xml: Element) -> None:
        with contextlib.suppress(XmppConnectionError):
            to, iq_id = escape_attr(xml.get("from", self.domain)), escape_attr(xml.get("id", ""))
            self._write(f'<iq type="result" to="{to}" id="{iq_id}"/>')

    def _on_oversized(self, xml: Element, problem: str) -> None:
        """A stanza beyond the limits (see :mod:`.limits`): an error answer where one is due,
        else dropped; one rate-limited log line either way. Nothing recursive ever sees it."""
        frm = xml.get("from", "")
        typ = xml.get("type")
        self._limited.warning("oversized", "%s: refused a stanza from %s: %s", self.bare, frm or "the server", problem)
        if xml.tag != Q_IQ:
            return
        iq_id = xml.get("id", "")
        if typ in ("get", "set"):
            to, iq_id = escape_attr(frm), escape_attr(iq_id)
            first = xml[0].tag if len(xml) else ""
            if typ == "set" and first in (rpc.Q_QUERY, rpc.Q_COMPACT_CALL):
                reply = rpc.fault(to, iq_id, describe(ValueError(f"call refused: the stanza is {problem}")))
            else:
                reply = rpc.iq_error(to, iq_id, "policy-violation", "modify", 400, f"stanza {problem}")
            with contextlib.suppress(XmppConnectionError):
                self._write(reply)
            return
        pending = self._pending.get(iq_id)
        if pending is not None and (pending.expect_from is None or frm == pending.expect_from):
            del self._pending[iq_id]
            if not pending.future.done():
                pending.future.set_exception(RemoteError(f"the answer from {frm or 'the server'} is {problem}"))
                pending.future.exception()


def _roster_items(query: Element) -> list[str]:
    """Bare JIDs of the roster items with a subscription (``none``: a pending request, not the fleet)."""
    return [
        item.get("jid", "").partition("/")[0]
        for item in query
        if item.get("subscription") in ("both", "to", "from") and item.get("jid")
    ]
