"""Discovery of what peers offer: their disco#info, read at most once per kind of module.

Owns: the verified disco#info per caps ``ver`` (bounded, least recently used out first; see
:func:`.discovery.fingerprint`), the ``ver``\\ s that did not verify (another scheme: pyobs-core's;
never shared between peers), the queries under way per ``ver``, and the slots that bound the
disco#info queries in flight (``DISCO_IN_FLIGHT``). Each query is retried with backoff a few times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from xml.etree.ElementTree import Element

from ..backoff import RETRY_CAP, backoff
from . import discovery
from .discovery import Peer, PeerInfo
from .errors import IqError, XmppConnectionError
from .link import Link
from .values import escape_attr

log = logging.getLogger("pyobs.comm.xmpp.transport")

#: disco#info queries one module has in flight at once (the rest wait their turn)
DISCO_IN_FLIGHT = 8
#: disco#info results kept by caps ``ver``
CAPS_CACHE_SIZE = 256
#: a ver no peer announces (a peer whose discovery failed: its next presence asks again)
NO_VER = "\x00"


class Discovery:
    def __init__(self, link: Link, on_answered: Callable[[str], None]) -> None:
        self.link = link
        #: called (soon after) when the query for a ver has ended, answered or not
        self._on_answered = on_answered
        self.cache: OrderedDict[str, PeerInfo] = OrderedDict()
        self._queries: dict[str, asyncio.Future[PeerInfo | None]] = {}
        self._unverified: OrderedDict[str, None] = OrderedDict()
        self._slots = asyncio.Semaphore(DISCO_IN_FLIGHT)

    def reset(self) -> None:
        """On open: the slots belong to the running loop."""
        self._slots = asyncio.Semaphore(DISCO_IN_FLIGHT)

    def known(self, ver: str | None, name: str) -> PeerInfo | None:
        """The info of module ``name`` whose verified ``ver`` is cached, else None."""
        tmpl = self.cache.get(ver) if ver is not None else None
        if tmpl is None:
            return None
        self.cache.move_to_end(ver)  # type: ignore[arg-type]
        return discovery.instantiate(tmpl, name)

    def asking(self, ver: str | None) -> bool:
        """Whether a module announcing ``ver`` is being asked now, and its answer may do for others."""
        return ver is not None and ver in self._queries and ver not in self._unverified

    async def query(self, peer: Peer) -> PeerInfo | None:
        """The peer's disco#info: from the cache when its caps ver is known (verified), from a
        query of another peer with the same ver under way, else by asking it."""
        ver = peer.caps
        if ver is None or ver == NO_VER:
            return await self._ask(peer)
        cached = self.known(ver, peer.name)
        if cached is not None:
            return cached
        running = self._queries.get(ver)
        if ver in self._unverified:
            return await self._ask(peer)  # another scheme (pyobs-core): each one is asked
        if running is not None:  # a module like this one is being asked: its answer does for both
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                tmpl = await asyncio.wait_for(asyncio.shield(running), self.link.timeout)
                if tmpl is not None:
                    return discovery.instantiate(tmpl, peer.name)
            return await self._ask(peer)  # not verified (another scheme, or it failed)
        loop = self.link.loop
        fut: asyncio.Future[PeerInfo | None] = loop.create_future()
        self._queries[ver] = fut
        try:
            info = await self._ask(peer)
            tmpl = None
            if info is not None and discovery.fingerprint(info, peer.name) == ver:
                tmpl = discovery.template(info, peer.name)
                self.cache[ver] = tmpl
                while len(self.cache) > CAPS_CACHE_SIZE:
                    self.cache.popitem(last=False)
            elif info is not None:
                self._unverified[ver] = None
                while len(self._unverified) > CAPS_CACHE_SIZE:
                    self._unverified.popitem(last=False)
            if not fut.done():
                fut.set_result(tmpl)
            return info
        finally:
            if not fut.done():
                fut.set_result(None)
            if self._queries.get(ver) is fut:
                del self._queries[ver]
            loop.call_soon(self._on_answered, ver)  # after this peer's own report

    async def _ask(self, peer: Peer) -> PeerInfo | None:
        link = self.link
        for attempt, pause in enumerate(backoff(0.1, RETRY_CAP, attempts=5)):
            try:
                async with self._slots:
                    if peer.gone:
                        return None  # gone while it waited for its turn
                    reply = await self._disco_iq(peer.jid)
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

    async def _disco_iq(self, jid: str) -> Element:
        return await self.link.iq(
            f'<iq type="get" to="{escape_attr(jid)}" id="', f'"><query xmlns="{discovery.NS}"/></iq>',
            jid, self.link.timeout, "disco#info",
        )  # fmt: skip
