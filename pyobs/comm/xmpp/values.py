"""The ``urn:pyobs:rpc:1`` value vocabulary (wire spec §5): typed Python values to XML text, XML to
plain Python values.

Encoding is by runtime type straight into strings (no element trees): this runs for every call,
answer and state publish. Decoding is tolerant and yields plain values (None, bool, int, float,
str, list, tuple, dict; a dataclass becomes a dict of its fields); the comm core casts them by the
interface declaration.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.utils.time import Time

RPC_NS = "urn:pyobs:rpc:1"

#: characters XML 1.0 cannot carry at all
INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# a CR would reach the receiver as LF (XML end-of-line handling) and whitespace in attributes as
# spaces (attribute normalisation): as character references they arrive as they were sent
_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ESCAPE_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
)


class EncodeError(TypeError):
    """A value cannot be sent; the message names it."""


class DecodeError(ValueError):
    """Received XML is not a valid value; the message says what is wrong."""


def escape(text: str) -> str:
    """XML-escape text content; rejects characters XML cannot carry."""
    if INVALID_XML.search(text) is not None:
        raise EncodeError(f"string contains characters XML cannot carry: {text[:60]!r}")
    return text.translate(_ESCAPE)


def escape_attr(text: str) -> str:
    if INVALID_XML.search(text) is not None:
        raise EncodeError(f"attribute contains characters XML cannot carry: {text[:60]!r}")
    return text.translate(_ESCAPE_ATTR)


# ---------------------------------------------------------------------------------------------------- encode


def _enc_none(v: Any) -> str:
    return "<nil/>"


def _enc_bool(v: Any) -> str:
    return "<boolean>true</boolean>" if v else "<boolean>false</boolean>"


def _enc_int(v: Any) -> str:
    return f"<int>{int(v)}</int>"


def _enc_float(v: float) -> str:
    return f"<double>{float(v)!r}</double>"


def _enc_str(v: str) -> str:
    return f"<string>{escape(v)}</string>"


def _enc_time(v: datetime) -> str:
    t = v if isinstance(v, Time) else Time.from_datetime(v)
    return f"<string>{t.isot}</string>"


def _enc_list(v: list[Any]) -> str:
    if not v:
        return "<items/>"
    return "<items>" + "".join(["<item>" + encode(x) + "</item>" for x in v]) + "</items>"


def _enc_tuple(v: tuple[Any, ...]) -> str:
    if not v:
        return "<tuple/>"
    return "<tuple>" + "".join(["<item>" + encode(x) + "</item>" for x in v]) + "</tuple>"


def _enc_dict(v: Mapping[Any, Any]) -> str:
    if not v:
        return "<dict/>"
    return (
        "<dict>"
        + "".join([f"<entry><key>{encode(k)}</key><val>{encode(x)}</val></entry>" for k, x in v.items()])
        + "</dict>"
    )


_FIELD_TAGS: dict[type, tuple[tuple[str, str, str, bool], ...]] = {}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _declares_float(annotation: Any) -> bool:
    """float, float | None, Annotated[float, ...]: an int value must still travel as <double>."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _declares_float(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(members) == 1 and _declares_float(members[0])
    return annotation is float


def _field_tags(cls: type) -> tuple[tuple[str, str, str, bool], ...]:
    """(field name, opening tag, closing tag, declared float) per field of a dataclass, once per class."""
    tags = _FIELD_TAGS.get(cls)
    if tags is None:
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:
            hints = {}
        out = []
        for f in dataclasses.fields(cls):
            if _NAME.match(f.name) is None or f.name.lower().startswith("xml"):
                raise EncodeError(f"field name {f.name!r} of {cls.__name__} cannot be an XML element name")
            out.append((f.name, f'<{f.name} xmlns="">', f"</{f.name}>", _declares_float(hints.get(f.name))))
        tags = _FIELD_TAGS[cls] = tuple(out)
    return tags


def _enc_field(value: Any, is_float: bool) -> str:
    if is_float and type(value) is int:
        return _enc_float(value)  # pyobs-core keeps an <int> an int even where a float is declared
    return encode(value)


def encode_fields(v: Any) -> str:
    """The children of a dataclass element: ``<field xmlns="">V</field>`` per field."""
    return "".join([o + _enc_field(getattr(v, n), f) + c for n, o, c, f in _field_tags(type(v))])


def _enc_dataclass(v: Any) -> str:
    return f'<state xmlns="{RPC_NS}">' + encode_fields(v) + "</state>"


_ENCODERS: dict[type, Callable[[Any], str]] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    Time: _enc_time,
    datetime: _enc_time,
    list: _enc_list,
    tuple: _enc_tuple,
    dict: _enc_dict,
}


def _encoder_for(t: type) -> Callable[[Any], str]:
    """The encoder of a type that is not one of the exact base types (subclasses, enums, …)."""
    if issubclass(t, enum.Enum):
        if issubclass(t, str):
            return lambda v: _enc_str(v.value)
        if issubclass(t, int):
            return _enc_int
        return lambda v: encode(v.value)
    if issubclass(t, bool):
        return _enc_bool
    if issubclass(t, int):
        return _enc_int
    if issubclass(t, float):
        return _enc_float
    if issubclass(t, str):
        return lambda v: _enc_str(str.__str__(v))
    if issubclass(t, datetime):
        return _enc_time
    if issubclass(t, tuple):
        return _enc_tuple
    if issubclass(t, list):
        return _enc_list
    if issubclass(t, Mapping):
        return _enc_dict
    if dataclasses.is_dataclass(t):
        return _enc_dataclass
    item = getattr(t, "item", None)  # numpy scalars
    if callable(item) and t.__module__ == "numpy":
        return lambda v: encode(v.item())
    raise EncodeError(f"cannot send a value of type {t.__name__}")


def encode(value: Any) -> str:
    """One vocabulary element for ``value``, chosen by its runtime type (default namespace ``""``)."""
    t = type(value)
    enc = _ENCODERS.get(t)
    if enc is None:
        enc = _ENCODERS[t] = _encoder_for(t)
    return enc(value)


def encode_top(value: Any) -> str:
    """Like :func:`encode`, with ``xmlns=""`` on the element (for a parent in another namespace)."""
    text = encode(value)
    if text.startswith(f'<state xmlns="{RPC_NS}"'):
        return text
    end = text.index(">")
    if text[end - 1] == "/":
        return text[: end - 1] + ' xmlns=""/>' + text[end + 1 :]
    return text[:end] + ' xmlns=""' + text[end:]


# ---------------------------------------------------------------------------------------------------- decode


def local(tag: str) -> str:
    """Local name of an ElementTree tag (``{ns}name`` → ``name``)."""
    return tag.rpartition("}")[2] if tag[0] == "{" else tag


def _first_child(el: Element) -> Element | None:
    for child in el:
        return child
    return None


def _dec_nil(el: Element) -> Any:
    return None


def _dec_bool(el: Element) -> Any:
    text = (el.text or "").strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise DecodeError(f"<boolean> must be true or false, not {text[:40]!r}")


def _dec_int(el: Element) -> Any:
    text = (el.text or "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise DecodeError(f"<int> holds no integer: {text[:40]!r}") from None


def _dec_double(el: Element) -> Any:
    text = (el.text or "").strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise DecodeError(f"<double> holds no number: {text[:40]!r}") from None


def _dec_string(el: Element) -> Any:
    if not len(el):
        return el.text or ""
    # a CR between pyobs-comm modules travels as <cr/> (see rpc.exact); other children are ignored
    parts = [el.text or ""]
    for child in el:
        if child.tag.rpartition("}")[2] == "cr":
            parts.append("\r")
        parts.append(child.tail or "")
    return "".join(parts)


def _dec_items(el: Element) -> Any:
    out = []
    for item in el:
        child = _first_child(item)
        if child is not None:
            out.append(decode(child))
    return out


def _dec_tuple(el: Element) -> Any:
    return tuple(_dec_items(el))


def _dec_dict(el: Element) -> Any:
    out: dict[Any, Any] = {}
    for entry in el:
        key = val = None
        for part in entry:
            name = local(part.tag)
            if name == "key":
                key = _first_child(part)
            elif name == "val":
                val = _first_child(part)
        if key is None:
            raise DecodeError("<dict> entry without a <key> value")
        k = decode(key)
        try:
            out[k] = decode(val) if val is not None else None
        except TypeError:
            raise DecodeError(f"<dict> key {k!r} cannot be a key") from None
    return out


def decode_fields(el: Element) -> dict[str, Any]:
    """A dataclass element: its children by local name; each holds one value (or plain text)."""
    out: dict[str, Any] = {}
    for child in el:
        inner = _first_child(child)
        out[local(child.tag)] = decode(inner) if inner is not None else (child.text or "").strip()
    return out


_DECODERS: dict[str, Callable[[Element], Any]] = {
    "nil": _dec_nil,
    "boolean": _dec_bool,
    "int": _dec_int,
    "i4": _dec_int,
    "double": _dec_double,
    "string": _dec_string,
    "items": _dec_items,
    "tuple": _dec_tuple,
    "dict": _dec_dict,
}


def decode(el: Element) -> Any:
    """A plain Python value for a vocabulary element (dataclasses as dicts of their fields)."""
    tag = el.tag
    name = tag.rpartition("}")[2] if tag[0] == "{" else tag
    dec = _DECODERS.get(name)
    if dec is not None:
        return dec(el)
    if len(el):
        return decode_fields(el)
    return el.text or ""
