"""Peers' events on their way in: our subscriptions at the peers, and the events that arrive.

Owns: which events we asked each peer for (``Peer.events``) and the retries of direct-event
subscriptions that timed out. A pyobs-comm peer is asked to send us its events as messages (one
hop less than pubsub); other peers' event nodes are subscribed to on the server. Arriving events
(pubsub notifications and direct messages) are checked — the sender is in the fleet, the node is
its own, the payload decodes to the type it was published as — and handed to the core.
"""

from __future__ import annotations

import asyncio
import json
from xml.etree.ElementTree import Element

from pyobs.events.event import Event

from ..backoff import RETRY_CAP, backoff
from ..transport import TransportHandler
from . import pubsub
from .discovery import DIRECT_EVENTS, Peer, event_version
from .exports import Exports
from .link import IqError, Link, XmppConnectionError, log
from .nodes import Nodes
from .values import escape_attr

#: attempts at a direct-event subscription that timed out (then the peer's own push has to do)
DIRECT_RETRIES = 4


class EventSubscriptions:
    def __init__(self, link: Link, exports: Exports, nodes: Nodes) -> None:
        self.link = link
        self.exports = exports
        self.nodes = nodes
        self.handler: TransportHandler | None = None

    # ------------------------------------------------------------------ receiving

    def on_direct_event(self, xml: Element) -> None:
        """An event a peer sent us directly (we asked it to, see :meth:`sync`)."""
        link = self.link
        frm = xml.get("from", "")
        local = link.fleet_module(frm)
        if local is None:
            link.limited.warning("untrusted-event", "%s: dropped an event sent by %s: not in the fleet", link.bare, frm)
            return
        try:
            for note in pubsub.notifications(xml):
                if note.kind != "event" or note.module != local:
                    # the server vouches for the sender: nobody sends events in another's name
                    link.limited.warning(
                        "spoofed-event", "%s: dropped an event for %s's node sent by %s", link.bare, note.module, frm
                    )
                    continue
                self.on_event(note)
        except Exception:
            log.exception("%s: failed to handle an event from %s", link.bare, frm)

    def on_event(self, note: pubsub.Notification) -> None:
        limited, bare = self.link.limited, self.link.bare
        if note.payload.tag != pubsub.Q_EVENT_PAYLOAD:
            limited.warning("bad-event", "%s: event from %s without a pyobs:event payload, dropped", bare, note.module)
            return
        try:
            event = Event.from_dict(json.loads(note.payload.text or ""))
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            limited.warning("bad-event", "%s: dropped an undecodable %s from %s: %s", bare, note.name, note.module, why)
            return
        if event.type != note.name:
            limited.warning(
                "bad-event", "%s: dropped a %s published on the %s node of %s", bare, event.type, note.name,
                note.module,
            )  # fmt: skip
            return
        assert self.handler is not None
        self.handler.event_received(note.module, event)

    # ------------------------------------------------------------------ subscribing

    def wanted(self, peer: Peer) -> set[str]:
        """The events of ``peer`` we handle (same version)."""
        info = self.exports.info
        if info is None or peer.info is None:
            return set()
        return {n for n, v in peer.info.sends if n in info.receives and event_version(n) == v}

    def up_to_date(self, peer: Peer) -> bool:
        return self.wanted(peer) == peer.events

    async def sync_all(self, peers: list[Peer]) -> None:
        await asyncio.gather(*(self.sync(p) for p in peers if p.info is not None))

    async def sync(self, peer: Peer) -> None:
        """Subscribe to the peer's events we handle (idempotent on the server)."""
        link = self.link
        if link.closing or not link.session:
            return
        if peer.info is not None and peer.info.direct:
            try:
                if await self._ask_direct(peer):
                    return
            except TimeoutError:
                # a busy peer (a fleet starting or a server restart): ask again later; meanwhile
                # its own push (it knows what we handle from our disco#info) usually serves us
                if peer.retry is None or peer.retry.done():
                    log.warning(
                        "%s: %s did not answer the direct-event subscription within %.0f s (timeout); retrying",
                        link.bare, peer.name, link.timeout,
                    )  # fmt: skip
                    peer.retry = link.spawn(self._retry_direct(peer))
                return
        await self._subscribe_nodes(peer)

    async def _ask_direct(self, peer: Peer) -> bool:
        """Ask a pyobs-comm peer to send us the events we handle as messages; False if it refuses
        (then pubsub serves)."""
        wanted = self.wanted(peer)
        if wanted == peer.events:
            return True
        events = escape_attr(" ".join(sorted(wanted)))
        try:
            await self.link.iq(
                f'<iq type="set" to="{escape_attr(peer.jid)}" id="',
                f'"><subscribe xmlns="{DIRECT_EVENTS}" events="{events}"/></iq>',
                peer.jid, self.link.timeout, "event subscription",
            )  # fmt: skip
        except IqError as exc:
            log.warning("%s: %s refused direct events (%s); using pubsub", self.link.bare, peer.name, exc)
            return False
        peer.events = set(wanted)
        return True

    async def _subscribe_nodes(self, peer: Peer) -> None:
        """Subscribe to the peer's event nodes we handle and have not subscribed to."""
        events = sorted(self.wanted(peer) - peer.events)
        results = await asyncio.gather(*(self._subscribe_node(peer, e) for e in events), return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                log.warning("%s: event subscription at %s failed: %s", self.link.bare, peer.name, res)

    async def _retry_direct(self, peer: Peer) -> None:
        """Ask a peer whose direct-event subscription timed out again, a few times with growing,
        jittered pauses; then pubsub (as for a peer that refuses)."""
        link = self.link
        # 0.25-0.75 s, then doubling: as jittered as the peers that retry with us
        for pause in backoff(0.75, RETRY_CAP, jitter=2 / 3, attempts=DIRECT_RETRIES):
            await asyncio.sleep(pause)
            if peer.gone or link.closing:
                return
            if not link.session or peer.info is None:
                continue
            try:
                if not await self._ask_direct(peer):
                    break
            except (TimeoutError, XmppConnectionError):
                continue
            log.info("%s: direct events from %s after a retry", link.bare, peer.name)
            return
        else:
            log.warning("%s: %s never answered the direct-event subscription; using pubsub", link.bare, peer.name)
        if not peer.gone and link.session:
            await self._subscribe_nodes(peer)

    async def _subscribe_node(self, peer: Peer, event: str) -> None:
        node = pubsub.event_node(peer.name, event, event_version(event))
        await self.nodes.subscribe(node, self.link.timeout, lambda: not peer.gone, lambda: peer.events.add(event))
