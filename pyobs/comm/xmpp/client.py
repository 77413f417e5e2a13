"""The slixmpp client underneath the transport: login, TLS, SASL and the stream; nothing else.

The one adapter to slixmpp's internals: the names it relies on are :data:`SLIXMPP_PRIVATE` (why
each) and :data:`SLIXMPP_INTERNALS`; tests/xmpp/test_slixmpp_adapter.py fails when slixmpp changes
them. A received stanza within :class:`~.limits.StanzaLimits` goes to the transport's raw handlers
first; only what they do not take becomes a slixmpp stanza object (stream features, SASL, bind, …).
One beyond the limits goes to ``on_oversized`` and nowhere else. Nothing here changes slixmpp or its
loggers for anyone else in the process (fast SCRAM: :meth:`Client._scope_fast_scram`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.features.feature_mechanisms.stanza import Challenge
from slixmpp.util.sasl.mechanisms import SCRAM

from .limits import StanzaLimits, stanza_problem

#: private slixmpp names this adapter uses: XMLStream._spawn_event gets every stanza of the stream
#: (overridden: pyobs stanzas skip slixmpp's stanza objects, 3.5-9 µs per stanza instead of 45-127
#: µs through slixmpp's public handlers, bench/slixmpp_dispatch.py; and the stanza bounds apply
#: before slixmpp sees anything, which its public incoming_filter cannot do: it cannot drop);
#: _run_out_filters is the send-queue task, which nothing public ends (:meth:`Client.stop_send_task`)
SLIXMPP_PRIVATE = ("_spawn_event", "_run_out_filters")

#: public-looking but undocumented slixmpp names the fast SCRAM path relies on: the
#: feature_mechanisms plugin's chosen mechanism ``mech``, and ``SCRAM.Hi(text, salt, iterations)``
#: and ``SCRAM.hash`` on it
SLIXMPP_INTERNALS = ("feature_mechanisms.mech", "SCRAM.Hi", "SCRAM.hash")

Q_IQ = "{jabber:client}iq"
Q_MESSAGE = "{jabber:client}message"
Q_PRESENCE = "{jabber:client}presence"

RawHandler = Callable[[Element], bool]
OversizedHandler = Callable[[Element, str], None]

#: salted passwords a client keeps for its reconnects (one per server salt; a server has one)
SALTED_PASSWORDS_KEPT = 4


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_file: str | None, verify: bool = True) -> ssl.SSLContext:
    """A verifying client context (loading CA certificates takes tens of ms: once per process);
    with ``verify=False`` (pyobs-core's ``ignore_cert_errors``) one that accepts any certificate."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = verify
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    return context


class Client(slixmpp.ClientXMPP):  # type: ignore[misc]
    """A ClientXMPP whose pyobs stanzas go to raw handlers and whose writes can bypass its queue."""

    #: derive SCRAM's salted password with hashlib (C) instead of slixmpp's Python loop, and keep it
    #: for reconnects; bench/scram_login.py measures the difference
    fast_scram = True

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        on_iq: RawHandler,
        on_message: RawHandler,
        on_presence: RawHandler,
        on_oversized: OversizedHandler | None = None,
        use_tls: bool = True,
        direct_tls: bool = False,
        ca_file: str | None = None,
        allow_plain: bool = False,
        ignore_cert_errors: bool = False,
    ) -> None:
        self._ca_file = ca_file
        self._verify = not ignore_cert_errors
        if ca_file is not None and not Path(ca_file).is_file():
            raise FileNotFoundError(f"ca_file {ca_file!r} does not exist")
        super().__init__(
            jid,
            password,
            # a placeholder; the verifying context is built when TLS is actually started
            ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
            plugin_config={
                "feature_mechanisms": {
                    # SCRAM never reveals the password, so it is fine without TLS; PLAIN only if allowed
                    "unencrypted_scram": True,
                    "unencrypted_plain": allow_plain,
                }
            },
        )
        #: a session is bound and started (slixmpp's own flag is private): pyobs stanzas and raw
        #: writes only then
        self.session_up = False
        for name in ("session_start", "session_resumed"):
            self.add_event_handler(name, self._on_session_up)
        for name in ("session_end", "disconnected"):
            self.add_event_handler(name, self._on_session_down)
        self._salted_passwords: dict[tuple[str, bytes, bytes, int], bytes] = {}
        if self.fast_scram:
            self.add_filter("in", self._scope_fast_scram)
        self._raw = {Q_IQ: on_iq, Q_MESSAGE: on_message, Q_PRESENCE: on_presence}
        self._on_oversized = on_oversized
        self.stanza_limits = StanzaLimits()
        self._out: list[str] = []
        self._batching = False
        self.enable_direct_tls = direct_tls
        self.enable_starttls = use_tls and not direct_tls
        self.enable_plaintext = not use_tls and not direct_tls
        self.whitespace_keepalive = False  # the transport pings with a deadline instead

    def get_ssl_context(self) -> ssl.SSLContext:
        self.ssl_context = _ssl_context(self._ca_file, self._verify)
        return self.ssl_context

    def _on_session_up(self, _event: Any) -> None:
        self.session_up = True

    def _on_session_down(self, _event: Any) -> None:
        self.session_up = False

    def _scope_fast_scram(self, stanza: Any) -> Any:
        """An incoming filter: when a SASL challenge arrives for a SCRAM mechanism of this client,
        give that one mechanism object a fast ``Hi`` (SCRAM's salted password, RFC 5802: PBKDF2
        with HMAC). slixmpp computes it in a Python loop, ~25 ms for 10,000 iterations; hashlib in
        C, and this client keeps the result for its reconnects. Only this client's mechanism
        object changes: other slixmpp clients in the process keep slixmpp's own."""
        if isinstance(stanza, Challenge):
            mech = self.plugin["feature_mechanisms"].mech
            hash_factory = getattr(mech, "hash", None)
            if isinstance(mech, SCRAM) and hash_factory is not None and "Hi" not in vars(mech):
                fast_hi = functools.partial(self._salted_password, hash_factory().name)
                setattr(mech, "Hi", fast_hi)  # noqa: B010  (this one object's method, on purpose)
        return stanza

    def _salted_password(self, hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        key = (hash_name, bytes(password), bytes(salt), int(iterations))
        salted = self._salted_passwords.get(key)
        if salted is None:
            if len(self._salted_passwords) >= SALTED_PASSWORDS_KEPT:
                self._salted_passwords.clear()
            salted = hashlib.pbkdf2_hmac(hash_name, key[1], key[2], key[3])
            self._salted_passwords[key] = salted
        return salted

    async def stop_send_task(self, timeout: float = 1.0) -> None:
        """End slixmpp's send-queue task (started by ``connect()``; nothing public ends it), so
        that a disposed client leaves nothing running. Waits at most ``timeout`` s for it."""
        task = getattr(self, "_run_out_filters", None)
        if isinstance(task, asyncio.Future) and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)

    def _spawn_event(self, xml: Element) -> None:
        problem = stanza_problem(xml, self.stanza_limits)
        if problem is not None:
            # nothing recursive may see it (slixmpp would deep-copy it, we would echo it)
            if self._on_oversized is not None:
                self._on_oversized(xml, problem)
            xml.clear()
            return
        raw = self._raw.get(xml.tag)
        if raw is not None and self.session_up and raw(xml):
            return
        super()._spawn_event(xml)

    def write(self, data: str) -> bool:
        """Write a serialised stanza to the socket, bypassing slixmpp's send queue; False when not
        connected. The first stanza of a loop iteration goes out at once (a single call or answer
        does not wait for the next iteration); those written after it in the same iteration are
        collected and go out together in the loop's next turn (one system call, and the server
        reads them at once: under load that is most of the cost of a call). Public asyncio only
        (bench/README.md: as fast as asking the loop whether anything else is due)."""
        transport = self.transport
        if transport is None or not self.session_up:
            return False
        if self._batching:
            self._out.append(data)
            return True
        self._batching = True
        asyncio.get_running_loop().call_soon(self._end_batch)
        transport.write(data.encode())
        return True

    def _end_batch(self) -> None:
        self._batching = False
        self.flush()

    def flush(self) -> None:
        """Write what :meth:`write` collected (also called before slixmpp writes itself)."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else "".join(out)
        out.clear()
        transport = self.transport
        if transport is not None:
            transport.write(data.encode())

    def connection_lost(self, exception: BaseException | None) -> None:
        self._out.clear()  # stanzas of a dead session never go out on the next one
        self.session_up = False
        super().connection_lost(exception)

    def send_raw(self, data: str | bytes) -> None:
        self.flush()  # keep the order: e.g. our last stanzas before the stream's end
        super().send_raw(data)

    @property
    def encrypted(self) -> bool:
        return "starttls" in self.features or isinstance(self.socket, ssl.SSLObject | ssl.SSLSocket)
