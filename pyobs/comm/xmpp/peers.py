"""The peer table: which modules of the fleet are online, and what they offer.

Owns: the :class:`~.discovery.Peer` records (by name), the :class:`Discovery` of what they offer
and the peers waiting for the query of their caps ``ver``, the unavailable presences being
confirmed, and the peer check with the peers that stopped answering it. A peer is online when its
presence at our resource arrives, and reported to the core once its disco#info is read and its
event subscriptions are made. When our link goes the peers are kept, marked stale: the core owns
the grace period (and tells us through ``forget`` whom it gave up). The why of going online, the
caps cache and the peer check: docs/xmpp.md ("Start-up", "Fleets", "When a node dies").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from xml.etree.ElementTree import Element

from ..backoff import RETRY_CAP, backoff
from ..transport import TransportHandler
from . import discovery
from .discovery import Peer, PeerInfo
from .events import EventSubscriptions
from .exports import CAPS_NS, Exports
from .link import IqError, Link, XmppConnectionError, log
from .publish import EventPublisher
from .state import StateSync
from .values import escape_attr

#: disco#info queries one module has in flight at once (the rest wait their turn)
DISCO_IN_FLIGHT = 8
#: disco#info results kept by caps ``ver``
CAPS_CACHE_SIZE = 256
#: a ver no peer announces (a peer whose discovery failed: its next presence asks again)
NO_VER = "\x00"
#: how long open() waits for the discovery of the peers already online (slow ones are reported later)
DISCOVERY_WAIT = 2.0
#: roster contacts open() pings because the server did not say whether they are online (a bound)
MAX_ROSTER_PROBES = 1000
#: after our initial presence, how long without a new answer to the server's presence probes before
#: the contacts that gave none are pinged: ejabberd 23.01 does not answer a probe of a contact
#: without a session (prosody does, at once, with an unavailable presence)
PRESENCE_QUIET = 0.05
#: the least time the pings of the contacts that gave no answer get
MIN_PING_WAIT = 0.5
#: an unavailable presence counts after this long (unless our own connection ends meanwhile)
OFFLINE_DEBOUNCE = 0.05
#: longest error text of a peer's presence kept (the rest is cut off)
MAX_STATUS = 1000
#: default interval of the peer check (s): servers do not always say when a peer goes (an ejabberd
#: cluster node that dies takes its sessions along without an "unavailable" to the other nodes)
PEER_CHECK_INTERVAL = 1.5
#: a peer check's IQ unanswered after this long is asked again at once (a busy peer gets two chances)
PEER_CHECK_TIMEOUT = 1.5
#: a peer that answers no check for this long counts as gone, if the server answers our own ping
#: within PEER_CHECK_TIMEOUT. Not sooner: an overloaded server (ejabberd at N = 100) or a module busy
#: for seconds answers late, and a peer declared gone gets no events until it is discovered again
#: (issue 18: 5,266 of 19,800 lost)
PEER_SILENCE = 10.0
#: peers asked per round at most (in turn): one IQ per peer per round is N² for the server, at
#: N = 100 a busy prosody (issue 18, bench/RESULTS.md)
PEER_CHECK_PER_ROUND = 5


async def _wait_until(event: asyncio.Event, done: Callable[[], bool], deadline: float) -> bool:
    """Whether ``done()`` came true before the loop time ``deadline`` (looked at when ``event`` is set)."""
    loop = asyncio.get_running_loop()
    while not done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)
    return True


class PeerTable:
    def __init__(
        self,
        link: Link,
        exports: Exports,
        events: EventSubscriptions,
        publisher: EventPublisher,
        state: StateSync,
    ) -> None:
        self.link = link
        self.exports = exports
        self.events = events
        self.publisher = publisher
        self.state = state
        self.check_interval = float(link.options.peer_check_interval)
        self.handler: TransportHandler | None = None
        self.discovery = Discovery(link, self._release_waiting)
        self._peers: dict[str, Peer] = {}
        #: peers waiting for the query of their ver under way (answered without a task each)
        self._waiting: dict[str, list[Peer]] = {}
        #: set whenever a presence that going online waits for arrives
        self._presence = asyncio.Event()
        #: while going online: the roster contacts that have not yet answered the server's presence
        #: probes (presence at our resource, or "unavailable" from the bare JID: no session at all)
        self._unanswered: set[str] | None = None
        #: contacts pinged when going online, in all (the server's probes did not answer them)
        self.pinged = 0
        #: peers whose unavailable presence is being confirmed
        self._leaving: dict[str, asyncio.TimerHandle] = {}
        #: peers that stopped answering the check: name → full JID (asked again; back if they answer)
        self._suspects: dict[str, str] = {}
        self._check_task: asyncio.Task[None] | None = None

    def get(self, name: str) -> Peer | None:
        return self._peers.get(name)

    def known(self) -> list[Peer]:
        """The peers whose disco#info we have."""
        return [p for p in self._peers.values() if p.info is not None]

    # ------------------------------------------------------------------ our session

    def session_started(self) -> None:
        if self.check_interval > 0:
            self._check_task = self.link.spawn(self._check_peers())

    def session_lost(self, link_was_up: bool) -> None:
        if self._check_task is not None:
            self._check_task.cancel()
            self._check_task = None
        if not link_was_up:
            return
        for timer in self._leaving.values():
            timer.cancel()
        self._leaving.clear()
        for peer in self._peers.values():
            peer.stale = True

    def close(self) -> None:
        self.session_lost(True)  # the check ends, the unavailable presences being confirmed are dropped
        for peer in self._peers.values():
            peer.gone = True
            if peer.task is not None:
                peer.task.cancel()
        self._peers.clear()
        self._waiting.clear()
        self._unanswered = None

    # ------------------------------------------------------------------ who is online when we go online

    def _contacts(self) -> list[str]:
        """The names of the roster contacts that can be modules of the fleet (in our domain)."""
        link = self.link
        names = []
        for jid in sorted(link.roster):
            local, _, domain = jid.partition("@")
            if domain == link.domain and local and local != link.name and ":" not in local and "/" not in local:
                names.append(local)
        return names

    def expect_answers(self) -> None:
        """Called just before our initial presence: the server answers it with the presence of every
        contact (RFC 6121 presence probes), and from then on the answers are counted."""
        self._unanswered = {n for n in self._contacts() if n not in self._peers or self._peers[n].stale}

    async def find_online(self) -> list[str]:
        """The roster contacts online at our resource, after our initial presence. The answers to the
        server's probes arrive in no order relative to anything else (ejabberd: 2 to 24 ms after
        answering our next IQ); only the contacts that gave none before a quiet period are pinged (a
        module answers after the presence it sent us, the server with an error; pings of every
        contact cost the server N² at a fleet's start)."""
        link = self.link
        loop = asyncio.get_running_loop()
        unanswered = self._unanswered if self._unanswered is not None else set()
        end = loop.time() + min(link.timeout, DISCOVERY_WAIT)
        quiet = PRESENCE_QUIET
        try:
            if unanswered:
                # the server handles our presence (and sends its probes) before this ping
                sent = loop.time()
                with contextlib.suppress(TimeoutError, IqError, XmppConnectionError):
                    await link.ping(link.domain, max(end - sent, 0.001), "ping after presence")
                # a busy server answers the probes late as well (ejabberd at N = 100: ~150 ms)
                quiet = max(PRESENCE_QUIET, 2 * (loop.time() - sent))
            left = len(unanswered)

            def answered() -> bool:
                return len(unanswered) < left

            # another answer within `quiet` (and before `end`): the quiet period starts again
            while unanswered and await _wait_until(self._presence, answered, min(end, loop.time() + quiet)):
                left = len(unanswered)
            ask = sorted(unanswered)
        finally:
            self._unanswered = None
        if len(ask) > MAX_ROSTER_PROBES:
            log.warning("%s: %d roster contacts did not answer the presence probes; pinging only the first %d",
                        link.bare, len(ask), MAX_ROSTER_PROBES)  # fmt: skip
            ask = ask[:MAX_ROSTER_PROBES]
        self.pinged += len(ask)
        wait = min(link.timeout, max(end - loop.time(), MIN_PING_WAIT))

        async def online(name: str) -> bool:
            try:
                await link.ping(f"{name}@{link.domain}/{link.resource}", wait)
            except IqError as exc:
                # a client without XEP-0199 (it is there); the server answers service-unavailable
                return exc.condition == "feature-not-implemented"
            except (TimeoutError, XmppConnectionError):
                return False
            return True

        answers = await asyncio.gather(*(online(n) for n in ask))
        pinged = [n for n, up in zip(ask, answers, strict=True) if up]
        present = [n for n, p in self._peers.items() if not p.stale]
        return present + [n for n in pinged if n not in present]

    async def wait_for(self, online: list[str]) -> None:
        """Until the peers known to be online are discovered (their presence may still be on its way)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + min(self.link.timeout, DISCOVERY_WAIT)
        await _wait_until(
            self._presence, lambda: all(n in self._peers and not self._peers[n].stale for n in online), end
        )
        remaining = end - loop.time()
        # coroutines only when awaited (else "never awaited" warnings at fleet size, where time runs out)
        pending = [p for p in self._peers.values() if not p.discovered.is_set()] if remaining > 0 else []
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(p.discovered.wait() for p in pending)), remaining)

    def forget(self, name: str) -> None:
        """The core gave up a peer kept since our link went (not back within its grace)."""
        peer = self._peers.get(name)
        if peer is not None and peer.stale:
            self._gone(name)

    async def resolve(self, name: str) -> bool:
        peer = self._peers.get(name)
        if peer is None:
            return False
        if not peer.discovered.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer.discovered.wait(), min(self.link.timeout, 5.0))
        return peer.reported and self._peers.get(name) is peer

    async def capabilities(self, name: str, interface: str) -> object:
        peer = self._peers.get(name)
        if peer is None:
            return None
        await peer.discovered.wait()  # the core bounds it
        return peer.info.capabilities.get(interface) if peer.info is not None else None

    # ------------------------------------------------------------------ presence

    def on_presence(self, xml: Element) -> bool:
        typ = xml.get("type")
        if typ is not None and typ != "unavailable":
            return False  # subscription handling etc.: slixmpp
        link = self.link
        frm = xml.get("from", "")
        bare, _, resource = frm.partition("/")
        local, _, domain = bare.partition("@")
        unanswered = self._unanswered
        if unanswered and local in unanswered and domain == link.domain:
            # an answer to the server's probe at our going online: presence at our resource, or
            # "unavailable" from the bare JID (prosody: no session at all); other resources say nothing
            if resource == link.resource or (not resource and typ == "unavailable"):
                unanswered.discard(local)
                self._presence.set()
        if not local or domain != link.domain or resource != link.resource or bare == link.bare:
            return True
        if not link.trusted(bare):
            # presence is how peers are discovered: nobody outside the fleet poses as a module
            if typ is None:
                link.limited.info("untrusted-presence", "%s: ignored presence of %s: not in the fleet", link.bare, frm)
            return True
        if typ is None:
            c = xml.find(f"{{{CAPS_NS}}}c")
            self._available(local, frm, c.get("ver") if c is not None else None)
            self._shows(local, xml)
        elif local not in self._peers:
            self.publisher.peer_gone(local)
        elif local not in self._leaving:
            # confirmed a moment later: when the server shuts down it ends the other sessions
            # just before ours, and those peers are not gone, the server is
            self._leaving[local] = link.loop.call_later(OFFLINE_DEBOUNCE, self._left, local)
        return True

    def _shows(self, name: str, xml: Element) -> None:
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
        if peer.reported and self.handler is not None:
            self.handler.peer_module_state(name, *new)

    def _left(self, name: str) -> None:
        self._leaving.pop(name, None)
        self._gone(name)

    def _available(self, name: str, jid: str, caps: str | None) -> None:
        peer = self._peers.get(name)
        leaving = self._leaving.pop(name, None)
        if leaving is not None:  # it left and came back at once: read its disco#info again
            leaving.cancel()
            if peer is not None:
                peer.caps = NO_VER  # discover it again (a new session: subscribe again too)
                peer.events.clear()
        self._presence.set()
        self._suspects.pop(name, None)
        if peer is not None and not peer.stale and peer.caps == caps and peer.jid == jid:
            return  # a presence update (show/status) only
        if peer is None:
            peer = self._peers[name] = Peer(name, jid, caps)
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
                # presence itself if it restarted (see EventPublisher.push_subscriptions)
            if unchanged and caps in self.discovery.cache:
                # back after our reconnect with the same verified ver: nothing to ask it
                self._restored(peer)
                return
            peer.discovered = asyncio.Event()
        self._start_discovery(peer)

    def _start_discovery(self, peer: Peer) -> None:
        """Report a peer like one we know at once, or let it wait for the query of its ``ver`` under
        way (a fleet's presences arrive in one burst: a list, not a task each), or ask it."""
        if self._known_at_once(peer):
            return
        caps = peer.caps
        waiting = self._waiting.get(caps) if caps is not None else None
        if waiting is not None:
            peer.task = None
            waiting.append(peer)
            return
        task = peer.task = self.link.spawn(self._discover(peer, peer.discovered))
        if caps is not None and caps != NO_VER and self.discovery.shareable(caps):
            # released when the query ends (Discovery's on_answered), or when the task ends without
            # one (cancelled before it ran); a later list of the same ver is not this one's
            waiting = self._waiting[caps] = []
            task.add_done_callback(lambda _: self._release_waiting(caps, waiting))

    def _release_waiting(self, ver: str, waiting: list[Peer] | None = None) -> None:
        """The query for ``ver`` ended: the peers that waited for it are known now (or asked)."""
        if waiting is not None and self._waiting.get(ver) is not waiting:
            return
        for peer in self._waiting.pop(ver, ()):
            if self._peers.get(peer.name) is peer and peer.caps == ver and not peer.discovered.is_set():
                self._start_discovery(peer)

    def _known_at_once(self, peer: Peer) -> bool:
        """A peer like one we know (its verified caps ver is cached) that we need not ask anything."""
        info = self.discovery.known(peer.caps, peer.name)
        if info is None or not info.direct or self.handler is None:
            return False
        peer.info = info
        if not self.events.up_to_date(peer):
            return False  # a direct-event subscription to make first: _discover does it
        peer.reported = True
        self._report_without_task(peer)
        return True

    def _restored(self, peer: Peer) -> None:
        """A peer back after our reconnect, unchanged: only what the server lost is redone."""
        old, peer.discovered = peer.discovered, asyncio.Event()
        old.set()
        if peer.info is not None and peer.info.direct and self.events.up_to_date(peer):
            self._report_without_task(peer)  # a pyobs-comm peer: nothing was lost with the server
            return
        peer.task = self.link.spawn(self._resync(peer, peer.discovered))

    def _report_without_task(self, peer: Peer) -> None:
        """Report a pyobs-comm peer whose info and subscriptions are up to date, without a task (a
        fleet of N starting, or coming back, does this N² times)."""
        if self.link.session:
            self.publisher.push_direct(peer)
        peer.task = None
        peer.discovered.set()
        self._report(peer)

    def _report(self, peer: Peer) -> None:
        """Tell the core a peer is online (for one kept while our link was down: its grace ends)."""
        info = peer.info
        if not peer.reported or info is None or self.handler is None or peer.gone:
            return
        self.handler.peer_online(peer.name, list(info.interfaces), {n for n, _ in info.sends}, info.label)
        if peer.module_state != ("ready", ""):
            self.handler.peer_module_state(peer.name, *peer.module_state)

    async def _resync(self, peer: Peer, done: asyncio.Event) -> None:
        try:
            await asyncio.gather(self.events.sync(peer), self.publisher.push_subscriptions([peer]))
            self._report(peer)
        finally:
            done.set()

    def _gone(self, name: str) -> None:
        peer = self._peers.pop(name, None)
        if peer is None:
            return
        peer.gone = True
        if peer.task is not None and not peer.task.done():
            peer.task.cancel()
        peer.discovered.set()
        self.state.peer_gone(name)
        if name not in self._suspects:
            # taken for gone on silence alone (a hung module, its session still at the server): its
            # events still go to it, kept for it by the server, until the server says it is gone
            self.publisher.peer_gone(name)
        if peer.reported and self.handler is not None:
            self.handler.peer_offline(name)

    async def _discover(self, peer: Peer, done: asyncio.Event) -> None:
        """Read a peer's disco#info, subscribe to its events, report it; ``done`` is set at the end
        (this discovery's own event: a newer discovery of the same peer has its own)."""
        try:
            info = await self.discovery.query(peer)
            if info is None and not peer.gone:
                peer.caps = NO_VER  # matches no presence: its next one tries again
            if info is None or peer.gone:
                return
            peer.info = info
            await asyncio.gather(self.events.sync(peer), self.publisher.push_subscriptions([peer]))
            if peer.gone or self.handler is None:
                return
            peer.reported = True
            self._report(peer)
        finally:
            done.set()

    # ------------------------------------------------------------------ the peer check

    async def _check_peers(self) -> None:
        """Every ``check_interval`` s, ask peers whether they are still there (docs/xmpp.md, "When a
        node dies"): PEER_CHECK_PER_ROUND a round, in turn, and the silent ones; after a round that
        found one gone (a cluster node died: likely more), all of them."""
        link = self.link
        turn, check_all = 0, False
        while link.session:
            await asyncio.sleep(self.check_interval)
            if not link.session or not self.exports.online:
                continue
            # not the stale ones: not back yet after our reconnect, they have the core's grace
            peers = [p for p in self._peers.values() if p.reported and p.info is not None and not p.stale]
            if not check_all and len(peers) > PEER_CHECK_PER_ROUND:
                turn %= len(peers)
                silent = [p for p in peers if p.silent_since is not None]
                in_turn = (peers + peers)[turn : turn + PEER_CHECK_PER_ROUND]
                turn += PEER_CHECK_PER_ROUND
                peers = in_turn + [p for p in silent if p not in in_turn]
            suspects = list(self._suspects.items())
            server: list[asyncio.Task[bool]] = []  # our ping to the server, once a round needs it
            gone = await asyncio.gather(
                *(self.check(p, server) for p in peers), *(self._recheck(n, jid) for n, jid in suspects)
            )
            check_all = any(gone[: len(peers)])

    async def _liveness_iq(self, jid: str, ping: bool) -> None:
        if ping:
            await self.link.ping(jid, PEER_CHECK_TIMEOUT, "peer check")
        else:
            await self.discovery.ask(jid, PEER_CHECK_TIMEOUT, "peer check")

    async def _server_answers(self) -> bool:
        """Whether the server answers our own ping within PEER_CHECK_TIMEOUT."""
        try:
            await self.link.ping(self.link.domain, PEER_CHECK_TIMEOUT, "ping")
        except IqError:
            return True  # an answer, if not a pong
        except (TimeoutError, XmppConnectionError):
            return False
        return True

    async def check(self, peer: Peer, server: list[asyncio.Task[bool]] | None = None) -> bool:
        """Whether ``peer`` was found gone (the server says it is not there, or it answered no
        check for PEER_SILENCE while the server answers us); ``server``: the round's server ping."""
        if server is None:
            server = []
        # a ping to pyobs-comm peers, disco#info to others: both answered by every pyobs module
        ping = peer.info is not None and peer.info.direct
        asked = time.monotonic()
        try:
            try:
                await self._liveness_iq(peer.jid, ping)
            except TimeoutError:
                await self._liveness_iq(peer.jid, ping)  # a second chance for a busy peer
            peer.silent_since = None
            return False
        except IqError as exc:
            if exc.condition == "feature-not-implemented":
                peer.silent_since = None
                return False  # a client without XEP-0199 answered: it is there
            why = f"the server answered {exc.condition}"
        except TimeoutError:
            if peer.silent_since is None:
                peer.silent_since = asked
            silent = time.monotonic() - peer.silent_since
            if silent < PEER_SILENCE:
                # slow (a busy module, an overloaded server), not gone: it keeps getting our events
                log.debug("%s: %s has not answered a peer check for %.1f s", self.link.bare, peer.name, silent)
                return False
            if not server:
                server.append(self.link.spawn(self._server_answers()))
            if not await server[0]:
                # the server does not answer us promptly either (overloaded, or our own link is
                # congested): the silence is the server's, not the peer's
                log.debug("%s: %s silent for %.1f s, but so is the server", self.link.bare, peer.name, silent)
                return False
            why = f"no answer to any check for {silent:.1f} s"
            self._suspects[peer.name] = peer.jid
        except XmppConnectionError:
            return False
        if peer.gone:
            return False
        if peer.name in self._suspects:  # taken for gone on silence alone: it may still be there
            log.warning(
                "%s: %s is taken for gone (%s; the server answers); our events still go to it until "
                "the server says it is gone", self.link.bare, peer.name, why,
            )  # fmt: skip
        else:
            log.info("%s: %s is gone without an unavailable presence (%s)", self.link.bare, peer.name, why)
        self._gone(peer.name)
        return True

    async def _recheck(self, name: str, jid: str) -> None:
        try:
            await self._liveness_iq(jid, False)
        except (IqError, TimeoutError, XmppConnectionError) as exc:
            if isinstance(exc, IqError):
                # the server says it is gone: no more events to it; its presence brings it back
                self._suspects.pop(name, None)
                self.publisher.peer_gone(name)
            return
        self._suspects.pop(name, None)
        if name not in self._peers:
            log.warning("%s: %s answers again", self.link.bare, name)
            self._available(name, jid, None)


class Discovery:
    """What peers offer: their disco#info, read at most once per kind of module.

    Owns: the verified disco#info per caps ``ver`` (see :func:`.discovery.fingerprint`), the
    ``ver``\\ s that did not verify (another scheme: pyobs-core's; never shared between peers),
    and the slots that bound the queries in flight. One query per ``ver`` at a time: the peer
    table lets the other peers of that ``ver`` wait for it.
    """

    def __init__(self, link: Link, on_answered: Callable[[str], None]) -> None:
        self.link = link
        #: called (soon after) when the query for a ver has ended, answered or not
        self._on_answered = on_answered
        self.cache: OrderedDict[str, PeerInfo] = OrderedDict()
        self._unverified: OrderedDict[str, None] = OrderedDict()
        self._slots = asyncio.Semaphore(DISCO_IN_FLIGHT)

    def reset(self) -> None:
        """On open: the slots belong to the running loop."""
        self._slots = asyncio.Semaphore(DISCO_IN_FLIGHT)

    def known(self, ver: str | None, name: str) -> PeerInfo | None:
        """The info of module ``name`` whose verified ``ver`` is cached, else None."""
        if ver is None or ver not in self.cache:
            return None
        self.cache.move_to_end(ver)
        return discovery.instantiate(self.cache[ver], name)

    def shareable(self, ver: str) -> bool:
        """Whether one answer may do for every module announcing ``ver`` (not another scheme's ver)."""
        return ver not in self._unverified

    async def query(self, peer: Peer) -> PeerInfo | None:
        """The peer's disco#info: cached by verified caps ver, from another peer's query, or asked."""
        ver = peer.caps
        if ver is None or ver == NO_VER or ver in self._unverified:
            return await self._ask(peer)  # an unverified ver (another scheme: pyobs-core's): each one is asked
        cached = self.known(ver, peer.name)
        if cached is not None:
            return cached
        try:
            info = await self._ask(peer)
            if info is not None and discovery.fingerprint(info, peer.name) == ver:
                self.cache[ver] = discovery.template(info, peer.name)
                while len(self.cache) > CAPS_CACHE_SIZE:
                    self.cache.popitem(last=False)
            elif info is not None:
                self._unverified[ver] = None
                while len(self._unverified) > CAPS_CACHE_SIZE:
                    self._unverified.popitem(last=False)
            return info
        finally:
            # the peers of this ver waiting in the table: known now, or asked (one of them)
            self.link.loop.call_soon(self._on_answered, ver)

    async def _ask(self, peer: Peer) -> PeerInfo | None:
        link = self.link
        for attempt, pause in enumerate(backoff(0.1, RETRY_CAP, attempts=5)):
            try:
                async with self._slots:
                    if peer.gone:
                        return None  # gone while it waited for its turn
                    reply = await self.ask(peer.jid, self.link.timeout)
                return discovery.parse_info(reply)
            except IqError as exc:
                log.info("%s: %s answered disco#info with %s", link.bare, peer.name, exc.condition)
                return None
            except TimeoutError:
                log.warning("%s: %s did not answer disco#info (attempt %d)", link.bare, peer.name, attempt + 1)
            except XmppConnectionError:
                return None
            await asyncio.sleep(pause)
        return None

    async def ask(self, jid: str, timeout: float, what: str = "disco#info") -> Element:
        """The disco#info of ``jid`` (one query, within ``timeout`` s)."""
        body = f'"><query xmlns="{discovery.NS}"/></iq>'
        return await self.link.iq(f'<iq type="get" to="{escape_attr(jid)}" id="', body, jid, timeout, what)
