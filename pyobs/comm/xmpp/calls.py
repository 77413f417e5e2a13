"""Remote procedure calls (``jabber:iq:rpc``, and the compact envelope between pyobs-comm modules).

:class:`CallServer` owns the calls we are serving (each a task of the link; cancels of them go
through the core). :class:`CallClient` owns our calls waiting for an answer: where an announced
``methodTimeout`` and progress notices go (the IQ futures are the link's).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.comm.errors import describe, rebuild
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import ForbiddenError, RemoteError, UnknownMethodError

from ..calls import Call, CancelOutcome, ProgressSink
from ..transport import Extend, TransportHandler
from . import control, rpc
from .link import Interim, Link, XmppConnectionError, log, reply_address
from .peers import PeerTable
from .values import DecodeError, EncodeError, escape_attr


class CallServer:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.handler: TransportHandler | None = None

    def _reply(self, text: str) -> None:
        """Answer a call; if the connection is gone, one log line (the caller's deadline handles it)."""
        try:
            self.link.write(text)
        except XmppConnectionError:
            log.warning("%s: could not answer a call: not connected", self.link.bare)

    def _refuse(self, reply: str, kind: str, what: str, *args: object) -> None:
        """Answer a call we do not serve with ``reply``; a rate-limited log line of ``kind`` says ``what``."""
        self.link.limited.warning(kind, "%s: " + what, self.link.bare, *args)
        self._reply(reply)

    def _caller(self, xml: Element, what: str) -> tuple[str, str, str] | None:
        """(reply address, IQ id, the caller's name) of a request from the fleet; else it is refused
        as ``forbidden`` and None."""
        frm = xml.get("from", "")
        to, iq_id = reply_address(xml)
        bare = frm.partition("/")[0]
        if not self.link.trusted(bare):
            reply = rpc.iq_error(to, iq_id, "forbidden", "auth", 403, "not a member of this fleet")
            self._refuse(reply, f"untrusted-{what}", "refused a %s from %s: not in the fleet", what, frm)
            return None
        return to, iq_id, self.link.sender_name(bare)

    def on_call(self, xml: Element, query: Element) -> None:
        caller = self._caller(xml, "call")
        if caller is None:
            return
        to, iq_id, sender = caller
        frm = xml.get("from", "")
        method = rpc.peek_method(query)
        handler = self.handler
        if not method:
            reply = rpc.fault(to, iq_id, describe(ValueError("call without <methodName>")))
            return self._refuse(reply, "no-method", "rejected a call from %s without a method name", frm)
        if handler is None or handler.method(method) is None:
            reply = rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, f"no method {method[:100]}", query)
            return self._refuse(reply, "unknown-method", "%s called unknown method %r", sender, method[:100])
        # progress goes to callers that say on the call that they take it (a pyobs-comm caller
        # of a pyobs-comm callee; not known from discovery, which may still be under way)
        progress = self._progress_sink(to, iq_id) if query.get("progress") == "1" else None
        self.link.spawn(self._serve(handler, sender, to, iq_id, query, method, progress))

    def _progress_sink(self, to: str, iq_id: str) -> ProgressSink:
        """Sends progress of the call ``iq_id`` to ``to`` (escaped) as messages."""
        prefix = control.progress_prefix(to, iq_id)
        write = self.link.write

        def send(seq: int, fraction: float | None, message: str) -> None:
            write(prefix + str(seq) + control.progress_rest(fraction, message))

        return send

    async def _serve(
        self,
        handler: TransportHandler,
        sender: str,
        to: str,
        iq_id: str,
        query: Element,
        method: str,
        progress: ProgressSink | None = None,
    ) -> None:
        link = self.link
        compact = query.tag == rpc.Q_COMPACT_CALL
        try:
            name, args = rpc.parse_compact_call(query) if compact else rpc.parse_call(query)
        except (rpc.RpcFormatError, DecodeError) as exc:
            reply = rpc.fault(to, iq_id, describe(ValueError(str(exc))))
            why = "rejected a garbled call of %s() from %s: %s"
            return self._refuse(reply, "garbled-call", why, method[:100], sender, exc)

        def announce(seconds: float) -> None:
            self._reply(rpc.method_timeout(to, iq_id, seconds))

        try:
            # the key a cancel names: the caller's full JID (server-stamped) and the call's id
            result = await handler.handle_call(sender, name, args, announce, True, (to, iq_id), progress)
            reply = rpc.compact_result(to, iq_id, result) if compact else rpc.result(to, iq_id, result)
        except UnknownMethodError as exc:
            reply = rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, str(exc), query)
        except EncodeError as exc:
            log.error("%s: cannot send the result of %s(): %s", link.bare, name, exc)
            reply = rpc.fault(to, iq_id, describe(TypeError(f"{name}() returned a value that cannot be sent: {exc}")))
        except Exception as exc:
            if isinstance(exc, TypeError):
                link.limited.warning(
                    "bad-args", "%s: rejected a call of %s() from %s: %s", link.bare, name, sender, exc
                )
            else:
                log.info("%s: %s() called by %s raised %s: %s", link.bare, name, sender, type(exc).__name__, exc)
            reply = rpc.fault(to, iq_id, describe(exc))
        try:
            link.check_size(reply, f"the answer of {method}()")
        except ValueError as exc:
            log.warning("%s: %s for %s", link.bare, exc, sender)
            reply = rpc.fault(to, iq_id, describe(exc))
        self._reply(reply)

    def on_cancel(self, xml: Element, el: Element) -> None:
        # the caller is named as on_call names it: the core finds the call under that name
        caller = self._caller(xml, "cancel")
        if caller is None:
            return
        to, iq_id, sender = caller
        try:
            call, wait = control.parse_cancel(el)
        except control.ControlFormatError as exc:
            log.warning("%s: rejected a cancel from %s: %s", self.link.bare, xml.get("from", ""), exc)
            self._reply(rpc.iq_error(to, iq_id, "bad-request", "modify", 400, str(exc)))
            return
        self.link.spawn(self._cancel_served(sender, to, iq_id, escape_attr(call), wait))

    async def _cancel_served(self, sender: str, to: str, iq_id: str, call: str, wait: float) -> None:
        handler = self.handler
        outcome = CancelOutcome.UNKNOWN if handler is None else await handler.cancel_call(sender, (to, call), wait)
        self._reply(control.cancel_result(to, iq_id, outcome))


class CallClient:
    def __init__(self, link: Link, peers: PeerTable) -> None:
        self.link = link
        self.peers = peers
        #: our calls that take progress notices: IQ id → (callee's full JID, the caller's handle)
        self._progress: dict[str, tuple[str, Call]] = {}

    def _interim(self, extend: Extend, frm: str) -> Interim:
        """Sees the answers to a call before they count: a ``methodTimeout`` moves its deadline."""

        def interim(xml: Element) -> bool:
            query = xml.find(rpc.Q_QUERY)
            el = query.find(rpc.Q_TIMEOUT) if query is not None else None
            if el is None:
                return False
            text = "".join(el.itertext()).strip()
            try:
                seconds = float(text)
            except ValueError:
                self.link.limited.warning(
                    "bad-timeout", "%s: ignored a methodTimeout without a number from %s: %r", self.link.bare, frm,
                    text[:40],
                )  # fmt: skip
                return True
            extend(seconds)  # the core caps it (max_call_timeout) and refuses non-finite ones
            return True

        return interim

    def on_progress(self, xml: Element, el: Element) -> None:
        frm = xml.get("from")
        try:
            call, seq, fraction, message = control.parse_progress(el)
        except control.ControlFormatError as exc:
            log.warning("%s: dropped a progress notice from %s: %s", self.link.bare, frm, exc)
            return
        entry = self._progress.get(call)
        if entry is None:
            return  # the call is over: a late notice
        jid, handle = entry
        if frm != jid:
            log.warning("%s: dropped a progress notice for a call to %s from %s", self.link.bare, jid, frm)
            return
        handle.progress_received(seq, fraction, message)

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        state = self.peers.get(peer)
        if state is None or state.info is None or not state.info.call_control:
            return CancelOutcome.UNSUPPORTED  # a pyobs-core module: it has no way to cancel a call
        reply = await self.link.iq(
            f'<iq type="set" to="{escape_attr(state.jid)}" id="', control.cancel_body(str(wire_id), wait),
            state.jid, None, f"cancel of a call to {peer}",
        )  # fmt: skip
        return control.parse_cancel_result(reply)

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, handle: Call | None = None
    ) -> Any:
        link = self.link
        state = self.peers.get(peer)
        jid = state.jid if state is not None else f"{peer}@{link.domain}/{link.resource}"
        prefix = rpc.call_prefix(jid)
        name = method.name
        # pyobs-comm peers take the compact envelope; everybody else (pyobs-core) jabber:iq:rpc
        info = state.info if state is not None else None
        try:
            if info is not None and info.compact_calls:
                # to a peer with call control: mark that we take progress notices of the call
                body = rpc.compact_call_body(name, info.call_control)
                params = rpc.encode_values(args)
                end = rpc.COMPACT_CALL_END
            else:
                body = rpc.call_body(name)
                params = rpc.encode_params(args)
                end = rpc.CALL_END
        except EncodeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        iq_id = link.next_id()
        link.check_size(prefix + iq_id + body + params + end, f"call {peer}.{name}()")
        fut = link.expect(iq_id, jid, self._interim(extend, jid))
        if handle is not None:
            handle.wire_id = iq_id
            self._progress[iq_id] = (jid, handle)
        try:
            link.write(prefix + iq_id + body + params + end)
            reply = await fut
        except XmppConnectionError as exc:
            raise XmppConnectionError(f"call {peer}.{name}() failed: {exc}") from None
        finally:
            link.forget(iq_id)
            if handle is not None:
                del self._progress[iq_id]
        if reply.get("type") == "error":
            cond, text = rpc.error_condition(reply)
            if cond == "item-not-found":
                raise UnknownMethodError(f"module '{peer}' has no method '{name}'")
            if cond == "forbidden":
                raise ForbiddenError(f"call {peer}.{name}() forbidden{f': {text}' if text else ''}")
            if cond in ("service-unavailable", "recipient-unavailable", "remote-server-not-found"):
                if state is not None and not state.gone:
                    link.spawn(self.peers.check(state))  # gone without a word? (see PeerTable.check)
                raise RemoteError(f"cannot call {peer}.{name}(): module '{peer}' is offline")
            raise RemoteError(f"could not call {peer}.{name}(): {cond}{f' ({text})' if text else ''}")
        try:
            answer = rpc.parse_reply(reply)
        except (rpc.RpcFormatError, DecodeError, RecursionError) as exc:
            raise RemoteError(f"{peer}.{name}() sent an invalid reply: {exc}") from None
        if answer.fault is not None:
            raise rebuild(answer.fault, f"{peer}.{name}()")
        return answer.value
