"""Pubsub nodes: our event and state nodes and their ownership, and subscribing to peers' nodes
(also to one a peer creates only later).

Owns: the nodes known to exist in this session (created again after a reconnect: creating is
idempotent) and the creations under way. An existing node must be ours (:meth:`Nodes.claim`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pyobs.utils.exceptions import RemoteError

from ..backoff import RETRY_CAP, RETRY_FIRST, backoff
from . import discovery, pubsub
from .link import IqError, Link, log
from .values import escape_attr


class XmppNodeOwnershipError(RemoteError, PermissionError):
    """One of our pubsub nodes exists and belongs to another account (squatted, or a stale node of
    an account that was renamed); names the owner. Not retried: an administrator must act."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)

    def __init__(self, node: str, owners: list[str], me: str) -> None:
        who = ", ".join(owners) if owners else "another account (the server does not say which)"
        super().__init__(
            f"{me}: the pubsub node {node} belongs to {who}, not to {me}; another account created it "
            f"first. Delete the node on the server and restrict node creation (see docs/xmpp.md, "
            f"'Node ownership')"
        )
        self.node = node
        self.owners = owners


#: answers to a node creation that mean "not with this configuration" (created with the server's defaults)
UNCONFIGURABLE = frozenset({"not-acceptable", "bad-request", "feature-not-implemented", "not-allowed"})


class Nodes:
    def __init__(self, link: Link) -> None:
        self.link = link
        self._created: set[str] = set()
        self._creating: dict[str, asyncio.Future[None]] = {}

    def exists(self, node: str) -> bool:
        return node in self._created

    def forget(self) -> None:
        """The session ended: the server may have lost our nodes."""
        self._created.clear()

    async def ensure(self, node: str, transient: bool) -> None:
        """Create the node unless it exists; concurrent callers wait for the same creation."""
        if node in self._created:
            return
        creating = self._creating.get(node)
        if creating is None:
            creating = self._creating[node] = asyncio.ensure_future(self.create(node, transient=transient))
            creating.add_done_callback(lambda _, n=node: self._creating.pop(n, None))  # type: ignore[misc]
        await asyncio.shield(creating)

    async def create(self, node: str, transient: bool) -> None:
        """Create one of our nodes (events: ``transient``, state: keeps its items); if it exists, it
        must be ours (:meth:`claim`)."""
        link = self.link
        # if the server does not take our node configuration: once more with its defaults
        for config in (transient, False):
            try:
                await link.pubsub_set(pubsub.create_body(node, transient=config), node)
            except IqError as exc:
                if exc.condition == "conflict":
                    await self.claim(node)  # it exists: it must be ours
                elif exc.condition in UNCONFIGURABLE and config is not False:
                    continue
                else:
                    log.warning("%s: cannot create node %s: %s", link.bare, node, exc)
                    return
            except TimeoutError:
                log.warning("%s: creating node %s timed out", link.bare, node)
                return
            self._created.add(node)
            return

    async def claim(self, node: str) -> None:
        """An existing node must be ours. Where the server lets us read its affiliations without
        owning it (prosody: every pyobs account is a pubsub admin) and it is not ours, take it back;
        otherwise raise :class:`XmppNodeOwnershipError` naming the owner."""
        link = self.link
        try:
            reply = await link.pubsub_iq(pubsub.affiliations_body(node), node, link.timeout, "get")
        except IqError as exc:
            if exc.condition == "item-not-found":
                return  # gone meanwhile: our next publish creates it
            raise XmppNodeOwnershipError(node, await self._owners(node), link.bare) from None
        affiliations = pubsub.parse_affiliations(reply)
        if affiliations.get(link.bare) == "owner":
            return
        others = {j: "none" for j, aff in affiliations.items() if aff in ("owner", "publisher") and j != link.bare}
        try:
            await link.pubsub_iq(pubsub.set_affiliations_body(node, {link.bare: "owner"}), node, link.timeout)
            if others:
                await link.pubsub_iq(pubsub.set_affiliations_body(node, others), node, link.timeout)
        except IqError:
            owners = list(others) or await self._owners(node)
            raise XmppNodeOwnershipError(node, owners, link.bare) from None
        log.warning("%s: took back the pubsub node %s from %s", link.bare, node, ", ".join(others) or "nobody")

    async def _owners(self, node: str) -> list[str]:
        """The owners a node's meta-data names (empty if the server does not say)."""
        body = f'"><query xmlns="{discovery.NS}" node="{escape_attr(node)}"/></iq>'
        try:
            reply = await self.link.pubsub_iq(body, node, self.link.timeout, "get")
        except (IqError, TimeoutError):
            return []
        return pubsub.metadata_owners(reply)

    async def subscribe(
        self, node: str, timeout: float | None, wanted: Callable[[], bool], then: Callable[[], None]
    ) -> bool:
        """Subscribe to a peer's node and call ``then()``; False if the node does not exist yet (a
        peer that creates it late): it is asked for again in the background while ``wanted()``."""
        if await self._subscribe_once(node, timeout, then):
            return True
        self.link.spawn(self._subscribe_later(node, wanted, then))
        return False

    async def _subscribe_once(self, node: str, timeout: float | None, then: Callable[[], None]) -> bool:
        link = self.link
        try:
            await link.pubsub_iq(pubsub.subscribe_body(node, link.bare), node, timeout)
        except IqError as exc:
            if exc.condition != "item-not-found":
                raise
            return False
        then()
        return True

    async def _subscribe_later(self, node: str, wanted: Callable[[], bool], then: Callable[[], None]) -> None:
        link = self.link
        pauses = backoff(RETRY_FIRST, RETRY_CAP)
        while wanted() and link.session:
            await asyncio.sleep(next(pauses))
            try:
                if await self._subscribe_once(node, link.timeout, then):
                    return
            except IqError as exc:
                log.warning("%s: cannot subscribe to %s: %s", link.bare, node, exc)
                return
            except TimeoutError:
                continue
