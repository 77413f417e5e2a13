"""Remote procedure calls (``jabber:iq:rpc``): serving calls to us, and calling methods of peers."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.comm.errors import describe, rebuild
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import ForbiddenError, RemoteError, UnknownMethodError

from ..calls import Call, CancelOutcome, ProgressSink
from ..transport import Extend, TransportHandler
from . import control, rpc
from .base import (
    XmppBase,
    XmppConnectionError,
    _Pending,
    log,
    too_large,
)
from .values import DecodeError, EncodeError, escape_attr


class CallsMixin(XmppBase):
    def _extend(self, pending: _Pending, el: Element, frm: str | None) -> None:
        text = "".join(el.itertext()).strip()
        try:
            seconds = float(text)
        except ValueError:
            self._limited.warning(
                "bad-timeout", "%s: ignored a methodTimeout without a number from %s: %r", self.bare, frm, text[:40]
            )
            return
        if pending.extend is not None:
            pending.extend(seconds)  # the core caps it (max_call_timeout) and refuses non-finite ones

    # ================================================================== calls: callee

    def _on_call(self, xml: Element, query: Element) -> None:
        frm = xml.get("from", "")
        to = escape_attr(frm)
        iq_id = escape_attr(xml.get("id", ""))
        bare = frm.partition("/")[0]
        if not self._trusted(bare):
            self._limited.warning("untrusted-call", "%s: refused a call from %s: not in the fleet", self.bare, frm)
            self._send_reply(rpc.iq_error(to, iq_id, "forbidden", "auth", 403, "not a member of this fleet"))
            return
        method = rpc.peek_method(query)
        handler = self._handler
        sender = self._sender_name(bare)
        if not method:
            self._limited.warning("no-method", "%s: rejected a call from %s without a method name", self.bare, frm)
            self._send_reply(rpc.fault(to, iq_id, describe(ValueError("call without <methodName>"))))
            return
        if handler is None or handler.method(method) is None:
            self._limited.warning("unknown-method", "%s: %s called unknown method %r", self.bare, sender, method[:100])
            self._send_reply(
                rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, f"no method {method[:100]}", query)
            )
            return
        # progress goes to callers that say on the call that they take it (a pyobs-comm caller
        # of a pyobs-comm callee; not known from discovery, which may still be under way)
        progress = self._progress_sink(to, iq_id) if query.get("progress") == "1" else None
        self._spawn(self._serve(handler, sender, to, iq_id, query, method, progress))

    def _progress_sink(self, to: str, iq_id: str) -> ProgressSink:
        """Sends progress of the call ``iq_id`` to ``to`` (escaped) as messages."""
        prefix = control.progress_prefix(to, iq_id)

        def send(seq: int, fraction: float | None, message: str) -> None:
            self._write(prefix + str(seq) + control.progress_rest(fraction, message))

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
        compact = query.tag == rpc.Q_COMPACT_CALL
        try:
            name, args = rpc.parse_compact_call(query) if compact else rpc.parse_call(query)
        except (rpc.RpcFormatError, DecodeError) as exc:
            self._limited.warning(
                "garbled-call", "%s: rejected a garbled call of %s() from %s: %s", self.bare, method[:100], sender, exc
            )
            self._send_reply(rpc.fault(to, iq_id, describe(ValueError(str(exc)))))
            return

        def announce(seconds: float) -> None:
            self._send_reply(rpc.method_timeout(to, iq_id, seconds))

        try:
            # the key a cancel names: the caller's full JID (server-stamped) and the call's id
            result = await handler.handle_call(sender, name, args, announce, True, (to, iq_id), progress)
            reply = rpc.compact_result(to, iq_id, result) if compact else rpc.result(to, iq_id, result)
        except UnknownMethodError as exc:
            reply = rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, str(exc), query)
        except EncodeError as exc:
            log.error("%s: cannot send the result of %s(): %s", self.bare, name, exc)
            reply = rpc.fault(to, iq_id, describe(TypeError(f"{name}() returned a value that cannot be sent: {exc}")))
        except Exception as exc:
            if isinstance(exc, TypeError):
                self._limited.warning(
                    "bad-args", "%s: rejected a call of %s() from %s: %s", self.bare, name, sender, exc
                )
            else:
                log.info("%s: %s() called by %s raised %s: %s", self.bare, name, sender, type(exc).__name__, exc)
            reply = rpc.fault(to, iq_id, describe(exc))
        if self.max_stanza_size:
            size = too_large(reply, self.max_stanza_size)
            if size:
                log.warning("%s: the answer to %s() for %s is %d bytes, too large", self.bare, method, sender, size)
                problem = f"the answer of {method}() is {size} bytes, more than the server's max_stanza_size"
                reply = rpc.fault(to, iq_id, describe(ValueError(problem)))
        self._send_reply(reply)

    def _send_reply(self, text: str) -> None:
        try:
            self._write(text)
        except XmppConnectionError:
            log.warning("%s: could not answer a call: not connected", self.bare)

    def _on_cancel(self, xml: Element, el: Element) -> None:
        frm = xml.get("from", "")
        to = escape_attr(frm)
        iq_id = escape_attr(xml.get("id", ""))
        handler = self._handler
        try:
            call, wait = control.parse_cancel(el)
        except control.ControlFormatError as exc:
            log.warning("%s: rejected a cancel from %s: %s", self.bare, frm, exc)
            self._send_reply(rpc.iq_error(to, iq_id, "bad-request", "modify", 400, str(exc)))
            return
        if handler is None:
            self._send_reply(control.cancel_result(to, iq_id, CancelOutcome.UNKNOWN))
            return
        sender = frm.partition("@")[0] if "@" in frm else frm
        self._spawn(self._cancel_served(handler, sender, to, iq_id, escape_attr(call), wait))

    async def _cancel_served(
        self, handler: TransportHandler, sender: str, to: str, iq_id: str, call: str, wait: float
    ) -> None:
        outcome = await handler.cancel_call(sender, (to, call), wait)
        self._send_reply(control.cancel_result(to, iq_id, outcome))

    def _on_progress(self, xml: Element, el: Element) -> None:
        frm = xml.get("from")
        try:
            call, seq, fraction, message = control.parse_progress(el)
        except control.ControlFormatError as exc:
            log.warning("%s: dropped a progress notice from %s: %s", self.bare, frm, exc)
            return
        pending = self._pending.get(call)
        if pending is None or pending.control is None:
            return  # the call is over: a late notice
        if frm != pending.expect_from:
            log.warning("%s: dropped a progress notice for a call to %s from %s", self.bare, pending.expect_from, frm)
            return
        pending.control.progress_received(seq, fraction, message)

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        state = self._peers.get(peer)
        if state is None or state.info is None or not state.info.call_control:
            return CancelOutcome.UNSUPPORTED  # a pyobs-core module: it has no way to cancel a call
        reply = await self._iq(
            f'<iq type="set" to="{escape_attr(state.jid)}" id="', control.cancel_body(str(wire_id), wait),
            state.jid, None, f"cancel of a call to {peer}",
        )  # fmt: skip
        return control.parse_cancel_result(reply)

    # ================================================================== calls: caller

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, handle: Call | None = None
    ) -> Any:
        state = self._peers.get(peer)
        jid = state.jid if state is not None else f"{peer}@{self.domain}/{self.resource}"
        prefix = self._call_prefix.get(jid)
        if prefix is None:
            prefix = self._call_prefix[jid] = rpc.call_prefix(jid)
        name = method.name
        # pyobs-comm peers take the compact envelope; everybody else (pyobs-core) jabber:iq:rpc
        compact = state is not None and state.info is not None and state.info.compact_calls
        try:
            if compact:
                assert state is not None and state.info is not None
                # to a peer with call control: mark that we take progress notices of the call
                progress = state.info.call_control
                key = (name, progress)
                body = self._compact_body.get(key)
                if body is None:
                    body = self._compact_body[key] = rpc.compact_call_body(name, progress)
                params = rpc.encode_values(args)
                end = rpc.COMPACT_CALL_END
            else:
                body = self._call_body.get(name)
                if body is None:
                    body = self._call_body[name] = rpc.call_body(name)
                params = rpc.encode_params(args)
                end = rpc.CALL_END
        except EncodeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        assert self._loop is not None
        iq_id = self._next_id()
        if self.max_stanza_size:
            size = too_large(prefix + iq_id + body + params + end, self.max_stanza_size)
            if size:
                raise ValueError(
                    f"call {peer}.{name}() is {size} bytes, more than max_stanza_size ({self.max_stanza_size}) "
                    f"of the XMPP server"
                )
        fut: asyncio.Future[Element] = self._loop.create_future()
        self._pending[iq_id] = _Pending(fut, jid, extend, handle)
        if handle is not None:
            handle.wire_id = iq_id
        try:
            self._write(prefix + iq_id + body + params + end)
            reply = await fut
        except XmppConnectionError as exc:
            raise XmppConnectionError(f"call {peer}.{name}() failed: {exc}") from None
        finally:
            self._pending.pop(iq_id, None)
        if reply.get("type") == "error":
            cond, text = rpc.error_condition(reply)
            if cond == "item-not-found":
                raise UnknownMethodError(f"module '{peer}' has no method '{name}'")
            if cond == "forbidden":
                raise ForbiddenError(f"call {peer}.{name}() forbidden{f': {text}' if text else ''}")
            if cond in ("service-unavailable", "recipient-unavailable", "remote-server-not-found"):
                if state is not None and self._peers.get(peer) is state:
                    self._spawn(self._check_peer(state))  # gone without a word? (see _check_peers)
                raise RemoteError(f"cannot call {peer}.{name}(): module '{peer}' is offline")
            raise RemoteError(f"could not call {peer}.{name}(): {cond}{f' ({text})' if text else ''}")
        try:
            answer = rpc.parse_reply(reply)
        except (rpc.RpcFormatError, DecodeError, RecursionError) as exc:
            raise RemoteError(f"{peer}.{name}() sent an invalid reply: {exc}") from None
        if answer.fault is not None:
            raise rebuild(answer.fault, f"{peer}.{name}()")
        return answer.value
