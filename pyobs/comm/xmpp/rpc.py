"""``jabber:iq:rpc`` calls with ``urn:pyobs:rpc:1`` values (wire spec §6), as prebuilt strings.

Outgoing stanzas are assembled from constant pieces; incoming ones are read from the raw
ElementTree elements slixmpp's parser produced, without stanza objects.

Between pyobs-comm modules (both advertise :data:`COMPACT_NS` in disco#info) a call and its value
answer go in a compact envelope with the very same value vocabulary::

    <iq type="set" to="…" id="…"><call xmlns="urn:pyobs:comm:call:1" method="move_radec">
        <double>1.0</double><double>2.0</double></call></iq>
    <iq type="result" to="…" id="…"><result xmlns="urn:pyobs:comm:call:1"><nil/></result></iq>

Four elements instead of thirteen: the server parses and re-serialises every element of every
stanza, so this takes about a quarter off its work per call. Faults, ``methodTimeout`` notices and
errors stay in the ``jabber:iq:rpc`` form; pyobs-core peers only ever see that form.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, tostring

from pyobs.comm.errors import RemoteException

from .values import INVALID_XML, RPC_NS, DecodeError, decode, encode, encode_top, escape, escape_attr, local

NS = "jabber:iq:rpc"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

Q_QUERY = f"{{{NS}}}query"
Q_CALL = f"{{{NS}}}methodCall"
Q_NAME = f"{{{NS}}}methodName"
Q_PARAMS = f"{{{NS}}}params"
Q_RESPONSE = f"{{{NS}}}methodResponse"
Q_TIMEOUT = f"{{{NS}}}methodTimeout"
Q_FAULT = f"{{{NS}}}fault"
Q_VALUE_INNER = f"{{{RPC_NS}}}value"
Q_FAULT_INNER = f"{{{RPC_NS}}}fault"

#: the compact call envelope between pyobs-comm modules (also their disco#info feature)
COMPACT_NS = "urn:pyobs:comm:call:1"
Q_COMPACT_CALL = f"{{{COMPACT_NS}}}call"
Q_COMPACT_RESULT = f"{{{COMPACT_NS}}}result"

_PARAM_OPEN = f'<param><value><value xmlns="{RPC_NS}">'
_PARAM_CLOSE = "</value></value></param>"
_RESULT_OPEN = f'"><query xmlns="{NS}"><methodResponse><params>{_PARAM_OPEN}'
_RESULT_CLOSE = f"{_PARAM_CLOSE}</params></methodResponse></query></iq>"
_VOID = f'"><query xmlns="{NS}"><methodResponse><params/></methodResponse></query></iq>'


class RpcFormatError(ValueError):
    """An incoming RPC stanza does not have the shape of the spec; the message says what."""


# ---------------------------------------------------------------------------------------------------- caller


#: the prebuilt parts of calls, per peer and method (a bound: fleets have fewer)
PREBUILT = 4096


@functools.lru_cache(maxsize=PREBUILT)
def call_prefix(to: str) -> str:
    """Everything of a call up to its id."""
    return f'<iq type="set" to="{escape_attr(to)}" id="'


@functools.lru_cache(maxsize=PREBUILT)
def call_body(method: str) -> str:
    """Everything between the id and the first parameter."""
    return f'"><query xmlns="{NS}"><methodCall><methodName>{escape(method)}</methodName><params>'


CALL_END = "</params></methodCall></query></iq>"


@functools.lru_cache(maxsize=PREBUILT)
def compact_call_body(method: str, progress: bool = False) -> str:
    """Everything of a compact call between the id and the first value. ``progress``: the caller
    takes progress notices of this call (``progress="1"``, see :mod:`.control`)."""
    flag = ' progress="1"' if progress else ""
    return f'"><call xmlns="{COMPACT_NS}" method="{escape_attr(method)}"{flag}>'


COMPACT_CALL_END = "</call></iq>"


def exact(xml: str) -> str:
    """Values for a pyobs-comm peer (compact envelope): a CR as ``<cr/>``. The server re-serialises
    every stanza and writes the ``&#13;`` of :func:`~.values.escape` as a raw CR, which the receiving
    parser turns into LF (XML end-of-line handling); an element survives. (A user's literal
    ``&#13;`` is escaped as ``&amp;#13;``: only a CR of ours matches.)"""
    return xml.replace("&#13;", "<cr/>") if "&#13;" in xml else xml


def encode_values(args: list[Any]) -> str:
    """The values of a compact call (they take the envelope's namespace; decoding goes by local name)."""
    return exact("".join([encode(a) for a in args]))


def encode_params(args: list[Any]) -> str:
    return "".join([_PARAM_OPEN + encode_top(a) + _PARAM_CLOSE for a in args])


@dataclass
class Reply:
    """What came back for a call: exactly one of the fields is set."""

    value: Any = None
    timeout: float | None = None  # a methodTimeout notice (seconds)
    fault: RemoteException | None = None


def parse_reply(iq: Element) -> Reply:
    """Read a ``result`` IQ answering a call (either form); RpcFormatError if it is not one."""
    query = None
    for child in iq:
        if child.tag == Q_COMPACT_RESULT:
            for v in child:
                return Reply(value=decode(v))
            raise RpcFormatError("compact result without a value")
        if child.tag == Q_QUERY:
            query = child
            break
    if query is None:
        raise RpcFormatError("reply without <query xmlns='jabber:iq:rpc'>")
    for child in query:
        tag = child.tag
        if tag == Q_RESPONSE:
            return _parse_response(child)
        if tag == Q_TIMEOUT:
            text = "".join(child.itertext()).strip()
            try:
                seconds = float(text)
            except ValueError:
                raise RpcFormatError(f"methodTimeout without a number: {text[:40]!r}") from None
            return Reply(timeout=seconds)
    raise RpcFormatError("reply with neither methodResponse nor methodTimeout")


def _parse_response(resp: Element) -> Reply:
    for child in resp:
        if child.tag == Q_PARAMS:
            for param in child:
                return Reply(value=_param_value(param))
            return Reply()
        if child.tag == Q_FAULT:
            return Reply(fault=_parse_fault(child))
    raise RpcFormatError("methodResponse with neither params nor fault")


def _param_value(param: Element) -> Any:
    """``<param><value><value xmlns="urn:pyobs:rpc:1">V</value></value></param>`` → plain V."""
    for outer in param:
        for inner in outer:
            if inner.tag == Q_VALUE_INNER or local(inner.tag) == "value":
                for v in inner:
                    return decode(v)
                return None
            return decode(inner)  # a classic XML-RPC value without the pyobs wrapper
    raise RpcFormatError("<param> without a value")


def _parse_fault(fault: Element) -> RemoteException:
    inner = fault.find(f".//{Q_FAULT_INNER}")
    if inner is None:
        return RemoteException("pyobs.utils.exceptions.RemoteError", "Unknown error (fault without details)")
    qname, message, bases = "", "", []
    for child in inner:
        name = local(child.tag)
        if name == "exception":
            qname = (child.text or "").strip()
        elif name == "message":
            message = child.text or ""
        elif name == "bases":
            bases = [(b.text or "").strip() for b in child if (b.text or "").strip()]
    return RemoteException(qname or "pyobs.utils.exceptions.RemoteError", message, tuple(bases))


def error_condition(iq: Element) -> tuple[str, str]:
    """(condition, text) of an IQ error."""
    err = iq.find("{jabber:client}error")
    if err is None:
        return "undefined-condition", ""
    cond, text = "undefined-condition", ""
    for child in err:
        name = local(child.tag)
        if name == "text":
            text = child.text or ""
        elif child.tag.startswith(f"{{{STANZAS_NS}}}"):
            cond = name
    return cond, text


# ---------------------------------------------------------------------------------------------------- callee


def parse_call(query: Element) -> tuple[str, list[Any]]:
    """(method name, positional plain arguments) of a ``<query xmlns='jabber:iq:rpc'>``.

    Raises RpcFormatError (or DecodeError) naming what is wrong.
    """
    call = query.find(Q_CALL)
    if call is None:
        raise RpcFormatError("RPC query without <methodCall>")
    name_el = call.find(Q_NAME)
    name = (name_el.text or "").strip() if name_el is not None else ""
    if not name:
        raise RpcFormatError("methodCall without <methodName>")
    params = call.find(Q_PARAMS)
    if params is None:
        raise RpcFormatError(f"call of {name}() without <params>")
    args: list[Any] = []
    for i, param in enumerate(params):
        inner = None
        for outer in param:
            for el in outer:
                if el.tag == Q_VALUE_INNER:
                    inner = el
                break
            break
        if inner is None:
            raise RpcFormatError(f"{name}() parameter {i + 1} has no <value xmlns='urn:pyobs:rpc:1'>")
        value = None
        for v in inner:
            try:
                value = decode(v)
            except DecodeError as exc:
                raise RpcFormatError(f"{name}() parameter {i + 1}: {exc}") from None
            except RecursionError:
                raise RpcFormatError(f"{name}() parameter {i + 1}: value nested too deeply") from None
            break
        args.append(value)
    return name, args


def parse_compact_call(call: Element) -> tuple[str, list[Any]]:
    """(method name, positional plain arguments) of a compact ``<call>``; RpcFormatError naming what is wrong."""
    name = call.get("method", "").strip()
    if not name:
        raise RpcFormatError("call without a method name")
    args: list[Any] = []
    for i, el in enumerate(call):
        try:
            args.append(decode(el))
        except DecodeError as exc:
            raise RpcFormatError(f"{name}() parameter {i + 1}: {exc}") from None
        except RecursionError:
            raise RpcFormatError(f"{name}() parameter {i + 1}: value nested too deeply") from None
    return name, args


def peek_method(query: Element) -> str:
    if query.tag == Q_COMPACT_CALL:
        return query.get("method", "").strip()
    call = query.find(Q_CALL)
    name_el = call.find(Q_NAME) if call is not None else None
    return (name_el.text or "").strip() if name_el is not None else ""


def result(to: str, iq_id: str, value: Any) -> str:
    """A final answer (value already typed; None → ``<params/>``)."""
    head = f'<iq type="result" to="{to}" id="{iq_id}'
    if value is None:
        return head + _VOID
    return head + _RESULT_OPEN + encode_top(value) + _RESULT_CLOSE


def compact_result(to: str, iq_id: str, value: Any) -> str:
    """A final answer to a compact call (value already typed)."""
    return f'<iq type="result" to="{to}" id="{iq_id}"><result xmlns="{COMPACT_NS}">{exact(encode(value))}</result></iq>'


def method_timeout(to: str, iq_id: str, seconds: float) -> str:
    """The notice of a long call. Whole seconds, rounded *up*: pyobs-core callers wait exactly that
    long, and must not give up before the time announced."""
    whole = math.ceil(seconds) if math.isfinite(seconds) else 2**31 - 1
    return (
        f'<iq type="result" to="{to}" id="{iq_id}"><query xmlns="{NS}"><methodTimeout>'
        f"<timeout>{max(0, whole)}</timeout></methodTimeout></query></iq>"
    )


def fault(to: str, iq_id: str, exc: RemoteException) -> str:
    bases = "".join(f"<base>{escape(b)}</base>" for b in exc.bases)
    return (
        f'<iq type="result" to="{to}" id="{iq_id}"><query xmlns="{NS}"><methodResponse><fault><value>'
        f'<fault xmlns="{RPC_NS}"><exception xmlns="">{escape(exc.type)}</exception>'
        f'<message xmlns="">{escape(_clean(exc.message))}</message><bases xmlns="">{bases}</bases></fault>'
        f"</value></fault></methodResponse></query></iq>"
    )


def _clean(text: str) -> str:
    """Messages may hold anything; drop what XML cannot carry instead of failing the answer."""
    return INVALID_XML.sub("", text)


def iq_error(
    to: str, iq_id: str, condition: str, kind: str, code: int, text: str = "", payload: Element | None = None
) -> str:
    echo = tostring(payload, encoding="unicode") if payload is not None else ""
    text_el = f'<text xmlns="{STANZAS_NS}">{escape(_clean(text))}</text>' if text else ""
    return (
        f'<iq type="error" to="{to}" id="{iq_id}">{echo}<error type="{kind}" code="{code}">'
        f'<{condition} xmlns="{STANZAS_NS}"/>{text_el}</error></iq>'
    )
