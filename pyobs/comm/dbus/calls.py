"""Method calls over D-Bus, both ways.

:class:`CallServer` (callee side) owns the calls it is serving (their tasks): it checks an incoming
call's signature against our method table, hands the plain arguments to the core (which casts
them), replies with the result or an ``org.pyobs.Error.*`` error, and announces ``@timeout`` with
``CallTimeout`` signals.

:class:`CallClient` (caller side) owns our calls waiting for a reply (serial → peer and deadline
extension) and the encoders compiled per method: it sends a call, extends its deadline on
``CallTimeout`` and turns error replies back into exceptions. It has no deadline of its own:
the core's ends the wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message
from dbus_fast.validators import is_interface_name_valid, is_member_name_valid

from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import RemoteError, UnknownMethodError
from pyobs.utils.ratelimit import RateLimitedLog

from ..calls import Call, CancelOutcome, ProgressSink
from ..errors import RemoteException, describe, is_bad_arguments, rebuild
from ..transport import Extend, NotConnected, TransportHandler
from . import wire
from .codec import EncodeError, Encoder, compile_type, error_name, needs_decoding, plain
from .events import BURST, BURST_WINDOW
from .exports import Exports, _Incoming
from .link import Link
from .peers import PeerTable
from .wire import Names, spawn

log = logging.getLogger(__name__)


class CallServer:
    def __init__(self, names: Names, link: Link, peers: PeerTable, exports: Exports) -> None:
        self.names = names
        self.link = link
        self.peers = peers
        self.exports = exports
        self.handler: TransportHandler | None = None
        self._serving: set[asyncio.Task[Any]] = set()
        #: progress signals: how many went out in quick succession, and the calls whose newest
        #: notice waits for the bus round trip that lets the socket drain
        self._progress_burst = 0
        self._progress_burst_start = 0.0
        self._progress_held: dict[int, Callable[[], None]] | None = None
        #: lines another process can trigger per message (one per kind every 10 s, with counts)
        self._limited = RateLimitedLog(logging.getLogger("pyobs.comm.dbus"))

    def on_call(self, msg: Message) -> Message | bool | None:
        """A call of one of our pyobs methods (or ``org.pyobs.Module``); the transport routes the rest."""
        iface = msg.interface
        member = msg.member or ""
        exports = self.exports
        if not exports.online:
            return Message.new_error(msg, wire.E_UNKNOWN_OBJECT, f"module '{self.names.name}' is not online yet")
        if iface == wire.MODULE_IFACE:
            if member == "Describe" and not msg.signature:
                return Message.new_method_return(msg, wire.DESCRIBE_SIGNATURE, exports.describe_body)
            if member == "Cancel" and msg.signature == "ud":
                return self._on_cancel(msg)
            if member == "GetModuleState" and not msg.signature:
                return Message.new_method_return(msg, "ss", list(exports.module_state))
            return self._reject(
                msg, wire.E_UNKNOWN_METHOD, f"{wire.MODULE_IFACE} has no method {member}({msg.signature})"
            )
        entry = exports.entry(iface, member)
        if entry is None:
            where = f"{iface}.{member}" if iface else member
            return self._reject(msg, wire.E_UNKNOWN_METHOD, f"module '{self.names.name}' has no method {where}")
        sig = msg.signature
        if sig != entry.in_sig and sig not in entry.accepted:
            params = ", ".join(f"{p.name}: {compile_type(p.annotation)[0]}" for p in entry.spec.params)
            return self._reject(
                msg,
                wire.E_INVALID_ARGS,
                f"{entry.spec.name}() takes signature '{entry.in_sig}' ({params}), got '{sig}'",
            )
        args = [plain(a) for a in msg.body] if entry.decode else msg.body
        spawn(self._serving, self._serve(msg, entry, args))
        return True

    def _reject(self, msg: Message, name: str, text: str) -> Message | bool:
        self._limited.warning(
            "rejected-call",
            "%s: rejected call %s.%s from %s: %s", self.names.name, msg.interface, msg.member, msg.sender, text,
        )  # fmt: skip
        if msg.flags & wire.NO_REPLY:
            return True
        exc = UnknownMethodError(text) if name == wire.E_UNKNOWN_METHOD else TypeError(text)
        return self._error_reply(msg, exc, name)

    def _on_cancel(self, msg: Message) -> Message | bool:
        serial, wait = msg.body
        if not math.isfinite(wait) or wait < 0:
            return self._reject(msg, wire.E_INVALID_ARGS, f"Cancel: wait must be a number of seconds >= 0, got {wait}")
        spawn(self._serving, self._cancel_served(msg, serial, wait))
        return True

    async def _cancel_served(self, msg: Message, serial: int, wait: float) -> None:
        handler = self.handler
        caller = msg.sender or ""
        sender = self.peers.module_of(caller) or caller
        if handler is None:
            outcome = CancelOutcome.UNKNOWN
        else:  # the key a cancel names: the caller's unique connection name and the call's serial
            outcome = await handler.cancel_call(sender, (caller, serial), wait)
        self.link.send(Message.new_method_return(msg, "s", [outcome.value]))

    def _progress_sink(self, caller: str | None, serial: int) -> ProgressSink | None:
        """Sends progress of a call as CallProgress signals, with the flow control events have:
        dbus-fast takes a full socket for a broken connection, so after BURST signals in quick
        succession the next ones wait for a round trip to the bus daemon (which answers once it has
        read everything before); meanwhile each call's newer notices replace its older one."""
        if not caller:
            return None
        key = id(object())  # this call's place among the held notices

        def send(seq: int, fraction: float | None, message: str) -> None:
            if not self.link.up:
                return
            held = self._progress_held
            if held is not None:  # the socket drains: the newest notice of this call goes next
                held[key] = lambda: send(seq, fraction, message)
                return
            msg = Message(
                message_type=wire.SIGNAL,
                destination=caller,
                path=self.names.path,
                interface=wire.MODULE_IFACE,
                member="CallProgress",
                signature="uuds",
                body=[serial, seq, math.nan if fraction is None else fraction, message],
            )
            self.link.send(msg)
            self._progress_paced()

        return send

    def _progress_paced(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._progress_burst_start > BURST_WINDOW:
            self._progress_burst_start, self._progress_burst = now, 0
        self._progress_burst += 1
        if self._progress_burst >= BURST and self._progress_held is None:
            self._progress_burst_start, self._progress_burst = now, 0
            self._progress_held = {}
            spawn(self._serving, self._progress_drain())

    async def _progress_drain(self) -> None:
        try:
            await self.link.bus_request("GetId", timeout=self.link.timeout)
        except (RemoteError, TimeoutError) as exc:
            log.debug("%s: progress held back, the bus does not answer: %s", self.names.name, exc)
        held, self._progress_held = self._progress_held or {}, None
        for flush in held.values():
            flush()

    async def _serve(self, msg: Message, entry: _Incoming, args: list[Any]) -> None:
        handler = self.handler
        assert handler is not None
        caller = msg.sender
        sender = await self.peers.caller(caller) if caller else ""

        def announce(seconds: float) -> None:
            self.link.send(
                Message(
                    message_type=wire.SIGNAL,
                    destination=caller,
                    path=self.names.path,
                    interface=wire.MODULE_IFACE,
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
                    message_type=wire.RETURN,
                    reply_serial=msg.serial,
                    destination=caller,
                    signature=entry.out_sig,
                    body=body,
                    validate=False,
                )
            else:
                reply = Message(message_type=wire.RETURN, reply_serial=msg.serial, destination=caller, validate=False)
        except Exception as exc:
            if is_bad_arguments(exc):
                self._limited.warning(
                    "rejected-call", "%s: rejected call %s() from %s: %s", self.names.name, entry.spec.name, sender, exc
                )
                reply = self._error_reply(msg, exc, wire.E_INVALID_ARGS)
            else:
                reply = self._error_reply(msg, exc)
        if msg.flags & wire.NO_REPLY:
            return
        try:
            self.link.send(reply)
        except Exception as exc:  # the result does not fit the declared signature
            log.error("%s: cannot send the result of %s(): %s", self.names.name, entry.spec.name, exc)
            err = EncodeError(f"{entry.spec.name}() returned a value that cannot be sent over D-Bus: {exc}")
            self.link.send(self._error_reply(msg, err))

    @staticmethod
    def _error_reply(msg: Message, exc: BaseException, name: str | None = None) -> Message:
        remote = describe(exc)
        if name is None:
            name = wire.E_UNKNOWN_METHOD if isinstance(exc, UnknownMethodError) else error_name(remote.type)
        return Message(
            message_type=wire.ERROR,
            reply_serial=msg.serial,
            destination=msg.sender,
            error_name=name,
            signature=wire.ERROR_SIGNATURE,
            body=[remote.message, remote.type, list(remote.bases)],
        )

    def close(self) -> None:
        for task in list(self._serving):
            task.cancel()


@dataclass
class _Outgoing:
    """A peer's method as we call it (caller side)."""

    spec: MethodSpec
    interface: str
    in_sig: str
    encoders: list[Encoder | None] | None
    out_sig: str
    decode: bool


def _compile(spec: MethodSpec) -> _Outgoing:
    iface = wire.IFACE_PREFIX + spec.interface.__name__
    if not is_interface_name_valid(iface) or not is_member_name_valid(spec.name):
        raise TypeError(f"{iface}.{spec.name} is no valid D-Bus interface/method name (use ASCII identifiers)")
    compiled = [compile_type(p.annotation) for p in spec.params]
    encoders = [e for _, e in compiled]
    out_sig = "" if spec.void else compile_type(spec.returns)[0]
    return _Outgoing(
        spec=spec,
        interface=iface,
        in_sig="".join(s for s, _ in compiled),
        encoders=encoders if any(e is not None for e in encoders) else None,
        out_sig=out_sig,
        decode=needs_decoding(out_sig),
    )


class CallClient:
    def __init__(self, names: Names, link: Link, peers: PeerTable) -> None:
        self.names = names
        self.link = link
        self.peers = peers
        self._compiled: dict[int, _Outgoing] = {}  # id(MethodSpec) -> how to call it
        #: serial -> (peer, deadline extension, the call's handle for progress)
        self._waiting: dict[int, tuple[str, Extend, Call | None]] = {}
        self._limited = RateLimitedLog(logging.getLogger("pyobs.comm.dbus"))

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, handle: Call | None = None
    ) -> Any:
        out = self._compiled.get(id(method))
        if out is None or out.spec is not method:
            out = self._compiled[id(method)] = _compile(method)
        encoders = out.encoders
        if encoders is None:
            body = args
        else:
            try:
                body = [a if e is None else e(a) for e, a in zip(encoders, args, strict=True)]
            except EncodeError as exc:
                raise TypeError(f"{method.name}(): {exc}") from None
        msg = Message(
            destination=self.peers.bus_name(peer),
            path=self.names.path,
            interface=out.interface,
            member=method.name,
            signature=out.in_sig,
            body=body,
            serial=self.link.next_serial(),
            validate=False,
        )
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def on_reply(reply: Message | None, err: Exception | None) -> None:
            if fut.done():
                return
            if reply is not None:
                fut.set_result(reply)
            else:
                text = f"call {peer}.{method.name}() failed: connection to the D-Bus bus lost ({err})"
                fut.set_exception(NotConnected(text))
                fut.exception()  # retrieved: the waiter may be gone (cancelled) by now

        serial = msg.serial
        self._waiting[serial] = (peer, extend, handle)
        if handle is not None:
            handle.wire_id = serial
        try:
            token = self.link.call_nowait(msg, on_reply)
        except NotConnected:
            self._waiting.pop(serial, None)
            raise
        except Exception as exc:
            self._waiting.pop(serial, None)
            raise TypeError(f"cannot send {peer}.{method.name}(): arguments do not fit '{out.in_sig}': {exc}") from None
        try:
            reply = await fut
        finally:
            self._waiting.pop(serial, None)
            if not fut.done():
                self.link.forget_reply(token, serial)
        if reply.message_type is wire.RETURN:
            if not out.out_sig or not reply.body:
                return None
            value = reply.body[0]
            return plain(value) if out.decode or reply.signature != out.out_sig else value
        raise _error(reply, peer, method.name)

    def on_call_timeout(self, msg: Message) -> None:
        """A callee announced how long our call will take."""
        if msg.destination != self.link.unique_name or msg.signature != "ud":
            return
        serial, seconds = msg.body
        waiting = self._waiting.get(serial)
        if waiting is None:
            return
        peer, extend, _ = waiting
        if self.peers.module_of(msg.sender or "") != peer:
            self._limited.warning(
                "foreign-timeout", "%s: ignored a call timeout for %s from %s", self.names.name, peer, msg.sender
            )
            return
        extend(float(seconds))

    def on_call_progress(self, msg: Message) -> None:
        """A callee reports progress of our call."""
        if msg.destination != self.link.unique_name or msg.signature != "uuds":
            return
        serial, seq, fraction, message = msg.body
        waiting = self._waiting.get(serial)
        if waiting is None:
            return  # the call is over: a late notice
        peer, _, handle = waiting
        if handle is None:
            return
        if self.peers.module_of(msg.sender or "") != peer:
            self._limited.warning(
                "foreign-progress", "%s: ignored call progress for %s from %s", self.names.name, peer, msg.sender
            )
            return
        handle.progress_received(seq, None if math.isnan(fraction) else fraction, message)

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        # no deadline of our own: the core bounds the wait
        reply = await self.link.request(
            self.peers.bus_name(peer), self.names.path, wire.MODULE_IFACE, "Cancel", "ud", [wire_id, float(wait)]
        )
        if reply.message_type is wire.ERROR:
            if reply.error_name == wire.E_UNKNOWN_METHOD:
                return CancelOutcome.UNSUPPORTED
            text = reply.body[0] if reply.body else ""
            raise RemoteError(f"cancel of a call to {peer} failed: {reply.error_name}: {text}")
        return CancelOutcome(reply.body[0])

    def forget(self) -> None:
        """Our link went: the bus ended every call waiting on it (dbus-fast tells on_reply)."""
        self._waiting.clear()


def _error(reply: Message, peer: str, method: str) -> BaseException:
    name = reply.error_name or ""
    body = reply.body
    where = f"{peer}.{method}()"
    if reply.signature == wire.ERROR_SIGNATURE:
        return rebuild(RemoteException(body[1], body[0], tuple(body[2])), where)
    text = body[0] if body and isinstance(body[0], str) else ""
    if name in wire.E_GONE:
        return RemoteError(f"call {where} failed: module '{peer}' went offline ({text})")
    if name == wire.E_UNKNOWN_METHOD:
        return UnknownMethodError(f"{where}: {text}")
    if name == wire.E_INVALID_ARGS:
        return TypeError(f"{where}: {text}")
    if name.startswith(wire.ERROR_PREFIX):
        return rebuild(RemoteException(name[len(wire.ERROR_PREFIX) :], text), where)
    return RemoteError(f"call {where} failed: {name}: {text}", original_type=name)
