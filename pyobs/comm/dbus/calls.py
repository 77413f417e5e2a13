"""Method calls over D-Bus, both ways.

Incoming: checking a call against our method table, running it in the handler, replying with the
result or an ``org.pyobs.Error.*`` error, and announcing ``@timeout`` with ``CallTimeout`` signals.
Outgoing: encoding a call to a peer, extending its deadline on ``CallTimeout`` and turning error
replies back into exceptions.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message
from dbus_fast.validators import is_interface_name_valid, is_member_name_valid

from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import RemoteError, UnknownMethodError

from ..calls import Call, CancelOutcome, ProgressSink
from ..errors import RemoteException, describe, rebuild
from ..transport import Extend, NotConnected
from .base import (
    _ERROR,
    _NO_REPLY,
    _RETURN,
    _SIGNAL,
    BURST,
    BURST_WINDOW,
    DESCRIBE_SIGNATURE,
    E_GONE,
    E_INVALID_ARGS,
    E_UNKNOWN_METHOD,
    E_UNKNOWN_OBJECT,
    ERROR_PREFIX,
    ERROR_SIGNATURE,
    IFACE_PREFIX,
    MODULE_IFACE,
    PROPS_IFACE,
    DbusBase,
    _ignore_result,
    log,
)
from .codec import (
    EncodeError,
    Encoder,
    compile_type,
    error_name,
    needs_decoding,
    plain,
)
from .introspection import _HEADER, _Incoming


@dataclass
class _Outgoing:
    """A peer's method as we call it (caller side)."""

    spec: MethodSpec
    interface: str
    in_sig: str
    encoders: list[Encoder | None] | None
    out_sig: str
    decode: bool


class CallsMixin(DbusBase):
    """Serves calls to our methods and makes calls to peers."""

    def _on_call(self, msg: Message) -> Message | bool | None:
        iface = msg.interface
        member = msg.member or ""
        if iface is not None and iface.startswith("org.freedesktop.DBus."):
            if iface == "org.freedesktop.DBus.Introspectable" and member == "Introspect":
                return Message.new_method_return(msg, "s", [self._xml or f"{_HEADER}<node/>\n"])
            if iface == PROPS_IFACE:
                return self._on_properties(msg)
            return None  # Peer: dbus-fast answers Ping and GetMachineId
        if self._info is None:
            return Message.new_error(msg, E_UNKNOWN_OBJECT, f"module '{self.name}' is not online yet")
        if iface == MODULE_IFACE:
            if member == "Describe" and not msg.signature:
                return Message.new_method_return(msg, DESCRIBE_SIGNATURE, self._describe_body)
            if member == "Cancel" and msg.signature == "ud":
                return self._on_cancel(msg)
            if member == "GetModuleState" and not msg.signature:
                return Message.new_method_return(msg, "ss", list(self._module_state))
            return self._reject(msg, E_UNKNOWN_METHOD, f"{MODULE_IFACE} has no method {member}({msg.signature})")
        entry = self._incoming.get((iface, member)) if iface is not None else self._members.get(member)
        if entry is None:
            where = f"{iface}.{member}" if iface else member
            return self._reject(msg, E_UNKNOWN_METHOD, f"module '{self.name}' has no method {where}")
        sig = msg.signature
        if sig != entry.in_sig and sig not in entry.accepted:
            params = ", ".join(f"{p.name}: {compile_type(p.annotation)[0]}" for p in entry.spec.params)
            return self._reject(
                msg,
                E_INVALID_ARGS,
                f"{entry.spec.name}() takes signature '{entry.in_sig}' ({params}), got '{sig}'",
            )
        args = msg.body
        if entry.decode:
            args = [plain(a) for a in args]
        if entry.check:
            try:
                entry.spec.cast_args(args)
            except Exception as exc:  # CastError/TypeError naming the argument, or a dataclass refusing values
                return self._reject(msg, E_INVALID_ARGS, str(exc), exc)
        self._spawn(self._serve(msg, entry, args))
        return True

    def _reject(self, msg: Message, name: str, text: str, exc: BaseException | None = None) -> Message | bool:
        self._limited.warning(
            "rejected-call",
            "%s: rejected call %s.%s from %s: %s", self.name, msg.interface, msg.member, msg.sender, text,
        )  # fmt: skip
        if msg.flags & _NO_REPLY:
            return True
        if exc is None:
            exc = UnknownMethodError(text) if name == E_UNKNOWN_METHOD else TypeError(text)
        remote = describe(exc)
        return Message(
            message_type=_ERROR,
            reply_serial=msg.serial,
            destination=msg.sender,
            error_name=name,
            signature=ERROR_SIGNATURE,
            body=[text, remote.type, list(remote.bases)],
        )

    def _on_cancel(self, msg: Message) -> Message | bool:
        serial, wait = msg.body
        if not math.isfinite(wait) or wait < 0:
            return self._reject(msg, E_INVALID_ARGS, f"Cancel: wait must be a number of seconds >= 0, got {wait}")
        self._spawn(self._cancel_served(msg, serial, wait))
        return True

    async def _cancel_served(self, msg: Message, serial: int, wait: float) -> None:
        handler = self._handler
        caller = msg.sender or ""
        sender = self._owners.get(caller, caller)
        if handler is None:
            outcome = CancelOutcome.UNKNOWN
        else:  # the key a cancel names: the caller's unique connection name and the call's serial
            outcome = await handler.cancel_call(sender, (caller, serial), wait)
        self._send(Message.new_method_return(msg, "s", [outcome.value]))

    def _progress_sink(self, caller: str | None, serial: int) -> ProgressSink | None:
        """Sends progress of a call as CallProgress signals, with the flow control events have:
        dbus-fast takes a full socket for a broken connection, so after BURST signals in quick
        succession the next ones wait for a round trip to the bus daemon (which answers once it has
        read everything before); meanwhile each call's newer notices replace its older one."""
        if not caller:
            return None
        key = id(object())  # this call's place among the held notices

        def send(seq: int, fraction: float | None, message: str) -> None:
            bus = self._bus
            if bus is None:
                return
            held = self._progress_held
            if held is not None:  # the socket drains: the newest notice of this call goes next
                held[key] = lambda: send(seq, fraction, message)
                return
            msg = Message(
                message_type=_SIGNAL,
                destination=caller,
                path=self.path,
                interface=MODULE_IFACE,
                member="CallProgress",
                signature="uuds",
                body=[serial, seq, math.nan if fraction is None else fraction, message],
            )
            bus.send(msg).add_done_callback(_ignore_result)
            self._progress_paced()

        return send

    def _progress_paced(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._progress_burst_start > BURST_WINDOW:
            self._progress_burst_start, self._progress_burst = now, 0
        self._progress_burst += 1
        if self._progress_burst >= BURST and self._progress_held is None:
            self._progress_burst_start, self._progress_burst = now, 0
            self._progress_held = {}
            self._spawn(self._progress_drain())

    async def _progress_drain(self) -> None:
        try:
            await self._bus_request("GetId")
        except (RemoteError, TimeoutError) as exc:
            log.debug("%s: progress held back, the bus does not answer: %s", self.name, exc)
        held, self._progress_held = self._progress_held or {}, None
        for flush in held.values():
            flush()

    async def _serve(self, msg: Message, entry: _Incoming, args: list[Any]) -> None:
        handler = self._handler
        assert handler is not None
        caller = msg.sender
        sender = await self._caller(caller) if caller else ""

        def announce(seconds: float) -> None:
            self._send(
                Message(
                    message_type=_SIGNAL,
                    destination=caller,
                    path=self.path,
                    interface=MODULE_IFACE,
                    member="CallTimeout",
                    signature="ud",
                    body=[msg.serial, float(seconds)],
                )
            )

        try:
            progress = self._progress_sink(caller, msg.serial)
            key = (caller, msg.serial)
            result = await handler.handle_call(sender, entry.spec.name, args, announce, True, key, progress)
            if entry.out_sig:
                body = [result if entry.out_enc is None else entry.out_enc(result)]
                reply = Message(
                    message_type=_RETURN,
                    reply_serial=msg.serial,
                    destination=caller,
                    signature=entry.out_sig,
                    body=body,
                    validate=False,
                )
            else:
                reply = Message(message_type=_RETURN, reply_serial=msg.serial, destination=caller, validate=False)
        except Exception as exc:
            reply = self._error_reply(msg, exc)
        if msg.flags & _NO_REPLY:
            return
        bus = self._bus
        if bus is None:
            return
        try:
            bus.send(reply).add_done_callback(_ignore_result)
        except Exception as exc:  # the result does not fit the declared signature
            log.error("%s: cannot send the result of %s(): %s", self.name, entry.spec.name, exc)
            err = EncodeError(f"{entry.spec.name}() returned a value that cannot be sent over D-Bus: {exc}")
            bus.send(self._error_reply(msg, err)).add_done_callback(_ignore_result)

    def _error_reply(self, msg: Message, exc: BaseException) -> Message:
        remote = describe(exc)
        name = E_UNKNOWN_METHOD if isinstance(exc, UnknownMethodError) else error_name(remote.type)
        return Message(
            message_type=_ERROR,
            reply_serial=msg.serial,
            destination=msg.sender,
            error_name=name,
            signature=ERROR_SIGNATURE,
            body=[remote.message, remote.type, list(remote.bases)],
        )

    def _compile_out(self, spec: MethodSpec) -> _Outgoing:
        iface = IFACE_PREFIX + spec.interface.__name__
        if not is_interface_name_valid(iface) or not is_member_name_valid(spec.name):
            raise TypeError(f"{iface}.{spec.name} is no valid D-Bus interface/method name (use ASCII identifiers)")
        compiled = [compile_type(p.annotation) for p in spec.params]
        encoders = [e for _, e in compiled]
        out_sig = "" if spec.void else compile_type(spec.returns)[0]
        out = _Outgoing(
            spec=spec,
            interface=iface,
            in_sig="".join(s for s, _ in compiled),
            encoders=encoders if any(e is not None for e in encoders) else None,
            out_sig=out_sig,
            decode=needs_decoding(out_sig),
        )
        self._outgoing[id(spec)] = out
        return out

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, handle: Call | None = None
    ) -> Any:
        bus = self._bus
        if bus is None:
            raise NotConnected(f"cannot call {peer}.{method.name}(): not connected to the D-Bus bus")
        out = self._outgoing.get(id(method))
        if out is None or out.spec is not method:
            out = self._compile_out(method)
        encoders = out.encoders
        if encoders is None:
            body = args
        else:
            try:
                body = [a if e is None else e(a) for e, a in zip(encoders, args, strict=True)]
            except EncodeError as exc:
                raise TypeError(f"{method.name}(): {exc}") from None
        serial = bus.next_serial()
        msg = Message(
            destination=self._dest.get(peer) or self.peer_bus_name(peer),
            path=self.path,
            interface=out.interface,
            member=method.name,
            signature=out.in_sig,
            body=body,
            serial=serial,
            validate=False,
        )
        assert self._loop is not None
        fut: asyncio.Future[Message] = self._loop.create_future()

        def on_reply(reply: Message | None, err: Exception | None) -> None:
            if fut.done():
                return
            if reply is not None:
                fut.set_result(reply)
            else:
                fut.set_exception(
                    RemoteError(f"call {peer}.{method.name}() failed: connection to the D-Bus bus lost ({err})")
                )

        self._pending[serial] = (peer, extend, handle)
        if handle is not None:
            handle.wire_id = serial
        try:
            bus._call(msg, on_reply)
        except Exception as exc:
            self._pending.pop(serial, None)
            bus._method_return_handlers.pop(serial, None)
            raise TypeError(f"cannot send {peer}.{method.name}(): arguments do not fit '{out.in_sig}': {exc}") from None
        try:
            reply = await fut
        finally:
            self._pending.pop(serial, None)
            if not fut.done():
                bus._method_return_handlers.pop(serial, None)
        if reply.message_type is _RETURN:
            if not out.out_sig or not reply.body:
                return None
            value = reply.body[0]
            return plain(value) if out.decode or reply.signature != out.out_sig else value
        raise self._error(reply, peer, method.name)

    def _error(self, reply: Message, peer: str, method: str) -> BaseException:
        name = reply.error_name or ""
        body = reply.body
        where = f"{peer}.{method}()"
        if reply.signature == ERROR_SIGNATURE:
            return rebuild(RemoteException(body[1], body[0], tuple(body[2])), where)
        text = body[0] if body and isinstance(body[0], str) else ""
        if name in E_GONE:
            return RemoteError(f"call {where} failed: module '{peer}' went offline ({text})")
        if name == E_UNKNOWN_METHOD:
            return UnknownMethodError(f"{where}: {text}")
        if name == E_INVALID_ARGS:
            return TypeError(f"{where}: {text}")
        if name.startswith(ERROR_PREFIX):
            return rebuild(RemoteException(name[len(ERROR_PREFIX) :], text), where)
        return RemoteError(f"call {where} failed: {name}: {text}", original_type=name)

    def _on_call_timeout(self, msg: Message) -> None:
        bus = self._bus
        if bus is None or msg.destination != bus.unique_name or msg.signature != "ud":
            return
        serial, seconds = msg.body
        pending = self._pending.get(serial)
        if pending is None:
            return
        peer, extend, _ = pending
        if self._owners.get(msg.sender or "") != peer:
            self._limited.warning(
                "foreign-timeout", "%s: ignored a call timeout for %s from %s", self.name, peer, msg.sender
            )
            return
        extend(float(seconds))

    def _on_call_progress(self, msg: Message) -> None:
        bus = self._bus
        if bus is None or msg.destination != bus.unique_name or msg.signature != "uuds":
            return
        serial, seq, fraction, message = msg.body
        pending = self._pending.get(serial)
        if pending is None:
            return  # the call is over: a late notice
        peer, _, handle = pending
        if handle is None:
            return
        if self._owners.get(msg.sender or "") != peer:
            log.warning("%s: ignored call progress for %s from %s", self.name, peer, msg.sender)
            return
        handle.progress_received(seq, None if math.isnan(fraction) else fraction, message)

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        reply = await self._request(
            self._dest.get(peer) or self.peer_bus_name(peer), self.path, MODULE_IFACE, "Cancel", "ud",
            [wire_id, float(wait)],
        )  # fmt: skip
        if reply.message_type is _ERROR:
            if reply.error_name == E_UNKNOWN_METHOD:
                return CancelOutcome.UNSUPPORTED
            text = reply.body[0] if reply.body else ""
            raise RemoteError(f"cancel of a call to {peer} failed: {reply.error_name}: {text}")
        return CancelOutcome(reply.body[0])
