"""Announcing ourselves (presence, disco#info, event nodes) and tracking peers: who is online and what they offer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.interfaces.types import ModuleCapabilities

from ..backoff import RETRY_CAP, backoff
from ..transport import Announcement
from . import discovery, pubsub, rpc
from .base import (
    CAPS_CACHE_SIZE,
    CAPS_NS,
    DISCOVERY_WAIT,
    MAX_ROSTER_PROBES,
    MAX_STATUS,
    OFFLINE_DEBOUNCE,
    PEER_CHECK_PER_ROUND,
    PEER_CHECK_TIMEOUT,
    RECENTLY_GONE,
    RESTORE_GRACE,
    IqError,
    XmppBase,
    XmppConnectionError,
    XmppNodeOwnershipError,
    _event_version,
    _PeerState,
    log,
)
from .values import INVALID_XML, EncodeError, escape, escape_attr


class PresenceMixin(XmppBase):
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
        # peers that know a module like us (same ver) need not ask us: see discovery.fingerprint
        self._caps_ver = discovery.own_fingerprint(self._disco_body, self.name)

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
        # who is online, asked while the nodes are made: peers see our presence only when we are
        # about to be ready (calls before open() returns are refused as "starting")
        probe = self._spawn(self._probe_roster())
        try:
            await self._create_event_nodes()
            states = [(i, s) for i, s in self._own_state.items() if self._published_state.get(i) is not s]
            publishing = (self._publish_state(i, s, self.timeout) for i, s in states)
            results = await asyncio.gather(*publishing, return_exceptions=True)
            for (iface, _), res in zip(states, results, strict=True):
                if isinstance(res, XmppConnectionError | XmppNodeOwnershipError):
                    raise res
                if isinstance(res, BaseException):
                    log.warning("%s: publishing the initial state of %s failed: %s", self.bare, iface, res)
        except BaseException:
            probe.cancel()
            raise
        online = await probe
        self._send_presence()
        self._online = True
        if self._expected:
            await self._wait_for_returning_peers()
        await self._wait_for_peers(online)

    async def _probe_roster(self) -> list[str]:
        """The roster contacts online at our resource, asked directly: a ping each (a few bytes),
        answered by the module if its session is up, by the server with an error if not. Servers
        deliver the presence of the contacts online in no particular order relative to anything
        else (ejabberd: 2 to 24 ms after answering our next IQ), so open() cannot tell from presence
        alone when it knows everyone; it waits for the presence of those that answered. Bounded by
        DISCOVERY_WAIT and MAX_ROSTER_PROBES."""
        wait = min(self.timeout, DISCOVERY_WAIT)
        try:
            reply = await self._iq(
                '<iq type="get" id="', '"><query xmlns="jabber:iq:roster"/></iq>', None, wait, "roster"
            )
        except (IqError, TimeoutError) as exc:
            log.warning("%s: cannot read the roster (%s); peers are found by their presence only", self.bare, exc)
            return []
        except XmppConnectionError:
            return []  # the connection is gone: going online fails right after this
        names = []
        for item in reply.iter("{jabber:iq:roster}item"):
            local, _, domain = item.get("jid", "").partition("@")
            if domain == self.domain and local and local != self.name and ":" not in local and "/" not in local:
                names.append(local)
        if len(names) > MAX_ROSTER_PROBES:
            log.warning("%s: %d roster contacts; asking only the first %d who is online", self.bare, len(names),
                        MAX_ROSTER_PROBES)  # fmt: skip
            names = names[:MAX_ROSTER_PROBES]

        async def online(name: str) -> bool:
            known = self._peers.get(name)
            if known is not None and not known.stale:
                return True  # its presence is here already
            jid = f"{name}@{self.domain}/{self.resource}"
            try:
                await self._iq(
                    f'<iq type="get" to="{escape_attr(jid)}" id="', '"><ping xmlns="urn:xmpp:ping"/></iq>',
                    jid, wait, "ping",
                )  # fmt: skip
            except IqError as exc:
                # a client without XEP-0199 (it is there); the server answers service-unavailable
                return exc.condition == "feature-not-implemented"
            except (TimeoutError, XmppConnectionError):
                return False
            return True

        answers = await asyncio.gather(*(online(n) for n in names))
        return [n for n, up in zip(names, answers, strict=True) if up]

    async def _wait_for_peers(self, online: list[str]) -> None:
        """Until the peers known to be online are discovered (their presence may still be on its way)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + min(self.timeout, DISCOVERY_WAIT)
        while True:
            missing = [n for n in online if n not in self._peers or self._peers[n].stale]
            remaining = end - loop.time()
            if not missing or remaining <= 0:
                break
            self._peer_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._peer_seen.wait(), remaining)
        remaining = end - loop.time()
        # coroutines only when awaited (else "never awaited" warnings at fleet size, where time runs out)
        pending = [p for p in self._peers.values() if not p.discovered.is_set()] if remaining > 0 else []
        if pending:
            waits = [p.discovered.wait() for p in pending]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), remaining)

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

    async def _create_node(self, node: str, transient: bool = True) -> None:
        """Create one of our nodes (events: ``transient``, state: keeps its items); if it exists, it
        must be ours (:meth:`_claim_node`)."""
        try:
            await self._pubsub_set(pubsub.create_body(node, transient=transient), node)
        except IqError as exc:
            if exc.condition == "conflict":
                await self._claim_node(node)  # it exists: it must be ours
                self._created_nodes.add(node)
                return
            if exc.condition in ("not-acceptable", "bad-request", "feature-not-implemented", "not-allowed"):
                # the server does not take our node configuration: create it with its defaults
                try:
                    await self._pubsub_set(pubsub.create_body(node, transient=False), node)
                except IqError as exc2:
                    if exc2.condition != "conflict":
                        log.warning("%s: cannot create node %s: %s", self.bare, node, exc2)
                        return
                    await self._claim_node(node)
                self._created_nodes.add(node)
                return
            log.warning("%s: cannot create node %s: %s", self.bare, node, exc)
            return
        except TimeoutError:
            log.warning("%s: creating node %s timed out", self.bare, node)
            return
        self._created_nodes.add(node)

    def _on_disco(self, xml: Element, query: Element) -> None:
        frm = xml.get("from", "")
        to = escape_attr(frm)
        iq_id = escape_attr(xml.get("id", ""))
        bare = frm.partition("/")[0]
        with contextlib.suppress(XmppConnectionError):
            if "@" in bare and not self._trusted(bare):  # (the server itself may ask: no '@')
                self._write(rpc.iq_error(to, iq_id, "forbidden", "auth", 403, "not a member of this fleet"))
                return
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
        if not self._trusted(bare):
            # presence is how peers are discovered: nobody outside the fleet poses as a module
            if typ is None:
                self._limited.info("untrusted-presence", "%s: ignored presence of %s: not in the fleet", self.bare, frm)
            return True
        if typ is None:
            c = xml.find(f"{{{CAPS_NS}}}c")
            self._peer_available(local, frm, c.get("ver") if c is not None else None)
            self._peer_shows(local, xml)
        elif local not in self._peers:
            if self._direct.pop(local, None) is not None:
                self._rebuild_direct()
        elif local not in self._leaving and self._loop is not None:
            # confirmed a moment later: when the server shuts down it ends the other sessions
            # just before ours, and those peers are not gone, the server is
            self._leaving[local] = self._loop.call_later(OFFLINE_DEBOUNCE, self._peer_left, local)
        return True

    def _peer_shows(self, name: str, xml: Element) -> None:
        """Presence <show>/<status> → the peer's lifecycle state (xmpp-wire.md, module lifecycle)."""
        peer = self._peers.get(name)
        if peer is None:
            return
        show = (xml.findtext("{jabber:client}show") or xml.findtext("show") or "").strip()
        state = {"dnd": "error", "away": "local"}.get(show, "ready")
        status = (xml.findtext("{jabber:client}status") or xml.findtext("status") or "") if state == "error" else ""
        new = (state, status[:MAX_STATUS])
        if new == peer.module_state:
            return
        peer.module_state = new
        if peer.reported and self._handler is not None:
            self._handler.peer_module_state(name, *new)

    def _peer_left(self, name: str) -> None:
        self._leaving.pop(name, None)
        self._peer_gone(name)

    def _peer_available(self, name: str, jid: str, caps: str | None) -> None:
        leaving = self._leaving.pop(name, None)
        if leaving is not None:  # it left and came back at once: read its disco#info again
            leaving.cancel()
            peer = self._peers.get(name)
            if peer is not None:
                peer.caps = "\x00"  # discover it again (a new session: subscribe again too)
                peer.events.clear()
        self._peer_seen.set()
        self._suspects.pop(name, None)
        if name in self._expected:
            self._expected.discard(name)
            self._peer_returned.set()
        peer = self._peers.get(name)
        if peer is not None and not peer.stale and peer.caps == caps and peer.jid == jid:
            return  # a presence update (show/status) only
        if peer is None:
            peer = self._peers[name] = _PeerState(name, jid, caps)
        else:  # back after our reconnect, or it changed what it offers
            unchanged = peer.caps == caps and peer.jid == jid and peer.info is not None and caps is not None
            peer.caps = caps
            peer.jid = jid
            if peer.task is not None and not peer.task.done():
                peer.task.cancel()
            if peer.stale:
                peer.stale = False
                if peer.info is None or not peer.info.direct:
                    peer.events.clear()  # pubsub: subscribe again (idempotent on the server)
                # a pyobs-comm peer keeps our direct subscription, and restores it from our
                # presence itself if it restarted (see _push_subscriptions)
            if unchanged and caps in self._caps_cache:
                # back after our reconnect with the same verified ver: nothing to ask it
                self._restored(peer)
                return
            peer.discovered = asyncio.Event()
        if self._known_at_once(peer):
            return
        if caps is not None and caps in self._caps_queries and caps not in self._caps_unverified:
            # a module like this one is being asked right now (a burst of presences at a fleet's
            # start): this one waits for that answer, in a list rather than a task of its own
            peer.task = None
            self._caps_waiting.setdefault(caps, []).append(peer)
            return
        peer.task = self._spawn(self._discover(peer, peer.discovered))

    def _release_waiting(self, ver: str) -> None:
        """The query for ``ver`` ended: the peers that waited for it are known now (or asked)."""
        for peer in self._caps_waiting.pop(ver, ()):
            if self._peers.get(peer.name) is not peer or peer.caps != ver or peer.discovered.is_set():
                continue
            if not self._known_at_once(peer):
                peer.task = self._spawn(self._discover(peer, peer.discovered))

    def _known_at_once(self, peer: _PeerState) -> bool:
        """A peer like one we know (its verified caps ver is cached) that we need not ask anything:
        reported right away, without a task (a fleet of N starting does this N² times)."""
        tmpl = self._caps_cache.get(peer.caps) if peer.caps is not None else None
        if tmpl is None or not tmpl.direct or self._handler is None:
            return False
        info = discovery.instantiate(tmpl, peer.name)
        peer.info = info
        if self._wanted_events(peer) != peer.events:
            return False  # a direct-event subscription to make first: _discover does it
        self._caps_cache.move_to_end(peer.caps)  # type: ignore[arg-type]
        if self._session and self._push_direct(peer):
            self._rebuild_direct()
        peer.task = None
        peer.reported = True
        peer.discovered.set()
        self._handler.peer_online(peer.name, list(info.interfaces), {n for n, _ in info.sends}, info.label)
        if peer.module_state != ("ready", ""):
            self._handler.peer_module_state(peer.name, *peer.module_state)
        return True

    def _restored(self, peer: _PeerState) -> None:
        """A peer back after our reconnect, unchanged: only what the server lost is redone."""
        old, peer.discovered = peer.discovered, asyncio.Event()
        old.set()
        if peer.info is not None and peer.info.direct and self._wanted_events(peer) == peer.events:
            # a pyobs-comm peer: nothing was lost with the server (no task: N of them come back)
            if self._session and self._push_direct(peer):
                self._rebuild_direct()
            peer.task = None
            peer.discovered.set()
            self._seen_again(peer)
            return
        peer.task = self._spawn(self._resync(peer, peer.discovered))

    async def _resync(self, peer: _PeerState, done: asyncio.Event) -> None:
        try:
            await asyncio.gather(self._sync_event_subscriptions(peer), self._push_subscriptions([peer]))
            self._seen_again(peer)
        finally:
            done.set()

    def _seen_again(self, peer: _PeerState) -> None:
        """Tell the core a peer it kept while our link was down is back (the core's grace ends for it)."""
        info = peer.info
        if peer.reported and info is not None and self._handler is not None and self._peers.get(peer.name) is peer:
            self._handler.peer_online(peer.name, list(info.interfaces), {name for name, _ in info.sends}, info.label)

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

    async def _check_peers(self) -> None:
        """Every ``peer_check_interval`` s, ask each peer whether it is still there (a ping to
        pyobs-comm peers, disco#info to others, both answered by every pyobs module). The server
        answers for a session it does not have (``service-unavailable``) at once; a peer that does
        not answer within PEER_CHECK_TIMEOUT counts as gone too, and is asked again each round:
        if it answers later it is discovered again. Bounded: PEER_CHECK_PER_ROUND peers a round, in
        turn; after a round that found one gone (a cluster node died: likely more) all peers."""
        turn, check_all = 0, False
        while self._session:
            await asyncio.sleep(self.peer_check_interval)
            if not self._session or not self._online:
                continue
            peers = [p for p in self._peers.values() if p.reported and p.info is not None]
            if not check_all and len(peers) > PEER_CHECK_PER_ROUND:
                turn %= len(peers)
                peers = (peers + peers)[turn : turn + PEER_CHECK_PER_ROUND]
                turn += PEER_CHECK_PER_ROUND
            suspects = list(self._suspects.items())
            gone = await asyncio.gather(
                *(self._check_peer(p) for p in peers), *(self._recheck(n, jid) for n, jid in suspects)
            )
            check_all = any(gone[: len(peers)])

    async def _liveness_iq(self, jid: str, ping: bool) -> None:
        body = '"><ping xmlns="urn:xmpp:ping"/></iq>' if ping else f'"><query xmlns="{discovery.NS}"/></iq>'
        await self._iq(f'<iq type="get" to="{escape_attr(jid)}" id="', body, jid, PEER_CHECK_TIMEOUT, "peer check")

    async def _check_peer(self, peer: _PeerState) -> bool:
        """Whether the peer was found gone."""
        ping = peer.info is not None and peer.info.direct
        try:
            try:
                await self._liveness_iq(peer.jid, ping)
            except TimeoutError:
                await self._liveness_iq(peer.jid, ping)  # a second chance for a busy peer
            return False
        except IqError as exc:
            if exc.condition == "feature-not-implemented":
                return False  # a client without XEP-0199 answered: it is there
            why = f"the server answered {exc.condition}"
        except TimeoutError:
            why = f"no answer twice within {PEER_CHECK_TIMEOUT} s"
            self._suspects[peer.name] = peer.jid
        except XmppConnectionError:
            return False
        if self._peers.get(peer.name) is peer:
            log.info("%s: %s is gone without an unavailable presence (%s)", self.bare, peer.name, why)
            self._peer_gone(peer.name)
            return True
        return False

    async def _recheck(self, name: str, jid: str) -> None:
        try:
            await self._liveness_iq(jid, False)
        except (IqError, TimeoutError, XmppConnectionError) as exc:
            if isinstance(exc, IqError):
                self._suspects.pop(name, None)  # the server says it is gone: its presence brings it back
            return
        self._suspects.pop(name, None)
        if name not in self._peers:
            log.info("%s: %s answers again", self.bare, name)
            self._peer_available(name, jid, None)

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
            if peer.module_state != ("ready", ""):
                self._handler.peer_module_state(peer.name, *peer.module_state)
        finally:
            done.set()

    async def _query_info(self, peer: _PeerState) -> discovery.PeerInfo | None:
        """The peer's disco#info: from the cache when its caps ver is known (verified), from a
        query of another peer with the same ver under way, else by asking it (at most
        DISCO_IN_FLIGHT queries at once)."""
        ver = peer.caps
        if ver is None or ver == "\x00":
            return await self._ask_info(peer)
        cached = self._caps_cache.get(ver)
        if cached is not None:
            self._caps_cache.move_to_end(ver)
            return discovery.instantiate(cached, peer.name)
        running = self._caps_queries.get(ver)
        if ver in self._caps_unverified:
            return await self._ask_info(peer)  # another scheme (pyobs-core): each one is asked
        if running is not None:  # a module like this one is being asked: its answer does for both
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                tmpl = await asyncio.wait_for(asyncio.shield(running), self.timeout)
                if tmpl is not None:
                    return discovery.instantiate(tmpl, peer.name)
            return await self._ask_info(peer)  # not verified (another scheme, or it failed)
        assert self._loop is not None
        fut: asyncio.Future[discovery.PeerInfo | None] = self._loop.create_future()
        self._caps_queries[ver] = fut
        try:
            info = await self._ask_info(peer)
            tmpl = None
            if info is not None and discovery.fingerprint(info, peer.name) == ver:
                tmpl = discovery.template(info, peer.name)
                self._caps_cache[ver] = tmpl
                while len(self._caps_cache) > CAPS_CACHE_SIZE:
                    self._caps_cache.popitem(last=False)
            elif info is not None:
                self._caps_unverified[ver] = None
                while len(self._caps_unverified) > CAPS_CACHE_SIZE:
                    self._caps_unverified.popitem(last=False)
            if not fut.done():
                fut.set_result(tmpl)
            return info
        finally:
            if not fut.done():
                fut.set_result(None)
            if self._caps_queries.get(ver) is fut:
                del self._caps_queries[ver]
            if self._loop is not None:  # after this peer's own report
                self._loop.call_soon(self._release_waiting, ver)

    async def _ask_info(self, peer: _PeerState) -> discovery.PeerInfo | None:
        for attempt, pause in enumerate(backoff(0.1, RETRY_CAP, attempts=5)):
            try:
                async with self._disco_slots:
                    if self._peers.get(peer.name) is not peer:
                        return None  # gone while it waited for its turn
                    reply = await self._disco_iq(peer.jid)
                return discovery.parse_info(reply)
            except IqError as exc:
                log.info("%s: %s answered disco#info with %s", self.bare, peer.name, exc.condition)
                return None
            except TimeoutError:
                log.warning("%s: %s did not answer disco#info (attempt %d)", self.bare, peer.name, attempt + 1)
            except XmppConnectionError:
                return None
            await asyncio.sleep(pause)
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
