"""Events: publishing (pubsub and direct messages; unconfirmed publishes written again after a reconnect)
and receiving them. Events that cannot be sent wait in the core's outbox (pyobs/comm/outbox.py), not here.

Covers the subscriptions to peers' event nodes and the direct-event subscriptions peers make at us.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from xml.etree.ElementTree import Element

from pyobs.events.event import Event

from ..backoff import RETRY_CAP, RETRY_FIRST, backoff
from . import control, discovery, pubsub, rpc
from .base import (
    DIRECT_BATCH_BYTES,
    DIRECT_RETRIES,
    PUBSUB_DELAY,
    IqError,
    XmppBase,
    XmppConnectionError,
    _event_version,
    _PeerState,
    _Pending,
    log,
    too_large,
)
from .values import escape_attr


class EventsMixin(XmppBase):
    def _on_message(self, xml: Element) -> bool:
        if xml.get("from") != self.pubsub:
            for child in xml:
                if child.tag == control.Q_PROGRESS:
                    self._on_progress(xml, child)
                    return True
            return self._on_direct_event(xml)
        handler = self._handler
        if handler is None:
            return True
        try:
            for note in pubsub.notifications(xml):
                if not self._published_by_owner(note.module, note.name, note.publisher):
                    continue
                if note.kind == "event":
                    self._on_event(note)
                else:
                    self._on_state(note)
        except Exception:
            log.exception("%s: failed to handle a pubsub notification", self.bare)
        return True

    def _published_by_owner(self, module: str, what: str, publisher: str | None) -> bool:
        """Whether an item on ``module``'s node may be believed: the module is in the fleet, and
        the server, where it names the publisher, names that module (pubsub admins — every module
        on prosody — could publish on any node)."""
        owner = f"{module}@{self.domain}"
        if not self._trusted(owner):
            self._limited.warning("untrusted-node", "%s: dropped %s from %s: not in the fleet", self.bare, what, owner)
            return False
        if publisher is not None and publisher.partition("/")[0] != owner:
            self._limited.warning(
                "spoofed-item", "%s: dropped %s on %s's node published by %s", self.bare, what, module, publisher
            )
            return False
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
        if domain != self.domain or resource != self.resource or not self._trusted(bare):
            self._limited.warning(
                "untrusted-event", "%s: dropped an event sent by %s: not in the fleet", self.bare, frm
            )
            return True
        try:
            for note in pubsub.notifications(xml):
                if note.kind != "event" or note.module != local:
                    # the server vouches for the sender: nobody sends events in another's name
                    self._limited.warning(
                        "spoofed-event", "%s: dropped an event for %s's node sent by %s", self.bare, note.module, frm
                    )
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
        if not local or domain != self.domain or resource != self.resource or not self._trusted(bare):
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
        """The direct targets changed: rebuilt when the next event goes out (a fleet starting
        changes them once per peer; rebuilding each time would cost O(N²))."""
        self._direct_targets = None

    def _build_direct(self) -> dict[str, list[str]]:
        targets: dict[str, list[str]] = {}
        for jid, events in self._direct.values():
            prefix = f'<message to="{escape_attr(jid)}'
            for name in events:
                targets.setdefault(name, []).append(prefix)
        self._direct_targets = targets
        return targets

    def _on_event(self, note: pubsub.Notification) -> None:
        if note.payload.tag != pubsub.Q_EVENT_PAYLOAD:
            self._limited.warning(
                "bad-event", "%s: event from %s without a pyobs:event payload, dropped", self.bare, note.module
            )
            return
        try:
            data = json.loads(note.payload.text or "")
            event = Event.from_dict(data)
        except ValueError as exc:
            self._limited.warning(
                "bad-event", "%s: dropped an undecodable %s from %s: %s", self.bare, note.name, note.module, exc
            )
            return
        except RecursionError:
            self._limited.warning(
                "bad-event", "%s: dropped a %s from %s nested too deeply", self.bare, note.name, note.module
            )
            return
        if event.type != note.name:
            self._limited.warning(
                "bad-event",
                "%s: dropped a %s published on the %s node of %s", self.bare, event.type, note.name, note.module
            )
            return
        assert self._handler is not None
        self._handler.event_received(note.module, event)

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
            except TimeoutError:
                # a busy peer (a fleet starting or a server restart): ask again later; meanwhile
                # its own push (it knows what we handle from our disco#info) usually serves us
                if peer.retry is None or peer.retry.done():
                    log.warning(
                        "%s: %s did not answer the direct-event subscription within %.0f s (timeout); retrying",
                        self.bare, peer.name, self.timeout,
                    )  # fmt: skip
                    peer.retry = self._spawn(self._retry_direct(peer))
                return
            except IqError as exc:
                log.warning("%s: %s refused direct events (%s); using pubsub", self.bare, peer.name, exc)
        new = sorted(wanted - peer.events)
        if not new:
            return
        results = await asyncio.gather(*(self._subscribe_event(peer, e) for e in new), return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                log.warning("%s: event subscription at %s failed: %s", self.bare, peer.name, res)

    async def _retry_direct(self, peer: _PeerState) -> None:
        """Ask a peer whose direct-event subscription timed out again, a few times with growing,
        jittered pauses; then pubsub (as for a peer that refuses)."""
        # 0.25-0.75 s, then doubling: as jittered as the peers that retry with us
        for pause in backoff(0.75, RETRY_CAP, jitter=2 / 3, attempts=DIRECT_RETRIES):
            await asyncio.sleep(pause)
            if self._peers.get(peer.name) is not peer or self._closing:
                return
            if not self._session or peer.info is None:
                continue
            wanted = self._wanted_events(peer)
            if wanted == peer.events:
                return
            events = escape_attr(" ".join(sorted(wanted)))
            try:
                await self._iq(
                    f'<iq type="set" to="{escape_attr(peer.jid)}" id="',
                    f'"><subscribe xmlns="{discovery.DIRECT_EVENTS}" events="{events}"/></iq>',
                    peer.jid, self.timeout, "event subscription",
                )  # fmt: skip
            except (TimeoutError, XmppConnectionError):
                continue
            except IqError as exc:
                log.warning("%s: %s refused direct events (%s); using pubsub", self.bare, peer.name, exc)
                break
            else:
                peer.events = set(wanted)
                log.info("%s: direct events from %s after a retry", self.bare, peer.name)
                return
        else:
            log.warning("%s: %s never answered the direct-event subscription; using pubsub", self.bare, peer.name)
        if self._peers.get(peer.name) is not peer or not self._session:
            return
        new = sorted(self._wanted_events(peer) - peer.events)
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
        pauses = backoff(RETRY_FIRST, RETRY_CAP)
        while self._peers.get(peer.name) is peer and self._session:
            await asyncio.sleep(next(pauses))
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
                changed = self._push_direct(peer) or changed
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

    def _push_direct(self, peer: _PeerState) -> bool:
        """Add a pyobs-comm peer to the targets of the events it handles and we send (no stanza:
        it learns nothing new, we read what it handles from its disco#info); True if changed."""
        if self._info is None or peer.info is None:
            return False
        sends = self._info.sends
        wanted = {n for n, v in peer.info.receives if n in sends and _event_version(n) == v}
        old = self._direct.get(peer.name)
        have = old[1] if old is not None and old[0] == peer.jid else frozenset()
        if wanted <= have:
            return False
        self._direct[peer.name] = (peer.jid, have | wanted)
        return True

    async def _sync_all_event_subscriptions(self) -> None:
        peers = [p for p in self._peers.values() if p.info is not None]
        await asyncio.gather(*(self._sync_event_subscriptions(p) for p in peers))

    async def publish_event(self, event: Event) -> None:
        if not (self._session and self._online):
            raise XmppConnectionError(f"{self.bare}: not connected to the XMPP server")
        etype = type(event)
        node = pubsub.event_node(self.name, etype.__name__, etype.version)
        text = pubsub.event_json(event.to_dict())
        if self.max_stanza_size:
            size = too_large(text, self.max_stanza_size - 400)  # the publish around it: < 400 bytes
            if size:
                raise ValueError(
                    f"{etype.__name__} is {size} bytes, more than max_stanza_size ({self.max_stanza_size}) of the "
                    f"XMPP server"
                )
        self._send_event(node, text)

    def _send_event(self, node: str, text: str) -> None:
        """Write one event (raises XmppConnectionError if the connection is gone: nothing written)."""
        iq_id = self._next_id()
        publish = self._pubsub_head + iq_id + pubsub.publish_event_body(node, text)
        direct = self._direct_targets
        if direct is None:
            direct = self._build_direct()
        targets = direct.get(node.split(":", 4)[3]) if direct else None
        if targets:
            # peers that asked for it get a message each, now; the pubsub node (for everybody
            # else) a moment later, so the server routes the messages before it works on that
            if self._batch is None:
                middle = pubsub.direct_event_head(node) + text + pubsub.DIRECT_EVENT_TAIL
                self._write("".join([t + middle for t in targets]))
                assert self._loop is not None
                self._batch = {}
                self._loop.call_soon(self._flush_batch)
            else:
                # more events in the same loop iteration (an outbox flushed after a reconnect, a
                # burst): one message per peer carries them all, not one per event and peer
                if not self._session:
                    raise XmppConnectionError(f"{self.bare}: not connected to the XMPP server")
                items = pubsub.direct_event_items(node, text)
                limit = DIRECT_BATCH_BYTES
                if self.max_stanza_size:
                    limit = min(limit, self.max_stanza_size // 2)
                for t in targets:
                    batch = self._batch.setdefault(t, [])
                    batch.append(items)
                    size = self._batch_bytes.get(t, 0) + len(items)
                    if size >= limit:
                        # bounded messages: servers limit stanza sizes (docs/xmpp.md's ejabberd: 16 KB)
                        self._write(t + pubsub.DIRECT_BATCH_HEAD + "".join(batch) + pubsub.DIRECT_BATCH_TAIL)
                        del self._batch[t]
                        size = 0
                    self._batch_bytes[t] = size
            self._deferred.append(publish)
            if self._deferred_timer is None:
                assert self._loop is not None
                self._deferred_timer = self._loop.call_later(PUBSUB_DELAY, self._flush_deferred)
        else:
            self._write(publish)
        assert self._loop is not None
        fut: asyncio.Future[Element] = self._loop.create_future()
        self._pending[iq_id] = _Pending(fut, self.pubsub)
        self._unacked[iq_id] = (node, text)
        fut.add_done_callback(lambda f, i=iq_id: self._event_acked(i, f))  # type: ignore[misc]
        if len(self._unacked) > self._unacked_limit:  # a server that stopped answering: stay bounded
            old_id, (old_node, _) = self._unacked.popitem(last=False)
            pending = self._pending.pop(old_id, None)
            if pending is not None:
                pending.future.cancel()
            self._limited.warning(
                "unconfirmed",
                "%s: the server did not confirm a publish to %s; not tracked any more", self.bare, old_node,
            )  # fmt: skip

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, None
        self._batch_bytes = {}
        if batch:
            head = pubsub.DIRECT_BATCH_HEAD
            data = "".join([t + head + "".join(items) + pubsub.DIRECT_BATCH_TAIL for t, items in batch.items()])
            with contextlib.suppress(XmppConnectionError):  # the pubsub copies are tracked: sent again
                self._write(data)

    def _flush_deferred(self) -> None:
        self._deferred_timer = None
        data, self._deferred = "".join(self._deferred), []
        if data:
            with contextlib.suppress(XmppConnectionError):  # unacknowledged: sent again on reconnect
                self._write(data)

    def _event_acked(self, iq_id: str, fut: asyncio.Future[Element]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the connection went away: it stays in _unacked and is written again on reconnect
        entry = self._unacked.pop(iq_id, None)
        if not self._unacked:
            self._acks_drained.set()
        reply = fut.result()
        if reply.get("type") == "error" and entry is not None:
            cond, text = rpc.error_condition(reply)
            self._limited.warning(
                "publish-failed", "%s: publishing to %s failed: %s %s", self.bare, entry[0], cond, text
            )

    def _resend_unacked(self) -> None:
        """After a reconnect, before the core flushes its outbox: write again what the server never
        confirmed (receivers drop duplicates by uuid), oldest first."""
        entries = list(self._unacked.values())
        self._unacked.clear()
        for i, (node, text) in enumerate(entries):
            try:
                self._send_event(node, text)
            except XmppConnectionError:  # lost again: keep the rest for the next reconnect
                for rest in entries[i:]:
                    self._unacked[self._next_id()] = rest
                return
