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
from .codec import EncodeError, error_name, plain
from .exports import Exports, MethodWire, method_wire
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
        #: the calls whose newest progress notice waits for the bus round trip that lets the socket drain
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
            params = ", ".join(f"{p.name}: {sig}" for p, sig in zip(entry.spec.params, entry.arg_sigs, strict=True))
            return self._reject(
                msg,
                wire.E_INVALID_ARGS,
                f"{entry.spec.name}() takes signature '{entry.in_sig}' ({params}), got '{sig}'",
            )
        args = [plain(a) for a in msg.body] if entry.decode_in else msg.body
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
        """Sends progress of a call as CallProgress signals, paced as events are
        (:meth:`.link.Link.burst_full`); while the socket drains, each call's newer notices replace its older one."""
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
            progress = math.nan if fraction is None else fraction
            self._signal(caller, "CallProgress", "uuds", [serial, seq, progress, message])
            if self.link.burst_full():
                self._progress_held = {}
                spawn(self._serving, self._progress_drain())

        return send

    async def _progress_drain(self) -> None:
        try:
            await self.link.bus_request("GetId", timeout=self.link.timeout)
        except (RemoteError, TimeoutError) as exc:
            log.debug("%s: progress held back, the bus does not answer: %s", self.names.name, exc)
        held, self._progress_held = self._progress_held or {}, None
        for flush in held.values():
            flush()

    async def _serve(self, msg: Message, entry: MethodWire, args: list[Any]) -> None:
        handler = self.handler
        assert handler is not None
        caller = msg.sender
        sender = await self.peers.caller(caller) if caller else ""

        def announce(seconds: float) -> None:
            self._signal(caller, "CallTimeout", "ud", [msg.serial, float(seconds)])

        try:
            progress = self._progress_sink(caller, msg.serial)
            key = (caller, msg.serial)
            result = await handler.handle_call(sender, entry.spec.name, args, announce, True, key, progress)
            out = entry.out_sig
            body = [] if not out else [result if entry.out_enc is None else entry.out_enc(result)]
            reply = Message(message_type=wire.RETURN, destination=caller, reply_serial=msg.serial, signature=out,
                            body=body, validate=False)  # fmt: skip
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

    def _signal(self, caller: str | None, member: str, signature: str, body: list[Any]) -> None:
        """A unicast signal of ``org.pyobs.Module`` to the caller of a call we serve."""
        msg = Message(message_type=wire.SIGNAL, destination=caller, path=self.names.path, member=member, body=body,
                      interface=wire.MODULE_IFACE, signature=signature)  # fmt: skip
        self.link.send(msg)

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


def _compile(spec: MethodSpec) -> MethodWire:
    out = method_wire(spec)
    if not is_interface_name_valid(out.interface) or not is_member_name_valid(spec.name):
        raise TypeError(f"{out.interface}.{spec.name} is no valid D-Bus interface/method name (use ASCII identifiers)")
    return out


class CallClient:
    def __init__(self, names: Names, link: Link, peers: PeerTable) -> None:
        self.names = names
        self.link = link
        self.peers = peers
        self._compiled: dict[int, MethodWire] = {}  # id(MethodSpec) -> how to call it
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
        serial = msg.serial
        self._waiting[serial] = (peer, extend, handle)
        if handle is not None:
            handle.wire_id = serial
        try:
            reply = await self.link.roundtrip(msg)
        except NotConnected as exc:
            raise NotConnected(f"call {peer}.{method.name}() failed: {exc}") from None
        except Exception as exc:
            raise TypeError(f"cannot send {peer}.{method.name}(): arguments do not fit '{out.in_sig}': {exc}") from None
        finally:
            self._waiting.pop(serial, None)
        if reply.message_type is wire.RETURN:
            if not out.out_sig or not reply.body:
                return None
            value = reply.body[0]
            return plain(value) if out.decode_out or reply.signature != out.out_sig else value
        raise _error(reply, peer, method.name)

    def on_call_timeout(self, msg: Message) -> None:
        """A callee announced how long our call will take."""
        waiting = self._waiting_for(msg, "ud", "timeout")
        if waiting is not None:
            waiting[1](float(msg.body[1]))

    def on_call_progress(self, msg: Message) -> None:
        """A callee reports progress of our call."""
        waiting = self._waiting_for(msg, "uuds", "progress")
        if waiting is not None and waiting[2] is not None:
            _, seq, fraction, message = msg.body
            waiting[2].progress_received(seq, None if math.isnan(fraction) else fraction, message)

    def _waiting_for(self, msg: Message, signature: str, kind: str) -> tuple[str, Extend, Call | None] | None:
        """The call a CallTimeout/CallProgress signal is about, if it is ours, waiting, and the signal
        comes from its callee (None for a late one: the call is over)."""
        if msg.destination != self.link.unique_name or msg.signature != signature:
            return None
        waiting = self._waiting.get(msg.body[0])
        if waiting is not None and self.peers.module_of(msg.sender or "") != waiting[0]:
            self._limited.warning(
                f"foreign-{kind}", "%s: ignored call %s for %s from %s", self.names.name, kind, waiting[0], msg.sender
            )
            return None
        return waiting

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
