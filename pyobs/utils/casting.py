"""Casting values to annotated types, and back to plain JSON-able values.

Every transport hands the core "plain" values (None, bool, int, float, str, list, tuple, dict);
the core turns them into what the interface declares with :func:`cast`. Casters are compiled once
per annotation, because this sits on every call's hot path.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Union

from .time import Time

Caster = Callable[[Any], Any]


class CastError(TypeError):
    """A value does not fit its declared type; the message names both."""


class CastValueError(CastError, ValueError):
    """A value of the right kind but not an allowed one (an unknown enum value): also a ValueError,
    as pyobs-core reports it."""


def type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _fail(value: Any, tp: Any) -> CastError:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return CastError(f"expected {type_name(tp)}, got {type(value).__name__} {text}")


def cast(value: Any, tp: Any) -> Any:
    """Return ``value`` as type ``tp``; raise :class:`CastError` naming the mismatch."""
    return caster(tp)(value)


@functools.lru_cache(maxsize=4096)
def caster(tp: Any) -> Caster:
    """A function that casts a plain (or already typed) value to ``tp``."""
    if tp is Any or tp is object:
        return _identity
    if tp is None or tp is types.NoneType:
        return _cast_none
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return caster(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return _union_caster(tp)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)

        def cast_literal(v: Any) -> Any:
            if v in allowed:
                return v
            raise _fail(v, tp)

        return cast_literal
    if origin in (list, Sequence, typing.Sequence) or tp in (list, Sequence):
        args = typing.get_args(tp)
        return _list_caster(caster(args[0]) if args else _identity, tp)
    if origin is tuple or tp is tuple:
        return _tuple_caster(tp)
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        kc = caster(args[0]) if args else _identity
        vc = caster(args[1]) if len(args) > 1 else _identity
        return _dict_caster(kc, vc, tp)
    if isinstance(tp, type):
        if tp is bool:
            return _cast_bool
        if issubclass(tp, enum.Enum):
            return _enum_caster(tp)
        if tp is int:
            return _cast_int
        if tp is float:
            return _cast_float
        if tp is str:
            return _cast_str
        if issubclass(tp, datetime):
            return _cast_time
        if dataclasses.is_dataclass(tp):
            return _dataclass_caster(tp)
        return _instance_caster(tp)
    if isinstance(tp, typing.TypeVar) or isinstance(tp, str):
        return _identity
    return _identity


def _identity(v: Any) -> Any:
    return v


def _cast_none(v: Any) -> None:
    if v is None:
        return None
    raise _fail(v, None)


def _cast_bool(v: Any) -> bool:
    if v is True or v is False:
        return v
    if isinstance(v, str) and v in ("true", "false"):
        return v == "true"
    raise _fail(v, bool)


def _cast_int(v: Any) -> int:
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is not bool and isinstance(v, int):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise _fail(v, int)


def _cast_float(v: Any) -> float:
    t = type(v)
    if t is float:
        return v  # type: ignore[no-any-return]
    if t is not bool and isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise _fail(v, float)


def _cast_str(v: Any) -> str:
    if type(v) is str:
        return v
    if isinstance(v, str):  # StrEnum members are str
        return str(v.value) if isinstance(v, enum.Enum) else str(v)
    raise _fail(v, str)


def _cast_time(v: Any) -> Time:
    if type(v) is Time:
        return v  # type: ignore[no-any-return]
    if isinstance(v, datetime):
        return Time.from_datetime(v)
    if isinstance(v, str):
        try:
            return Time.parse(v)
        except ValueError:
            raise _fail(v, Time) from None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Time.from_unix(float(v))
    raise _fail(v, Time)


def _enum_caster(tp: type[enum.Enum]) -> Caster:
    values = ", ".join(repr(m.value) for m in tp)

    def cast_enum(v: Any) -> Any:
        if type(v) is tp:
            return v
        try:
            return tp(v)
        except ValueError:
            if isinstance(v, str) and v in tp.__members__:
                return tp[v]
            raise CastValueError(f"{v!r} is not a valid {tp.__name__} (one of {values})") from None

    return cast_enum


def _union_caster(tp: Any) -> Caster:
    members = typing.get_args(tp)
    optional = types.NoneType in members
    others = [m for m in members if m is not types.NoneType]
    if len(others) == 1:
        inner = caster(others[0])
        if optional:

            def cast_optional(v: Any) -> Any:
                return None if v is None else inner(v)

            return cast_optional
        return inner
    casters = [caster(m) for m in others]
    exact = tuple(
        m for m in others if isinstance(m, type) and typing.get_origin(m) is None and m is not float
    )

    def cast_union(v: Any) -> Any:
        if v is None and optional:
            return None
        if exact and type(v) in exact:
            return v
        for c in casters:
            try:
                return c(v)
            except (CastError, ValueError, TypeError):
                continue
        raise _fail(v, tp)

    return cast_union


def _list_caster(item: Caster, tp: Any) -> Caster:
    def cast_list(v: Any) -> list[Any]:
        if not isinstance(v, (list, tuple)):
            raise _fail(v, tp)
        if item is _identity:
            return list(v)
        return [item(x) for x in v]

    return cast_list


def _tuple_caster(tp: Any) -> Caster:
    args = typing.get_args(tp)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item = caster(args[0]) if args else _identity

        def cast_var_tuple(v: Any) -> tuple[Any, ...]:
            if not isinstance(v, (list, tuple)):
                raise _fail(v, tp)
            return tuple(item(x) for x in v)

        return cast_var_tuple
    items = [caster(a) for a in args]

    def cast_tuple(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, (list, tuple)) or len(v) != len(items):
            raise _fail(v, tp)
        return tuple(c(x) for c, x in zip(items, v, strict=True))

    return cast_tuple


def _dict_caster(kc: Caster, vc: Caster, tp: Any) -> Caster:
    def cast_dict(v: Any) -> dict[Any, Any]:
        if not isinstance(v, Mapping):
            raise _fail(v, tp)
        return {kc(k): vc(x) for k, x in v.items()}

    return cast_dict


@functools.lru_cache(maxsize=1024)
def dataclass_fields(tp: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, resolved annotation, required) for each init field of a dataclass (cached: resolving
    annotations is slow and this sits on the event decoding path)."""
    hints = typing.get_type_hints(tp, include_extras=True)
    out = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, hints.get(f.name, Any), required))
    return tuple(out)


def _dataclass_caster(tp: type) -> Caster:
    fields: list[tuple[str, Caster, bool]] | None = None

    def cast_dataclass(v: Any) -> Any:
        nonlocal fields
        if isinstance(v, tp):
            return v
        if not isinstance(v, Mapping):
            raise _fail(v, tp)
        if fields is None:  # resolved lazily: forward references may not exist at first use
            fields = [(n, caster(a), r) for n, a, r in dataclass_fields(tp)]
        kwargs = {}
        for name, c, required in fields:
            if name in v:
                try:
                    kwargs[name] = c(v[name])
                except CastError as exc:
                    raise CastError(f"{tp.__name__}.{name}: {exc}") from None
            elif required:
                raise CastError(f"{tp.__name__}: missing field {name!r}")
        return tp(**kwargs)

    return cast_dataclass


def _instance_caster(tp: type) -> Caster:
    def cast_instance(v: Any) -> Any:
        if isinstance(v, tp):
            return v
        raise _fail(v, tp)

    return cast_instance


def to_plain(value: Any) -> Any:
    """Turn a typed value into JSON-able data: enums to values, times to ISO, dataclasses to dicts."""
    t = type(value)
    if value is None or t is str or t is int or t is float or t is bool:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return (value if isinstance(value, Time) else Time.from_datetime(value)).isot
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(x) for x in value]
    if isinstance(value, Mapping):
        return {to_plain(k): to_plain(x) for k, x in value.items()}
    if isinstance(value, (str, int, float)):
        return value
    raise CastError(f"cannot send a value of type {t.__name__}: {value!r}")
