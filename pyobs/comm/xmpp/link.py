"""The link to the XMPP server. Owns: our JID and the servers to try, the :class:`~.client.Client`,
one login attempt, whether a session is up, the keepalive, the roster (the fleet, unless
``trusted`` lists it), the IQs we wait for (id → future, each bounded by its deadline), the
transport's background tasks, the rate-limited log lines a peer can trigger, and the errors of a
session. Answers to our IQs, roster pushes and pings are handled here; every other stanza goes to
the transport's router. When the session ends the link fails what waits on it and reports the
loss (``on_lost``); reconnecting is the transport's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import math
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.comm.backoff import backoff
from pyobs.comm.errors import describe
from pyobs.utils.exceptions import ConfigError, RemoteError
from pyobs.utils.ratelimit import RateLimitedLog

from ..transport import NotConnected
from . import pubsub, rpc
from .client import Q_IQ, Client, RawHandler
from .values import escape_attr

log = logging.getLogger("pyobs.comm.xmpp.transport")  # one logger for the whole transport

ROSTER_NS = "jabber:iq:roster"
Q_ROSTER = f"{{{ROSTER_NS}}}query"
Q_PING = "{urn:xmpp:ping}ping"
PING_BODY = '"><ping xmlns="urn:xmpp:ping"/></iq>'
#: a keepalive ping to the server every so many seconds, answered within PING_TIMEOUT
PING_INTERVAL = 30.0
PING_TIMEOUT = 10.0
#: pubsub answers that mean "try again" while other sessions create nodes at the same moment
#: (ejabberd aborts concurrent node creations: internal-server-error or item-not-found)
TRANSIENT_PUBSUB = frozenset({"internal-server-error", "item-not-found", "resource-constraint", "wait"})
#: attempts of a node creation or first publish (backoff from 20 ms, doubling: at most ~1.3 s in all)
PUBSUB_ATTEMPTS = 7


class XmppConnectionError(NotConnected):
    """Not connected to the XMPP server (or the connection was lost during the operation)."""

    __module__ = "pyobs.comm.xmpp.transport"  # pyobs-core 2.19's name on the wire (errors travel by qualified name)


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
    bad = any(c.isspace() or c in "@/\"'<>&" for c in local + domain) or any(c.isspace() for c in res)
    return bool(res) and not bad


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


def parse_servers(server: object) -> list[tuple[str, int]]:
    """``host:port``, or a list of them (tried in turn: the nodes of a cluster) → addresses;
    ConfigError naming what is wrong."""
    if isinstance(server, str):
        items: list[object] = list(server.split(","))
    elif isinstance(server, list | tuple):
        items = list(server)
    else:
        raise ConfigError("server", f"expected host:port or a list of them, got {type(server).__name__}")
    if not items:
        raise ConfigError("server", "the list of servers is empty")
    return [_parse_one_server(s) for s in items]


#: sees each answer to an IQ before it counts as the answer; True: an interim answer (consumed)
Interim = Callable[[Element], bool]


@dataclass(eq=False)
class _Pending:
    """An IQ we sent and wait for."""

    future: asyncio.Future[Element]
    expect_from: str | None
    interim: Interim | None = None


@dataclass(frozen=True)
class XmppOptions:
    """What :class:`~.comm.XmppComm` was configured with (its docstring explains each), checked
    once here and read by the parts of the transport."""

    jid: str
    password: str
    server: str | list[str] | None
    use_tls: bool
    require_tls: bool
    direct_tls: bool
    ca_file: str | None
    allow_plain: bool
    ignore_cert_errors: bool
    timeout: float
    connect_timeout: float
    ping_interval: float
    ping_timeout: float
    event_queue_size: int
    version: str
    peer_check_interval: float
    max_stanza_size: int
    trusted: list[str] | None

    def __post_init__(self) -> None:
        for key in ("timeout", "connect_timeout", "ping_interval", "ping_timeout"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(f"{key} must be a positive number of seconds, not {value!r}")
        size = self.event_queue_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"event_queue_size must be a whole number >= 1, not {size!r}")
        if self.peer_check_interval < 0:
            raise ConfigError("peer_check_interval", "must be 0 (off) or a positive number of seconds")
        if self.max_stanza_size < 0:
            raise ConfigError("max_stanza_size", "must be 0 (no limit) or a number of bytes")
        trusted = self.trusted
        if trusted is not None and (isinstance(trusted, str) or not all(isinstance(t, str) and t for t in trusted)):
            raise ValueError(f"trusted must be a list of JIDs (name@domain), not {trusted!r}")


class Link:
    """Our session at the XMPP server (see the module docstring for what it owns)."""

    def __init__(
        self,
        options: XmppOptions,
        *,
        on_iq: RawHandler,
        on_message: RawHandler,
        on_presence: RawHandler,
        on_session: Callable[[], None],
        on_lost: Callable[[bool, str], None],
    ) -> None:
        self.options = options
        local, domain, resource = split_jid(options.jid)
        self.name = local
        self.domain = domain
        self.resource = resource or "pyobs"
        self.bare = f"{local}@{domain}"
        self.full = f"{self.bare}/{self.resource}"
        self.pubsub = f"pubsub.{domain}"
        #: the servers to connect to, tried in turn (empty: DNS SRV of the domain)
        server = options.server
        self.addresses: list[tuple[str, int]] = parse_servers(server) if server not in (None, "") else []
        self._address: tuple[str, int] | None = self.addresses[0] if self.addresses else None
        self.timeout = float(options.timeout)
        #: the accounts we take calls, events and presence from: an explicit list, or (None) our roster
        self._trusted_explicit: frozenset[str] | None = None
        if options.trusted is not None:
            self._trusted_explicit = frozenset(t if "@" in t else f"{t}@{domain}" for t in options.trusted)
        #: the bare JIDs in our roster (read at each login, changed by the server's pushes)
        self.roster: frozenset[str] = frozenset()
        #: lines a peer can trigger per stanza go through this (one line per kind every 10 s, with counts)
        self.limited = RateLimitedLog(log)
        self._route_iq, self._on_message, self._on_presence = on_iq, on_message, on_presence
        self._on_session, self._on_lost = on_session, on_lost

        self.client: Client | None = None
        self.session = False  # a session is up
        self.closing = False
        #: another session logged in with our JID: not reconnecting
        self.conflict = False
        self._attempt: asyncio.Future[None] | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._last_error = ""
        self._ids = itertools.count(1)
        self._id_prefix = "p" + base64.b32encode(os.urandom(5)).decode().lower() + "-"
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.pubsub_head = pubsub.iq_head(self.pubsub)

    @property
    def address(self) -> str:
        return f"{self._address[0]}:{self._address[1]}" if self._address else self.domain

    @property
    def _ca_hint(self) -> str:
        return " (set ca_file to trust a self-signed certificate)" if self.options.ca_file is None else ""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()  # the parts run in the loop the link was opened in

    # ------------------------------------------------------------------ trust

    def trusted(self, bare: str) -> bool:
        """Whether the account ``bare`` (``name@domain``) belongs to the fleet: on the explicit
        ``trusted`` list if there is one, else in our roster (the server's shared group)."""
        if bare == self.bare:
            return True
        explicit = self._trusted_explicit
        return bare in (explicit if explicit is not None else self.roster)

    def sender_name(self, bare: str) -> str:
        """How a caller is named to the module: its name in our domain, else its whole bare JID
        (``peer@other.domain`` is not our ``peer``)."""
        local, _, domain = bare.partition("@")
        return local if domain == self.domain and local else bare

    def published_by_owner(self, module: str, what: str, publisher: str | None) -> bool:
        """Whether an item on ``module``'s node may be believed: the module is in the fleet, and
        the server, where it names the publisher, names that module (pubsub admins — every module
        on prosody — could publish on any node)."""
        owner = f"{module}@{self.domain}"
        if not self.trusted(owner):
            self.limited.warning("untrusted-node", "%s: dropped %s from %s: not in the fleet", self.bare, what, owner)
            return False
        if publisher is not None and publisher.partition("/")[0] != owner:
            self.limited.warning(
                "spoofed-item", "%s: dropped %s on %s's node published by %s", self.bare, what, module, publisher
            )
            return False
        return True

    # ------------------------------------------------------------------ connecting

    async def open(self) -> None:
        """Make the client and connect within connect_timeout (a refused connection fails at once)."""
        self.closing = False
        self.conflict = False
        self.client = self._make_client()
        try:
            await self.attempt_session(self.options.connect_timeout)
        except BaseException as exc:
            self.closing = True
            await self.dispose()
            if isinstance(exc, XmppConnectionError) and not isinstance(exc, XmppAuthError):
                why = f"{self.bare}: cannot connect to the XMPP server {self.address}: {exc}"
                raise XmppConnectionError(why) from None
            raise

    def _make_client(self) -> Client:
        options = self.options
        client = Client(
            self.full,
            options.password,
            on_iq=self._on_iq,
            on_message=self._on_message,
            on_presence=self._on_presence,
            on_oversized=self._on_oversized,
            use_tls=options.use_tls,
            direct_tls=options.direct_tls,
            ca_file=options.ca_file,
            allow_plain=options.allow_plain,
            ignore_cert_errors=options.ignore_cert_errors,
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

    def _drop(self) -> None:
        """Abort the connection, also one still being made (slixmpp's abort() alone leaves that)."""
        if self.client is not None:
            self.client.cancel_connection_attempt()
            self.client.abort()

    async def dispose(self) -> None:
        """Abort the connection and end slixmpp's own task (nothing left running)."""
        self._drop()
        if self.client is not None:
            await self.client.stop_send_task()

    async def attempt_session(self, timeout: float) -> None:
        """One login: connect, authenticate, bind, read the roster; XmppConnectionError if not."""
        client = self.client
        assert client is not None
        if len(self.addresses) > 1:  # a silent node must not use up the time the others have
            timeout = min(timeout, max(2.0, self.options.connect_timeout / len(self.addresses)))
        attempt = self._attempt = self.loop.create_future()
        self._last_error = ""
        client.connect(*(self._address or ()))  # none: the domain's DNS SRV records
        try:
            await asyncio.wait_for(asyncio.shield(attempt), timeout)
        except TimeoutError:
            self._drop()
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
        """Read our roster: the accounts of the fleet (trusted unless ``trusted`` lists them), whom
        going online asks whether they are online."""
        try:
            reply = await self.iq(
                '<iq type="get" id="', f'"><query xmlns="{ROSTER_NS}"/></iq>', None, self.timeout, "roster"
            )
        except (TimeoutError, RemoteError) as exc:
            if self._trusted_explicit is not None:  # only for finding peers: their presence does too
                log.warning("%s: cannot read the roster (%s); peers are found by their presence", self.bare, exc)
                self.roster = frozenset()
                return
            self._drop()
            raise XmppConnectionError(f"cannot read the roster: {exc or 'timed out'}") from None
        query = reply.find(Q_ROSTER)
        self.roster = frozenset(_roster_items(query)) if query is not None else frozenset()
        if not self.roster and self._trusted_explicit is None:
            self.limited.warning(
                "empty-roster", "%s: our roster is empty, so no peer is trusted: put the fleet's accounts in a "
                "shared roster group on the server, or list them in the comm's 'trusted' option", self.bare,
            )  # fmt: skip

    def _on_roster_push(self, xml: Element, query: Element) -> None:
        """The server changed our roster (RFC 6120 roster push): the fleet changed."""
        members = set(_roster_items(query))
        left = {item.get("jid", "").partition("/")[0] for item in query} - members
        self.roster = frozenset((self.roster - left) | members)
        self.reply_empty(xml)

    def _next_address(self) -> None:
        """After a failed attempt: the next server of the list (another node of the cluster)."""
        if len(self.addresses) > 1 and self._address is not None:
            i = self.addresses.index(self._address)
            self._address = self.addresses[(i + 1) % len(self.addresses)]

    def _fail_attempt(self, exc: Exception) -> None:
        if self._attempt is not None:
            _fail(self._attempt, exc)

    def _on_connection_failed(self, error: Any) -> None:
        if self.client is not None:
            self.client.cancel_connection_attempt()  # we retry ourselves, quickly
        self._fail_attempt(XmppConnectionError(str(error) or "connection refused"))

    def _on_auth_failed(self, _: Any) -> None:
        self._last_error = "authentication failed"
        self._fail_attempt(
            XmppAuthError(f"{self.bare}: the server rejected the credentials (or no usable SASL mechanism)")
        )

    def _on_invalid_cert(self, error: Any) -> None:
        self._last_error = f"TLS certificate of {self.domain} not trusted: {error}{self._ca_hint}"
        self._fail_attempt(XmppAuthError(self._last_error))
        self._drop()

    def _on_stream_error(self, stanza: Any) -> None:
        condition = str(stanza["condition"]) if stanza is not None else ""
        self._last_error = f"stream error {condition}"
        if condition == "conflict":
            self.conflict = True
            log.error("%s: another session logged in with the same JID; not reconnecting", self.full)

    def _on_session_start(self, _: Any) -> None:
        client = self.client
        if client is None:
            return
        if self.options.require_tls and not client.encrypted:
            self._fail_attempt(XmppAuthError(f"{self.domain} offers no TLS and require_tls is set"))
            self._drop()
            return
        self.session = True
        attempt = self._attempt
        if attempt is not None and not attempt.done():
            attempt.set_result(None)
        self._ping_task = self.spawn(self._keepalive())
        self._on_session()

    def _on_disconnected(self, reason: Any) -> None:
        was_up = self.session
        self.session = False
        if self._ping_task is not None:
            self._ping_task.cancel()
            self._ping_task = None
        why = self._last_error or (str(reason) if reason else "connection closed")
        if isinstance(reason, ssl.SSLError):
            self._fail_attempt(XmppAuthError(f"TLS with {self.domain} failed: {reason}{self._ca_hint}"))
        self._fail_attempt(XmppConnectionError(why))
        self.fail_pending(XmppConnectionError(f"{self.bare}: connection to the XMPP server {self.address} lost"))
        self._on_lost(was_up and not self.closing, why)

    def abort_session(self) -> None:
        """Drop the connection at once (the disconnect handler resets the session state)."""
        self._drop()
        if self.session:  # no disconnect event came (no socket any more): reset by hand
            self._on_disconnected("aborted")

    def fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            _fail(p.future, exc)

    async def _keepalive(self) -> None:
        while self.session:
            await asyncio.sleep(self.options.ping_interval)  # cancelled when the session ends
            try:
                await self.ping(self.domain, self.options.ping_timeout)
            except TimeoutError:
                log.warning(
                    "%s: server did not answer a ping within %s s; reconnecting", self.bare, self.options.ping_timeout
                )
                self._drop()
                return
            except RemoteError:
                continue

    async def close(self) -> None:
        """Log out (unavailable presence, end of stream) and end every task of the transport."""
        self.closing = True
        client = self.client
        if client is not None and self.session:
            client.write('<presence type="unavailable"/>')
            client.flush()
            with contextlib.suppress(Exception):  # a timeout too: dispose() aborts the connection
                await asyncio.wait_for(client.disconnect(wait=1.0), 2.0)
        self.session = False
        await self.dispose()
        self.fail_pending(XmppConnectionError(f"{self.bare}: closed"))
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ sending

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """A background task of the transport (cancelled on close; its failure is logged)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s: background task failed: %s", self.bare, exc, exc_info=exc)

    def write(self, data: str) -> None:
        client = self.client
        if client is None or not client.write(data):
            raise XmppConnectionError(f"{self.bare}: not connected to the XMPP server {self.address}")

    def next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    def expect(self, iq_id: str, expect_from: str | None, interim: Interim | None = None) -> asyncio.Future[Element]:
        """The future of the answer to the IQ ``iq_id`` (to be written by the caller), from ``expect_from``."""
        fut: asyncio.Future[Element] = self.loop.create_future()
        self._pending[iq_id] = _Pending(fut, expect_from, interim)
        return fut

    def forget(self, iq_id: str) -> None:
        """No longer wait for the answer to ``iq_id`` (its future is cancelled if still waiting)."""
        pending = self._pending.pop(iq_id, None)
        if pending is not None and not pending.future.done():
            pending.future.cancel()

    async def iq(
        self, head: str, body: str, expect_from: str | None, timeout: float | None = None, what: str = ""
    ) -> Element:
        """Send ``head + id + body`` and wait (at most ``timeout`` s) for the result; IqError on an error."""
        iq_id = self.next_id()
        fut = self.expect(iq_id, expect_from)
        try:
            self.write(head + iq_id + body)
            reply = await (fut if timeout is None else asyncio.wait_for(fut, timeout))
        finally:
            self._pending.pop(iq_id, None)
        if reply.get("type") == "error":
            cond, text = rpc.error_condition(reply)
            raise IqError(cond, text, what)
        return reply

    async def ping(self, jid: str, timeout: float, what: str = "ping") -> None:
        """XEP-0199 ping of ``jid`` (the server: our domain), answered within ``timeout`` s."""
        frm = None if jid == self.domain else jid
        await self.iq(f'<iq type="get" to="{escape_attr(jid)}" id="', PING_BODY, frm, timeout, what)

    async def pubsub_iq(self, body: str, what: str, timeout: float | None, iq_type: str = "set") -> Element:
        """An IQ to the pubsub service (``body``: from the id on, see :mod:`.pubsub`)."""
        head = self.pubsub_head if iq_type == "set" else pubsub.iq_head(self.pubsub, iq_type)
        return await self.iq(head, body, self.pubsub, timeout, what)

    async def pubsub_set(self, body: str, what: str) -> Element:
        """A pubsub set (node creation, a first publish) retried with backoff while the answer is
        one of :data:`TRANSIENT_PUBSUB`; at most :data:`PUBSUB_ATTEMPTS` attempts."""
        # jitter 0.5: sessions creating nodes at the same moment spread out
        pauses = backoff(0.02, 1.0, jitter=0.5, attempts=PUBSUB_ATTEMPTS - 1)
        while True:
            try:
                return await self.pubsub_iq(body, what, self.timeout)
            except IqError as exc:
                pause = next(pauses, None)
                if exc.condition not in TRANSIENT_PUBSUB or pause is None:
                    raise
                log.debug("%s: %s answered %s; retrying in %.0f ms", self.bare, what, exc.condition, pause * 1e3)
            await asyncio.sleep(pause)

    def check_size(self, data: str, what: str, around: int = 0) -> None:
        """ValueError naming ``what`` if ``data``, with ``around`` bytes of stanza around it, is
        larger than the server's ``max_stanza_size`` (0: none known): refused here, not by the
        server (which would drop the connection)."""
        limit = self.options.max_stanza_size - around
        if not self.options.max_stanza_size or len(data) <= limit // 4:  # UTF-8: at most 4 bytes a character
            return
        size = len(data.encode())
        if size > limit:
            raise ValueError(
                f"{what} is {size} bytes, more than max_stanza_size ({self.options.max_stanza_size}) of the XMPP server"
            )

    def write_or_drop(self, data: str) -> None:
        """Write, or nothing if the connection is gone (an answer: the peer's deadline handles it;
        a copy of a tracked publish: written again on reconnect)."""
        if self.client is not None:
            self.client.write(data)

    def reply_empty(self, xml: Element) -> None:
        to, iq_id = reply_address(xml, self.domain)
        self.write_or_drop(f'<iq type="result" to="{to}" id="{iq_id}"/>')

    def fleet_module(self, jid: str) -> str | None:
        """The module name of ``jid`` if it is a session of a module of the fleet (our domain and
        resource, a trusted account), else None."""
        bare, _, resource = jid.partition("/")
        local, _, domain = bare.partition("@")
        return local if local and domain == self.domain and resource == self.resource and self.trusted(bare) else None

    # ------------------------------------------------------------------ receiving

    def _on_iq(self, xml: Element) -> bool:
        typ = xml.get("type")
        if typ == "result" or typ == "error":
            iq_id = xml.get("id", "")
            pending = self._pending.get(iq_id)
            if pending is None:
                return iq_id.startswith(self._id_prefix)  # a late answer to something finished: drop
            frm = xml.get("from")
            if pending.expect_from is not None and frm is not None and frm != pending.expect_from:
                log.warning(
                    "%s: ignored an answer to %s from %s (expected %s)", self.bare, iq_id, frm, pending.expect_from
                )
            elif pending.interim is None or typ != "result" or not pending.interim(xml):
                self._answered(iq_id, xml)
            return True
        if typ == "set":
            roster = xml.find(Q_ROSTER)
            if roster is not None:
                frm = xml.get("from")
                if frm is None or frm == self.bare:  # only the server pushes our roster
                    self._on_roster_push(xml, roster)
                    return True
        elif typ == "get" and xml.find(Q_PING) is not None:
            self.reply_empty(xml)
            return True
        return self._route_iq(xml)

    def _on_oversized(self, xml: Element, problem: str) -> None:
        """A stanza beyond the limits (see :mod:`.limits`): an error answer where one is due,
        else dropped; one rate-limited log line either way. Nothing recursive ever sees it."""
        frm = xml.get("from", "")
        typ = xml.get("type")
        self.limited.warning("oversized", "%s: refused a stanza from %s: %s", self.bare, frm or "the server", problem)
        if xml.tag != Q_IQ:
            return
        iq_id = xml.get("id", "")
        if typ in ("get", "set"):
            to, iq_id = reply_address(xml)
            first = xml[0].tag if len(xml) else ""
            if typ == "set" and first in (rpc.Q_QUERY, rpc.Q_COMPACT_CALL):
                reply = rpc.fault(to, iq_id, describe(ValueError(f"call refused: the stanza is {problem}")))
            else:
                reply = rpc.iq_error(to, iq_id, "policy-violation", "modify", 400, f"stanza {problem}")
            self.write_or_drop(reply)
            return
        pending = self._pending.get(iq_id)
        if pending is not None and (pending.expect_from is None or frm == pending.expect_from):
            self._answered(iq_id, RemoteError(f"the answer from {frm or 'the server'} is {problem}"))

    def _answered(self, iq_id: str, answer: Element | Exception) -> None:
        """The IQ ``iq_id`` we wait for is answered (or failed): its waiter gets it."""
        future = self._pending.pop(iq_id).future
        if isinstance(answer, Exception):
            _fail(future, answer)
        elif not future.done():
            future.set_result(answer)


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning if nobody awaits it


def reply_address(xml: Element, default: str = "") -> tuple[str, str]:
    """Where the answer to the request ``xml`` goes: its sender and its id, escaped for an attribute."""
    return escape_attr(xml.get("from", default)), escape_attr(xml.get("id", ""))


def _roster_items(query: Element) -> list[str]:
    """Bare JIDs of the roster items with a subscription (``none``: a pending request, not the fleet)."""
    return [
        item.get("jid", "").partition("/")[0]
        for item in query
        if item.get("subscription") in ("both", "to", "from") and item.get("jid")
    ]
