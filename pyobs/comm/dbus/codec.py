"""Our value vocabulary as D-Bus types (see docs/dbus.md for the table).

Declared types map to fixed D-Bus signatures (``int`` → ``x``, ``list[float]`` → ``ad``, a dataclass
→ ``a{sv}``, ...); everything that is optional, a union or ``Any`` becomes a variant ``v``. D-Bus
has no null, so ``None`` travels as the *null variant*: a variant holding an empty byte array
(``ay``), a type our vocabulary never uses otherwise.

Encoders are compiled once per annotation (this sits on every call's path); an encoder of
``None`` means the value goes out as it is. Decoding needs no declaration: D-Bus values are plain
Python values already, only variants are unwrapped (:func:`plain`); the core casts by declaration.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Union

from dbus_fast import Variant

from pyobs.utils.casting import dataclass_fields, to_plain

Encoder = Callable[[Any], Any]

#: the null variant: how None travels (D-Bus has no null)
NULL = Variant("ay", b"")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class EncodeError(TypeError):
    """A value cannot be expressed in its D-Bus type; the message names the value."""


# ---------------------------------------------------------------------------------- names

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPED = re.compile(r"(?:-[0-9a-f]{2})+")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")


def escape_name(name: str) -> str:
    """A module name as one element of a D-Bus bus name.

    Names made of ``[A-Za-z0-9_]`` not starting with a digit are used as they are; any other
    character (and a leading digit) becomes ``-xx`` per UTF-8 byte, e.g. ``cam-1`` → ``cam-2d1``.
    """
    if _PLAIN_NAME.match(name):
        return name
    out = []
    for i, ch in enumerate(name):
        if _NAME_CHAR.match(ch) and not (i == 0 and ch.isdigit()):
            out.append(ch)
        else:
            out.extend(f"-{b:02x}" for b in ch.encode())
    return "".join(out)


def unescape_name(element: str) -> str:
    """Inverse of :func:`escape_name`."""
    if "-" not in element:
        return element

    def decode(m: re.Match[str]) -> str:
        return bytes(int(h, 16) for h in m.group(0).split("-")[1:]).decode(errors="replace")

    return _ESCAPED.sub(decode, element)


_ERROR_ELEMENT = re.compile(r"[^A-Za-z0-9_]")


def error_name(qualified_type: str) -> str:
    """The D-Bus error name of an exception class: ``org.pyobs.Error.<module>.<Class>``."""
    parts = [_ERROR_ELEMENT.sub("_", p) or "_" for p in qualified_type.split(".")]
    parts = [("_" + p if p[0].isdigit() else p) for p in parts]
    name = "org.pyobs.Error." + ".".join(parts)
    return name if len(name) <= 255 else "org.pyobs.Error.Remote"


# ---------------------------------------------------------------------------------- encoding


def to_variant(value: Any) -> Variant:
    """Any value of the vocabulary as a variant, by its runtime type."""
    t = type(value)
    if value is None:
        return NULL
    if t is str:
        return Variant("s", _check_str(value), False)
    if t is float:
        return Variant("d", value, False)
    if t is bool:
        return Variant("b", value, False)
    if t is int:
        return Variant("x", _check_int(value), False)
    if isinstance(value, enum.Enum):
        return to_variant(value.value)
    if isinstance(value, datetime):
        return Variant("s", to_plain(value), False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return Variant("a{sv}", {f.name: to_variant(getattr(value, f.name)) for f in dataclasses.fields(value)}, False)
    if isinstance(value, (list, tuple)):
        return Variant("av", [to_variant(x) for x in value], False)
    if isinstance(value, Mapping):
        return Variant(*_variant_dict(value), False)
    if isinstance(value, str):
        return Variant("s", str(value), False)
    if isinstance(value, int):
        return Variant("x", _check_int(int(value)), False)
    if isinstance(value, float):
        return Variant("d", float(value), False)
    raise EncodeError(f"cannot send a value of type {t.__name__} over D-Bus: {_short(value)}")


def _variant_dict(value: Mapping[Any, Any]) -> tuple[str, dict[Any, Variant]]:
    if all(isinstance(k, str) for k in value):
        return "a{sv}", {str(k.value if isinstance(k, enum.Enum) else k): to_variant(v) for k, v in value.items()}
    if all(isinstance(k, int) and not isinstance(k, bool) for k in value):
        return "a{xv}", {_check_int(int(k)): to_variant(v) for k, v in value.items()}
    raise EncodeError(f"dictionary keys must be all str or all int to travel over D-Bus: {_short(value)}")


def _check_str(v: str) -> str:
    # D-Bus strings cannot hold NUL; some dbus-fast versions send one anyway, and the daemon then
    # drops the sender's whole connection: refuse it here, naming the value
    if "\x00" in v:
        raise EncodeError(f"D-Bus strings cannot carry NUL characters: {_short(v)}")
    return v


def _check_int(v: int) -> int:
    if _INT64_MIN <= v <= _INT64_MAX:
        return v
    raise EncodeError(f"integer {v} does not fit D-Bus int64 ('x')")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def signature(tp: Any) -> str:
    """The D-Bus signature of a declared type (one complete type)."""
    return compile_type(tp)[0]


def encoder(tp: Any) -> Encoder | None:
    """The encoder of a declared type; None when values go out as they are."""
    return compile_type(tp)[1]


@functools.lru_cache(maxsize=4096)
def compile_type(tp: Any) -> tuple[str, Encoder | None]:
    """(signature, encoder) of a declared type. Values are already cast to ``tp`` by the core."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return compile_type(typing.get_args(tp)[0])
    if tp is Any or tp is object or tp is None or tp is types.NoneType:
        return "v", to_variant
    if origin is Union or origin is types.UnionType:
        return "v", to_variant
    if origin is typing.Literal:
        values = typing.get_args(tp)
        if values and all(type(v) is str for v in values):
            return "s", None
        return "v", to_variant
    if origin in (list, Sequence, typing.Sequence) or tp in (list, Sequence):
        args = typing.get_args(tp)
        return _array(args[0] if args else Any)
    if origin is tuple or tp is tuple:
        args = typing.get_args(tp)
        if not args:
            return _array(Any)
        if len(args) == 2 and args[1] is Ellipsis:
            return _array(args[0])
        if args == ((),):
            return "v", to_variant
        return _struct(args)
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        return _dict(args[0] if args else Any, args[1] if len(args) > 1 else Any)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum(tp)
        if tp is bool:
            return "b", None
        if tp is int:
            return "x", None
        if tp is float:
            return "d", None
        if tp is str:
            return "s", _check_str
        if issubclass(tp, datetime):
            return "s", to_plain
        if dataclasses.is_dataclass(tp):
            return "a{sv}", _dataclass_encoder(tp)
    return "v", to_variant


def _array(item: Any) -> tuple[str, Encoder | None]:
    sig, enc = compile_type(item)
    if enc is None:

        def encode_list(v: Any) -> Any:
            return v if type(v) is list else list(v)

        return "a" + sig, encode_list

    def encode_items(v: Any) -> Any:
        return [enc(x) for x in v]

    return "a" + sig, encode_items


def _struct(items: tuple[Any, ...]) -> tuple[str, Encoder | None]:
    compiled = [compile_type(a) for a in items]
    sig = "(" + "".join(s for s, _ in compiled) + ")"
    encs = [e for _, e in compiled]
    n = len(encs)

    def encode_struct(v: Any) -> Any:
        if len(v) != n:
            raise EncodeError(f"expected a tuple of {n} items, got {_short(v)}")
        return [x if e is None else e(x) for e, x in zip(encs, v, strict=True)]

    return sig, encode_struct


_KEY_SIGNATURES = frozenset("bxds")


def _dict(key: Any, value: Any) -> tuple[str, Encoder | None]:
    ksig, kenc = compile_type(key)
    if ksig not in _KEY_SIGNATURES:
        return "v", to_variant
    vsig, venc = compile_type(value)
    sig = "a{" + ksig + vsig + "}"
    if kenc is None and venc is None:
        return sig, None

    def encode_dict(v: Any) -> Any:
        return {(k if kenc is None else kenc(k)): (x if venc is None else venc(x)) for k, x in v.items()}

    return sig, encode_dict


def _enum(tp: type[enum.Enum]) -> tuple[str, Encoder | None]:
    values = [m.value for m in tp]
    if values and all(type(v) is str for v in values):
        return "s", _enum_value
    if values and all(type(v) is int for v in values):
        return "x", _enum_value
    return "v", to_variant


def _enum_value(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def _dataclass_encoder(tp: type) -> Encoder:
    fields: list[tuple[str, str, Encoder | None]] | None = None

    def encode_dataclass(v: Any) -> dict[str, Variant]:
        nonlocal fields
        if fields is None:  # resolved lazily: forward references may not exist at first use
            fields = [(n, *compile_type(a)) for n, a, _ in dataclass_fields(tp)]
        out: dict[str, Variant] = {}
        for name, sig, enc in fields:
            x = getattr(v, name)
            if x is None:
                out[name] = NULL
            elif sig == "v":
                out[name] = to_variant(x)
            else:
                out[name] = Variant(sig, x if enc is None else enc(x), False)
        return out

    return encode_dataclass


# ---------------------------------------------------------------------------------- decoding


def plain(value: Any) -> Any:
    """A received D-Bus value as plain Python: variants unwrapped, the null variant → None."""
    t = type(value)
    if t is Variant:
        if value.signature == "ay" and not value.value:
            return None
        return plain(value.value)
    if t is list or t is tuple:  # arrays; structs arrive as tuples
        return [plain(x) for x in value]
    if t is dict:
        return {k: plain(x) for k, x in value.items()}
    if t is bytes:
        return None if not value else list(value)
    return value


def needs_decoding(sig: str) -> bool:
    """Whether values of signature ``sig`` contain variants (else they are plain already)."""
    return "v" in sig or "ay" in sig
