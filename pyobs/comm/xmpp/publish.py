"""Our events on their way out, from the moment the core hands one over until the server confirmed it.

An event waits in the core's outbox (:mod:`pyobs.comm.outbox`) while we cannot send; once
:meth:`EventPublisher.publish` takes it, it is written at once: as a message to each pyobs-comm
peer that asked for it, and to our pubsub node for everybody else. Owns: who takes which events as
messages, those messages (batched) and the delayed pubsub copies, our event nodes (creation, and
subscribing peers to them), and the one "written but not yet confirmed" buffer (bounded by
``event_queue_size``, written again after a reconnect before the outbox flushes, waited for by
``close()``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from xml.etree.ElementTree import Element

from pyobs.events.event import Event

from . import pubsub, rpc
from .discovery import DIRECT_EVENTS, Peer, event_version
from .exports import Exports
from .link import IqError, Link, XmppConnectionError, log, reply_address
from .nodes import Nodes
from .values import escape_attr

Q_DIRECT_SUBSCRIBE = f"{{{DIRECT_EVENTS}}}subscribe"
#: largest batch of direct events in one message (bytes): below every server's stanza limit
#: (docs/xmpp.md's ejabberd: 16 KB; ejabberd 23.01 closes the stream of a larger stanza)
DIRECT_BATCH_BYTES = 8192
#: delay of the pubsub copy of an event that went to peers directly (s): the server routes the
#: messages before it works on the publish
PUBSUB_DELAY = 0.002
#: close() waits for confirmations while they keep coming within CLOSE_CONFIRM_WAIT (a c2s shaper
#: may hold a burst back for seconds), at most the comm's close deadline (Comm.close allows
#: max(timeout, 5 s)) less CLOSE_RESERVE for logging out
CLOSE_CONFIRM_WAIT = 2.0
CLOSE_RESERVE = 3.0


class EventPublisher:
    def __init__(self, link: Link, exports: Exports, nodes: Nodes) -> None:
        self.link = link
        self.exports = exports
        self.nodes = nodes
        #: publishes written but not yet confirmed by the server (IQ id → node, JSON); bounded
        self.unacked: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._unacked_limit = link.options.event_queue_size
        #: set when the server has confirmed every event we sent
        self._acks_drained = asyncio.Event()
        #: peers that take our events as direct messages: name → (full JID, event names)
        self._direct: dict[str, tuple[str, frozenset[str]]] = {}
        #: event name → '<message to="JID' prefixes of those peers (None: to be rebuilt)
        self._targets: dict[str, list[str]] | None = {}
        #: pubsub publishes of events that went to peers directly first, and their timer
        self._deferred: list[str] = []
        self._deferred_timer: asyncio.TimerHandle | None = None
        #: direct events sent in this loop iteration after the first: per target, their <items>
        self._batch: dict[str, list[str]] | None = None
        #: bytes of events batched per peer (a batch is written when it reaches _batch_limit)
        self._batch_bytes: dict[str, int] = {}
        self._batch_limit = DIRECT_BATCH_BYTES
        if link.options.max_stanza_size:
            self._batch_limit = min(DIRECT_BATCH_BYTES, link.options.max_stanza_size // 2)

    # ------------------------------------------------------------------ who takes our events

    def on_direct_subscribe(self, xml: Element, el: Element) -> None:
        """A peer asks for our events of the listed types as messages (replaces its earlier list)."""
        link = self.link
        frm = xml.get("from", "")
        to, iq_id = reply_address(xml)
        local = link.fleet_module(frm)
        if local is None:
            link.write_or_drop(rpc.iq_error(to, iq_id, "not-allowed", "cancel", 405, "not a module of this fleet"))
            return
        events = frozenset(el.get("events", "").split())
        if events:
            self._direct[local] = (frm, events)
        else:
            self._direct.pop(local, None)
        self._targets = None
        link.reply_empty(xml)

    def bounced(self, jid: str) -> None:
        """Our direct event to ``jid`` came back as an error: that session is gone."""
        name = jid.partition("@")[0]
        entry = self._direct.get(name)
        if entry is not None and entry[0] == jid:
            self.peer_gone(name)

    def peer_gone(self, name: str) -> None:
        if self._direct.pop(name, None) is not None:
            # rebuilt when the next event goes out (a fleet starting changes the targets once per
            # peer; rebuilding each time would cost O(N²))
            self._targets = None

    def push_direct(self, peer: Peer) -> None:
        """Add a pyobs-comm peer to the targets of the events it takes (no stanza: it learns
        nothing new, we read what it handles from its disco#info)."""
        wanted = self._takes(peer)
        old = self._direct.get(peer.name)
        have = old[1] if old is not None and old[0] == peer.jid else frozenset()
        if not wanted <= have:
            self._direct[peer.name] = (peer.jid, have | wanted)
            self._targets = None

    def _takes(self, peer: Peer) -> set[str]:
        """The events we send that ``peer`` handles (same version)."""
        info = self.exports.info
        if info is None or peer.info is None:
            return set()
        return {n for n, v in peer.info.receives if n in info.sends and event_version(n) == v}

    async def create_nodes(self) -> None:
        """Our event nodes (transient; an existing one must be ours)."""
        assert self.exports.info is not None
        nodes = [pubsub.event_node(self.link.name, n, event_version(n)) for n in sorted(self.exports.info.sends)]
        await asyncio.gather(*(self.nodes.ensure(n, transient=True) for n in nodes))  # ensure skips existing ones

    async def push_subscriptions(self, peers: list[Peer]) -> None:
        """Subscribe peers that handle events we send to our nodes, as their owner.

        A peer subscribes itself when it discovers us (as pyobs-core does), but only a moment
        later; subscribing it ourselves before ``open()``/``register_event()`` returns means the
        very first event we send reaches it.
        """
        link = self.link
        if not link.session:
            return
        per_node: dict[str, list[str]] = {}
        for peer in peers:
            if peer.info is not None and peer.info.direct:  # pyobs-comm peers get our events as messages
                self.push_direct(peer)
                continue
            for name in self._takes(peer):
                node = pubsub.event_node(link.name, name, event_version(name))
                if self.nodes.exists(node):
                    per_node.setdefault(node, []).append(peer.jid.partition("/")[0])

        async def one(node: str, jids: list[str]) -> None:
            try:
                await link.pubsub_iq(pubsub.subscribe_other_body(node, jids), node, link.timeout)
            except IqError as exc:
                log.debug("%s: cannot subscribe %s to %s: %s", link.bare, jids, node, exc)
            except TimeoutError:
                log.warning("%s: subscribing %s to %s timed out", link.bare, jids, node)

        await asyncio.gather(*(one(n, j) for n, j in per_node.items()))

    # ------------------------------------------------------------------ sending

    def publish(self, event: Event) -> None:
        link = self.link
        if not (link.session and self.exports.online):
            raise XmppConnectionError(f"{link.bare}: not connected to the XMPP server")
        etype = type(event)
        node = pubsub.event_node(link.name, etype.__name__, etype.version)
        text = pubsub.event_json(event.to_dict())
        link.check_size(text, etype.__name__, 400)  # the publish around it: < 400 bytes
        self._send(node, text)

    def _send(self, node: str, text: str) -> None:
        """Write one event (raises XmppConnectionError if the connection is gone: nothing written)."""
        link = self.link
        iq_id = link.next_id()
        publish = link.pubsub_head + iq_id + pubsub.publish_event_body(node, text)
        direct = self._targets
        if direct is None:
            direct = self.targets()
        targets = direct.get(node.split(":", 4)[3]) if direct else None
        if targets:  # a message to each peer that takes it now, the pubsub copy PUBSUB_DELAY later
            self._send_direct(node, text, targets)
            self._deferred.append(publish)
            if self._deferred_timer is None:
                self._deferred_timer = link.loop.call_later(PUBSUB_DELAY, self._flush_deferred)
        else:
            link.write(publish)
        fut = link.expect(iq_id, link.pubsub)
        self.unacked[iq_id] = (node, text)
        fut.add_done_callback(lambda f, i=iq_id: self._acked(i, f))  # type: ignore[misc]
        if len(self.unacked) > self._unacked_limit:  # a server that stopped answering: stay bounded
            old_id, (old_node, _) = self.unacked.popitem(last=False)
            link.forget(old_id)
            link.limited.warning(
                "unconfirmed", "%s: the server did not confirm a publish to %s; not tracked any more", link.bare,
                old_node,
            )  # fmt: skip

    def _send_direct(self, node: str, text: str, targets: list[str]) -> None:
        link = self.link
        if self._batch is None:
            middle = pubsub.direct_event_head(node) + text + pubsub.DIRECT_EVENT_TAIL
            link.write("".join([t + middle for t in targets]))
            self._batch = {}
            link.loop.call_soon(self.flush_batch)
            return
        # more events in the same loop iteration (an outbox flushed after a reconnect, a burst):
        # one message per peer carries them all, not one per event and peer
        if not link.session:
            raise XmppConnectionError(f"{link.bare}: not connected to the XMPP server")
        items = pubsub.direct_event_items(node, text)
        for t in targets:
            batch = self._batch.setdefault(t, [])
            batch.append(items)
            size = self._batch_bytes.get(t, 0) + len(items)
            if size >= self._batch_limit:  # servers limit stanza sizes (see DIRECT_BATCH_BYTES)
                link.write(_batch_message(t, batch))
                del self._batch[t]
                size = 0
            self._batch_bytes[t] = size

    def targets(self) -> dict[str, list[str]]:
        """Event name → '<message to="JID' prefixes of the peers that take it directly."""
        if self._targets is not None:
            return self._targets
        targets: dict[str, list[str]] = {}
        for jid, events in self._direct.values():
            prefix = f'<message to="{escape_attr(jid)}'
            for name in events:
                targets.setdefault(name, []).append(prefix)
        self._targets = targets
        return targets

    def flush_batch(self) -> None:
        batch, self._batch = self._batch, None
        self._batch_bytes = {}
        if batch:
            data = "".join([_batch_message(t, items) for t, items in batch.items()])
            self.link.write_or_drop(data)  # the pubsub copies are tracked: sent again

    def _flush_deferred(self) -> None:
        self._deferred_timer = None
        data, self._deferred = "".join(self._deferred), []
        if data:
            self.link.write_or_drop(data)  # unacknowledged: sent again on reconnect

    def _acked(self, iq_id: str, fut: asyncio.Future[Element]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the connection went away: it stays unconfirmed and is written again on reconnect
        entry = self.unacked.pop(iq_id, None)
        if not self.unacked:
            self._acks_drained.set()
        reply = fut.result()
        if reply.get("type") == "error" and entry is not None:
            cond, text = rpc.error_condition(reply)
            self.link.limited.warning(
                "publish-failed", "%s: publishing to %s failed: %s %s", self.link.bare, entry[0], cond, text
            )

    # ------------------------------------------------------------------ the session ends, comes back, closes

    def session_lost(self) -> None:
        """The delayed pubsub copies are dropped: they stay unconfirmed and go again on reconnect."""
        self._deferred.clear()
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._deferred_timer = None

    def resend_unacked(self) -> None:
        """After a reconnect, before the core flushes its outbox: write again what the server never
        confirmed (receivers drop duplicates by uuid), oldest first."""
        entries = list(self.unacked.values())
        self.unacked.clear()
        for i, (node, text) in enumerate(entries):
            try:
                self._send(node, text)
            except XmppConnectionError:  # lost again: keep the rest for the next reconnect
                for rest in entries[i:]:
                    self.unacked[self.link.next_id()] = rest
                return

    async def close(self) -> None:
        """Write what is batched or delayed, and wait (bounded) for the server to confirm it all."""
        link = self.link
        self.flush_batch()
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._flush_deferred()
        was_up = link.session
        await self._await_confirmations()
        if self.unacked:
            log.warning(
                "%s: %d published events not confirmed by the server before closing%s; they may not have "
                "been delivered", link.bare, len(self.unacked), "" if was_up else " (not connected)",
            )  # fmt: skip
        self.unacked.clear()
        self._direct.clear()
        self._targets = {}

    async def _await_confirmations(self) -> None:
        """Wait while the server keeps confirming the events we wrote (see CLOSE_CONFIRM_WAIT)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + max(self.link.timeout, 5.0) - CLOSE_RESERVE
        while self.unacked and self.link.session and loop.time() < end:
            before = len(self.unacked)
            self._acks_drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acks_drained.wait(), min(CLOSE_CONFIRM_WAIT, end - loop.time()))
            if len(self.unacked) >= before:
                return  # no progress: the server is not reading


def _batch_message(target: str, items: list[str]) -> str:
    """One message to ``target`` (a '<message to="JID' prefix) carrying the events' ``items``."""
    return target + pubsub.DIRECT_BATCH_HEAD + "".join(items) + pubsub.DIRECT_BATCH_TAIL
