"""Shared ground of the XMPP transport: errors, constants, peer bookkeeping and the state that all parts share.

:class:`XmppBase` holds the constructor (every attribute the mixins use) and the type-checking
stubs for methods one mixin calls on another; the mixins in ``connection``, ``calls``,
``presence``, ``events`` and ``state`` each own one concern and are combined in
:class:`pyobs.comm.xmpp.transport.XmppTransport`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

from pyobs.utils.exceptions import ConfigError, RemoteError
from pyobs.utils.ratelimit import RateLimitedLog

from ..calls import Call
from ..transport import Announcement, Extend, NotConnected, Transport, TransportHandler
from . import discovery, pubsub
from .client import Client
from .limits import StanzaLimits

log = logging.getLogger("pyobs.comm.xmpp.transport")
ROSTER_NS = "jabber:iq:roster"
Q_ROSTER = f"{{{ROSTER_NS}}}query"

#: longest pause between two reconnection attempts (s)
RECONNECT_MAX_DELAY = 0.25
#: the first reconnection attempt waits a random part of this (s): a fleet that lost its server
#: together does not log in within the same few milliseconds
RECONNECT_JITTER = 0.3
#: disco#info queries one module has in flight at once (the rest wait their turn)
DISCO_IN_FLIGHT = 8
#: disco#info results kept by caps ``ver`` (see discovery.fingerprint)
CAPS_CACHE_SIZE = 256
#: attempts at a direct-event subscription that timed out (then the peer's own push has to do)
DIRECT_RETRIES = 4
#: after reconnecting, how long to wait for the peers we knew to come back before flushing events
RESTORE_GRACE = 5.0
#: how long open() waits for the discovery of the peers already online (slow ones are reported later)
DISCOVERY_WAIT = 2.0
#: pubsub answers that mean "try again" while other sessions create nodes at the same moment
#: (ejabberd aborts concurrent node creations: internal-server-error or item-not-found)
TRANSIENT_PUBSUB = frozenset({"internal-server-error", "item-not-found", "resource-constraint", "wait"})
#: attempts of a node creation or first publish (backoff 20 ms doubling, with jitter: ~1.3 s in all)
PUBSUB_ATTEMPTS = 7
#: roster contacts open() asks whether they are online (a bound for very large rosters)
MAX_ROSTER_PROBES = 1000
#: peers that went offline this shortly before we lost the server are expected back with it
RECENTLY_GONE = 2.0
#: an unavailable presence counts after this long (unless our own connection ends meanwhile)
OFFLINE_DEBOUNCE = 0.05
#: largest batch of direct events in one message (bytes): below every server's stanza limit
#: (docs/xmpp.md's ejabberd: 16 KB; ejabberd 23.01 closes the stream of a larger stanza)
DIRECT_BATCH_BYTES = 8192
#: delay of the pubsub copy of an event that went to peers directly (s)
PUBSUB_DELAY = 0.002
#: a keepalive ping to the server every so many seconds, answered within PING_TIMEOUT
#: close() waits for the server to confirm the events it was sent (a c2s shaper may hold a burst
#: back for seconds) as long as confirmations keep coming within CLOSE_CONFIRM_WAIT, at most
#: the comm's close deadline (max(timeout, 5 s)) less CLOSE_RESERVE for logging out
CLOSE_CONFIRM_WAIT = 2.0
CLOSE_RESERVE = 3.0
#: longest error text of a peer's presence kept (the rest is cut off)
MAX_STATUS = 1000
PING_INTERVAL = 30.0
PING_TIMEOUT = 10.0
#: default interval of the peer check (s): servers do not always say when a peer goes (an ejabberd
#: cluster node that dies takes its sessions along without an "unavailable" to the other nodes)
PEER_CHECK_INTERVAL = 1.5
#: a peer that does not answer the check twice in a row within this long counts as gone (it is
#: asked again each round and comes back if it answers); a busy peer gets two chances
PEER_CHECK_TIMEOUT = 1.5
#: peers asked per round at most (in turn; a round after one is found gone asks all): one IQ per
#: peer per round is N² for the server, at N = 100 a busy prosody (issue 18, bench/RESULTS.md)
PEER_CHECK_PER_ROUND = 5
Q_PING = "{urn:xmpp:ping}ping"
Q_DIRECT_SUBSCRIBE = f"{{{discovery.DIRECT_EVENTS}}}subscribe"
CAPS_NS = "http://jabber.org/protocol/caps"


class XmppConnectionError(NotConnected):
    """Not connected to the XMPP server (or the connection was lost during the operation)."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)


class XmppAuthError(XmppConnectionError, PermissionError):
    """The server refused our credentials, or its certificate is not trusted: retrying won't help."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)


class IqError(RemoteError):
    """An IQ was answered with an error."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)

    def __init__(self, condition: str, text: str = "", what: str = "") -> None:
        detail = f"{what}: " if what else ""
        super().__init__(f"{detail}{condition}{f' ({text})' if text else ''}")
        self.condition = condition
        self.text = text


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


def too_large(data: str, limit: int) -> int:
    """The size in bytes of ``data`` if it exceeds ``limit`` (0: no limit), else 0."""
    if not limit or len(data) <= limit // 4:  # UTF-8 has at most 4 bytes per character
        return 0
    size = len(data.encode())
    return size if size > limit else 0


def split_jid(jid: str) -> tuple[str, str, str]:
    """``local@domain/resource`` → (local, domain, resource); ValueError naming what is wrong."""
    bare, _, resource = jid.partition("/")
    local, at, domain = bare.partition("@")
    if not at or not local or not domain:
        raise ValueError(f"invalid JID {jid!r}: expected name@domain[/resource]")
    if ":" in local:
        raise ValueError(f"invalid module name {local!r} in JID {jid!r}: names must not contain ':'")
    return local, domain, resource


def is_valid_jid(jid: str, resource: str = "pyobs") -> bool:
    """Whether ``jid`` is a JID XmppComm accepts, ``name@domain`` or ``name@domain/resource``
    (``resource`` is assumed when it has none), so user input can be checked up front."""
    if not isinstance(jid, str):
        return False
    candidate = jid if "/" in jid else f"{jid}/{resource}"
    try:
        local, domain, res = split_jid(candidate)
    except ValueError:
        return False
    parts = (local, domain, res)
    return all(parts) and not any(c.isspace() or c in "@/\"'<>&" for c in local + domain) and not any(
        c.isspace() for c in res
    )


@dataclass(eq=False)
class _Pending:
    """An IQ we sent and wait for."""

    future: asyncio.Future[Element]
    expect_from: str | None
    extend: Extend | None = None  # calls: the callee may announce a duration
    control: Call | None = None  # calls: the handle progress notices go to


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
    #: a retry of a direct-event subscription that timed out
    retry: asyncio.Task[None] | None = None
    #: lifecycle state it shows in presence (``ready``, ``error``, ``local``) and the error text
    module_state: tuple[str, str] = ("ready", "")


def _parse_one_server(server: object) -> tuple[str, int]:
    if not isinstance(server, str):
        raise ConfigError("server", f"expected host:port, got {server!r} ({type(server).__name__})")
    text = server.strip()
    if text.startswith("[") and "]" in text:  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        sep, port = rest[:1], rest[1:]
        if rest and sep != ":":
            raise ConfigError("server", f"invalid server {server!r}: expected [address]:port")
    elif text.count(":") > 1:  # a bare IPv6 address
        host, sep, port = text, "", ""
    else:
        host, sep, port = text.partition(":")
    if not host or any(c.isspace() or c in "/@," for c in host):
        raise ConfigError("server", f"invalid server {server!r}: expected host:port")
    if not sep:
        return host, 5222
    try:
        number = int(port)
    except ValueError:
        raise ConfigError("server", f"invalid server {server!r}: the port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ConfigError("server", f"invalid server {server!r}: the port must be 1 to 65535")
    return host, number


def _parse_server(server: object) -> list[tuple[str, int]]:
    """``host:port``, or a list of them (tried in turn: the nodes of a cluster) → addresses;
    ConfigError naming what is wrong."""
    if isinstance(server, str):
        items: list[object] = [s for s in server.split(",")] if "," in server else [server]
    elif isinstance(server, list | tuple):
        items = list(server)
    else:
        raise ConfigError("server", f"expected host:port or a list of them, got {type(server).__name__}")
    if not items:
        raise ConfigError("server", "the list of servers is empty")
    return [_parse_one_server(s) for s in items]


def _event_version(name: str) -> int:
    from pyobs.events.event import event_by_name

    etype = event_by_name(name)
    return etype.version if etype is not None else 1


class XmppBase(Transport):
    """Constructor and shared attributes of :class:`XmppTransport`."""

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        server: str | list[str] | None = None,
        use_tls: bool = True,
        require_tls: bool = False,
        direct_tls: bool = False,
        ca_file: str | None = None,
        allow_plain: bool = False,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        event_queue_size: int = 10000,
        version: str = "",
        ignore_cert_errors: bool = False,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        trusted: list[str] | None = None,
        stanza_limits: StanzaLimits | None = None,
        peer_check_interval: float = PEER_CHECK_INTERVAL,
        max_stanza_size: int = 0,
    ) -> None:
        local, domain, resource = split_jid(jid)
        self.name = local
        self.domain = domain
        self.resource = resource or "pyobs"
        self.bare = f"{local}@{domain}"
        self.full = f"{self.bare}/{self.resource}"
        self.pubsub = f"pubsub.{domain}"
        self._password = password
        #: the servers to connect to, tried in turn (empty: DNS SRV of the domain)
        self._addresses: list[tuple[str, int]] = _parse_server(server) if server not in (None, "") else []
        self._address: tuple[str, int] | None = self._addresses[0] if self._addresses else None
        self._use_tls = use_tls
        self._require_tls = require_tls
        self._direct_tls = direct_tls
        self._ca_file = ca_file
        self._allow_plain = allow_plain
        self._ignore_cert_errors = ignore_cert_errors
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        self.ping_interval = float(ping_interval)
        self.ping_timeout = float(ping_timeout)
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.version = version
        if isinstance(event_queue_size, bool) or not isinstance(event_queue_size, int) or event_queue_size < 1:
            raise ValueError(f"event_queue_size must be a whole number >= 1, not {event_queue_size!r}")
        #: the accounts we take calls, events and presence from: an explicit list, or (None) our roster
        self._trusted_explicit: frozenset[str] | None = None
        if trusted is not None:
            if isinstance(trusted, str) or not all(isinstance(t, str) and t for t in trusted):
                raise ValueError(f"trusted must be a list of JIDs (name@domain), not {trusted!r}")
            self._trusted_explicit = frozenset(t if "@" in t else f"{t}@{domain}" for t in trusted)
        self._roster: frozenset[str] = frozenset()
        #: lines a peer can trigger per stanza go through this (one line per kind every 10 s, with counts)
        self._limited = RateLimitedLog(log)
        self._stanza_limits = stanza_limits or StanzaLimits()
        if peer_check_interval < 0:
            raise ConfigError("peer_check_interval", "must be 0 (off) or a positive number of seconds")
        self.peer_check_interval = float(peer_check_interval)
        if max_stanza_size < 0:
            raise ConfigError("max_stanza_size", "must be 0 (no limit) or a number of bytes")
        #: the server's stanza size limit (ejabberd: max_stanza_size); larger stanzas are refused here
        self.max_stanza_size = int(max_stanza_size)

        self._client: Client | None = None
        self._handler: TransportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session = False  # a session is up
        self._closing = False
        self._attempt: asyncio.Future[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._check_task: asyncio.Task[None] | None = None
        #: peers that stopped answering the check: name → full JID (asked again; back if they answer)
        self._suspects: dict[str, str] = {}
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
        #: state node creations under way (concurrent publishes wait for the same one)
        self._creating: dict[str, asyncio.Future[None]] = {}

        self._peers: dict[str, _PeerState] = {}
        #: verified disco#info per caps ver (name left out), and the queries under way per ver
        self._caps_cache: OrderedDict[str, discovery.PeerInfo] = OrderedDict()
        self._caps_queries: dict[str, asyncio.Future[discovery.PeerInfo | None]] = {}
        #: peers waiting for the query of their ver under way (answered without a task each)
        self._caps_waiting: dict[str, list[_PeerState]] = {}
        #: vers whose disco#info did not hash to them (not ours: pyobs-core's): never shared
        self._caps_unverified: OrderedDict[str, None] = OrderedDict()
        self._disco_slots = asyncio.Semaphore(DISCO_IN_FLIGHT)
        self._peer_returned = asyncio.Event()
        #: set whenever a peer's available presence arrives
        self._peer_seen = asyncio.Event()
        #: peers we expect back after a reconnect, and when peers went offline
        self._expected: set[str] = set()
        self._gone_at: dict[str, float] = {}
        #: peers whose unavailable presence is being confirmed
        self._leaving: dict[str, asyncio.TimerHandle] = {}
        self._state_subs: set[tuple[str, str]] = set()
        self._own_state: dict[str, Any] = {}
        self._published_state: dict[str, Any] = {}

        #: publishes written but not yet confirmed by the server (IQ id → node, JSON): written again
        #: after a reconnect, before the core's outbox flushes (see pyobs.comm.outbox); bounded
        self._unacked: OrderedDict[str, tuple[str, str]] = OrderedDict()
        #: set when the server has confirmed every event we sent
        self._acks_drained = asyncio.Event()
        self._unacked_limit = event_queue_size
        #: peers that take our events as direct messages: name → (full JID, event names)
        self._direct: dict[str, tuple[str, frozenset[str]]] = {}
        #: pubsub publishes of events that went to peers directly first, and their timer
        self._deferred: list[str] = []
        self._deferred_timer: asyncio.TimerHandle | None = None
        #: direct events sent in this loop iteration after the first: per target, their <items>
        self._batch: dict[str, list[str]] | None = None
        #: bytes of events batched per peer (a batch is written when it reaches DIRECT_BATCH_BYTES)
        self._batch_bytes: dict[str, int] = {}
        #: event name → '<message to="JID' prefixes of those peers
        self._direct_targets: dict[str, list[str]] | None = {}  # None: to be rebuilt

        self._call_prefix: dict[str, str] = {}
        self._call_body: dict[str, str] = {}
        self._compact_body: dict[tuple[str, bool], str] = {}
        self._pubsub_head = pubsub.iq_head(self.pubsub)

    def _trusted(self, bare: str) -> bool:
        """Whether the account ``bare`` (``name@domain``) belongs to the fleet: on the explicit
        ``trusted`` list if there is one, else in our roster (the server's shared group)."""
        if bare == self.bare:
            return True
        explicit = self._trusted_explicit
        return bare in (explicit if explicit is not None else self._roster)

    def _sender_name(self, bare: str) -> str:
        """How a caller is named to the module: its name in our domain, else its whole bare JID
        (``peer@other.domain`` is not our ``peer``)."""
        local, _, domain = bare.partition("@")
        return local if domain == self.domain and local else bare

    if TYPE_CHECKING:
        # implemented by the mixins; declared here so that each mixin type-checks on its own
        async def _iq(
            self, head: str, body: str, expect_from: str | None, timeout: float | None = None, what: str = ""
        ) -> Element: ...

        def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]: ...

        async def _pubsub_set(self, body: str, what: str, transient: frozenset[str] = ...) -> Element: ...

        async def _claim_node(self, node: str) -> None: ...

        async def _create_node(self, node: str, transient: bool = True) -> None: ...

        async def _check_peers(self) -> None: ...

        async def _check_peer(self, peer: _PeerState) -> bool: ...

        def _write(self, data: str) -> None: ...

        def _next_id(self) -> str: ...

        async def _sync_all_event_subscriptions(self) -> None: ...

        async def _push_subscriptions(self, peers: list[_PeerState]) -> None: ...

        async def _publish_state(self, interface: str, state: Any, timeout: float | None) -> None: ...

        def _rebuild_direct(self) -> None: ...

        def _push_direct(self, peer: _PeerState) -> bool: ...

        def _wanted_events(self, peer: _PeerState) -> set[str]: ...

        async def _sync_event_subscriptions(self, peer: _PeerState) -> None: ...

        def _on_state(self, note: pubsub.Notification) -> None: ...

        def _published_by_owner(self, module: str, what: str, publisher: str | None) -> bool: ...

        def _on_message(self, xml: Element) -> bool: ...

        def _on_presence(self, xml: Element) -> bool: ...

        async def _go_online(self) -> None: ...

        def _resend_unacked(self) -> None: ...

        async def _restore_subscriptions(self) -> None: ...

        def _flush_deferred(self) -> None: ...

        def _flush_batch(self) -> None: ...

        def _extend(self, pending: _Pending, el: Element, frm: str | None) -> None: ...

        def _on_call(self, xml: Element, query: Element) -> None: ...

        def _on_cancel(self, xml: Element, el: Element) -> None: ...

        def _on_progress(self, xml: Element, el: Element) -> None: ...

        def _on_direct_subscribe(self, xml: Element, el: Element) -> None: ...

        def _on_disco(self, xml: Element, query: Element) -> None: ...
