"""Remote procedure calls (``jabber:iq:rpc``): serving calls to us, and calling methods of peers."""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.comm.errors import describe, rebuild
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import ForbiddenError, RemoteError, UnknownMethodError

from ..transport import Extend, TransportHandler
from . import rpc
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
            log.warning("%s: ignored a methodTimeout without a number from %s: %r", self.bare, frm, text[:40])
            return
        if pending.extend is not None and seconds >= 0:
            pending.extend(seconds)

    # ================================================================== calls: callee

    def _on_call(self, xml: Element, query: Element) -> None:
        frm = xml.get("from", "")
        to = escape_attr(frm)
        iq_id = escape_attr(xml.get("id", ""))
        method = rpc.peek_method(query)
        handler = self._handler
        sender = frm.partition("@")[0] if "@" in frm else frm
        if not method:
            log.warning("%s: rejected a call from %s without a method name", self.bare, frm)
            self._send_reply(rpc.fault(to, iq_id, describe(ValueError("call without <methodName>"))))
            return
        if handler is None or handler.method(method) is None:
            log.warning("%s: %s called unknown method %r", self.bare, sender, method[:100])
            self._send_reply(
                rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, f"no method {method[:100]}", query)
            )
            return
        self._spawn(self._serve(handler, sender, to, iq_id, query, method))

    async def _serve(
        self, handler: TransportHandler, sender: str, to: str, iq_id: str, query: Element, method: str
    ) -> None:
        compact = query.tag == rpc.Q_COMPACT_CALL
        try:
            name, args = rpc.parse_compact_call(query) if compact else rpc.parse_call(query)
        except (rpc.RpcFormatError, DecodeError) as exc:
            log.warning("%s: rejected a garbled call of %s() from %s: %s", self.bare, method, sender, exc)
            self._send_reply(rpc.fault(to, iq_id, describe(ValueError(str(exc)))))
            return

        def announce(seconds: float) -> None:
            self._send_reply(rpc.method_timeout(to, iq_id, seconds))

        try:
            result = await handler.handle_call(sender, name, args, announce)
            reply = rpc.compact_result(to, iq_id, result) if compact else rpc.result(to, iq_id, result)
        except UnknownMethodError as exc:
            reply = rpc.iq_error(to, iq_id, "item-not-found", "cancel", 404, str(exc), query)
        except EncodeError as exc:
            log.error("%s: cannot send the result of %s(): %s", self.bare, name, exc)
            reply = rpc.fault(to, iq_id, describe(TypeError(f"{name}() returned a value that cannot be sent: {exc}")))
        except Exception as exc:
            if isinstance(exc, TypeError):
                log.warning("%s: rejected a call of %s() from %s: %s", self.bare, name, sender, exc)
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

    # ================================================================== calls: caller

    async def call(self, peer: str, method: MethodSpec, args: list[Any], extend: Extend) -> Any:
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
                body = self._compact_body.get(name)
                if body is None:
                    body = self._compact_body[name] = rpc.compact_call_body(name)
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
        self._pending[iq_id] = _Pending(fut, jid, extend)
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
