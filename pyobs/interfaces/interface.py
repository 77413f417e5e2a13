"""The Interface base class and the method table derived from interfaces.

An interface is a class of abstract async methods. Its parameters' annotations are the contract
that every transport encodes against and that the comm core casts to, so the table built here
(:class:`MethodSpec`) is computed once per interface and reused on every call.
"""

from __future__ import annotations

import abc
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pyobs.utils.casting import Caster, CastError, caster

#: every Interface subclass by name (built-in catalog and user-defined ones alike)
INTERFACES: dict[str, type[Interface]] = {}

_EMPTY = inspect.Parameter.empty


class Interface(abc.ABC):
    """Base of all interfaces: abstract async methods plus an optional state and capabilities class.

    An interface declares the dataclasses of its state and capabilities *for itself* (inherited
    declarations do not count, see :meth:`own_state_class`), either as pyobs-core does::

        class IThing(Interface):
            state = ThingState
            capabilities = ThingCaps

    or with the older names ``state_class`` / ``capabilities_class``; both spellings are set.
    """

    version: ClassVar[int] = 1
    state: ClassVar[type | None] = None
    capabilities: ClassVar[type | None] = None
    state_class: ClassVar[type | None] = None
    capabilities_class: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # only register the interface classes themselves, not modules that implement them
        if _is_interface_class(cls):
            for short, long in (("state", "state_class"), ("capabilities", "capabilities_class")):
                own = cls.__dict__.get(short, cls.__dict__.get(long))
                if own is not None and not isinstance(own, type):
                    raise TypeError(f"{cls.__name__}.{short} must be a class, got {own!r}")
                if short in cls.__dict__ and long in cls.__dict__ and cls.__dict__[short] is not cls.__dict__[long]:
                    raise TypeError(f"{cls.__name__} declares both {short} and {long}, differently")
                if own is not None:
                    setattr(cls, short, own)
                    setattr(cls, long, own)
            INTERFACES[cls.__name__] = cls

    @classmethod
    def own_state_class(cls) -> type | None:
        """The state dataclass this interface declares itself (not inherited)."""
        return cls.__dict__.get("state_class")

    @classmethod
    def own_capabilities_class(cls) -> type | None:
        return cls.__dict__.get("capabilities_class")

    @classmethod
    def has_own_state(cls) -> bool:
        """Whether this interface declares a state itself (pyobs-core's name)."""
        return cls.own_state_class() is not None

    # pyobs-core gives every interface these three, so code may call them on anything that
    # implements an interface; a Proxy answers them from its caches, a local object has none.
    def get_state(self, interface: type[Interface], *, max_age: float | None = None) -> Any:
        """The latest known state of ``interface`` (None here: only a proxy knows states)."""
        return None

    def get_capabilities(self, interface: type[Interface]) -> Any:
        """The capabilities of ``interface`` (None here: only a proxy knows capabilities)."""
        return None

    async def wait_for_state(
        self,
        interface: type[Interface],
        timeout: float = 10.0,
        predicate: Callable[[Any], bool] | None = None,
        *,
        max_age: float | None = None,
    ) -> Any:
        """Wait for a state of ``interface`` (None here: only a proxy receives states)."""
        return None


F = TypeVar("F", bound=Callable[..., Any])


def default_reset(func: F) -> F:
    """Mark a base class's reset()/full_reset() that knows no driver settings (as pyobs-core)."""
    func.__pyobs_default_reset__ = True  # type: ignore[attr-defined]
    return func


def get_registered_interface(name: str) -> type[Interface] | None:
    """The interface class registered under ``name``, or None."""
    return INTERFACES.get(name)


def registered_interfaces() -> dict[str, type[Interface]]:
    """A copy of every registered interface class by name."""
    return dict(INTERFACES)


def _is_interface_class(cls: type) -> bool:
    """An interface class has only abstract methods of its own and Interfaces as bases."""
    if not all(issubclass(b, Interface) or b is abc.ABC for b in cls.__bases__):
        return False
    for name, value in cls.__dict__.items():
        if inspect.isfunction(value) and not name.startswith("_"):
            if not getattr(value, "__isabstractmethod__", False):
                return False
    return True


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required
    cast: Caster

    @property
    def required(self) -> bool:
        return self.default is _EMPTY


@dataclass(frozen=True)
class MethodSpec:
    """One remotely callable method as declared by an interface."""

    name: str
    interface: type[Interface]
    params: tuple[Param, ...]
    returns: Any
    cast_return: Caster

    @property
    def void(self) -> bool:
        return self.returns is None or self.returns is type(None)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """Caller side: positional + keyword arguments → full positional list (defaults filled), cast.

        Raises TypeError naming the method and the parameter.
        """
        params = self.params
        if not kwargs and len(args) == len(params):  # the common case, kept cheap
            try:
                return [p.cast(a) for p, a in zip(params, args, strict=True)]
            except CastError:
                pass  # redone below to name the argument
        if len(args) > len(params):
            raise TypeError(f"{self.name}() takes {len(params)} arguments but {len(args)} were given")
        out: list[Any] = []
        for i, p in enumerate(params):
            if i < len(args):
                v = args[i]
                if p.name in kwargs:
                    raise TypeError(f"{self.name}() got multiple values for argument {p.name!r}")
            elif p.name in kwargs:
                v = kwargs[p.name]
            elif p.default is not _EMPTY:
                v = p.default
            else:
                raise TypeError(f"{self.name}() missing required argument {p.name!r}")
            try:
                out.append(p.cast(v))
            except CastError as exc:
                raise _argument_error(self.name, p.name, exc) from None
        if kwargs:
            unknown = [k for k in kwargs if k not in self.param_names]
            if unknown:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {unknown[0]!r}")
        return out

    @functools.cached_property
    def param_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params)

    def cast_args(self, args: list[Any]) -> list[Any]:
        """Callee side: a positional list from the wire → cast values (missing trailing → defaults)."""
        params = self.params
        if len(args) == len(params):
            try:
                return [p.cast(a) for p, a in zip(params, args, strict=True)]
            except CastError:
                pass  # redone below to name the argument
        if len(args) > len(params):
            raise TypeError(f"{self.name}() takes {len(params)} arguments but {len(args)} were given")
        out: list[Any] = []
        for i, p in enumerate(params):
            if i < len(args):
                try:
                    out.append(p.cast(args[i]))
                except CastError as exc:
                    raise _argument_error(self.name, p.name, exc) from None
            elif p.default is not _EMPTY:
                out.append(p.default)
            else:
                raise TypeError(f"{self.name}() missing required argument {p.name!r}")
        return out


def _argument_error(method: str, param: str, exc: CastError) -> Exception:
    """TypeError for a value of the wrong type, ValueError for a wrong value of the right type."""
    cls = ValueError if isinstance(exc, ValueError) else TypeError
    return cls(f"{method}() argument {param!r}: {exc}")


def _method_spec(iface: type[Interface], name: str, func: Any) -> MethodSpec:
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    params = []
    for p in list(sig.parameters.values())[1:]:  # skip self
        if p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue  # caller context (**kwargs) never travels
        ann = hints.get(p.name, Any)
        params.append(Param(p.name, ann, p.default, caster(ann)))
    ret = hints.get("return", Any)
    return MethodSpec(name, iface, tuple(params), ret, caster(ret))


@functools.lru_cache(maxsize=1024)
def own_methods(iface: type[Interface]) -> dict[str, MethodSpec]:
    """Methods this interface declares itself (not its bases), alphabetical."""
    out = {}
    for name in sorted(iface.__dict__):
        value = iface.__dict__[name]
        if inspect.isfunction(value) and getattr(value, "__isabstractmethod__", False):
            out[name] = _method_spec(iface, name, value)
    return out


@functools.lru_cache(maxsize=1024)
def interface_methods(iface: type[Interface]) -> dict[str, MethodSpec]:
    """All methods of an interface including its bases (base first)."""
    out: dict[str, MethodSpec] = {}
    for base in reversed(iface.__mro__):
        if isinstance(base, type) and issubclass(base, Interface) and base is not Interface:
            out.update(own_methods(base))
    return out


def interface_closure(interfaces: Iterable[type[Interface]]) -> list[type[Interface]]:
    """The given interfaces plus all their base interfaces, each once, in a stable order."""
    seen: dict[type[Interface], None] = {}
    for iface in interfaces:
        for base in reversed(iface.__mro__):
            if isinstance(base, type) and issubclass(base, Interface) and base is not Interface:
                if _is_interface_class(base):
                    seen[base] = None
    return sorted(seen, key=lambda c: c.__name__)


def implemented_interfaces(obj_or_cls: Any) -> list[type[Interface]]:
    """All interfaces an object or class implements (with bases), sorted by name."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return interface_closure(
        c for c in cls.__mro__ if isinstance(c, type) and issubclass(c, Interface) and c is not Interface
    )


def methods_of(interfaces: Iterable[type[Interface]]) -> dict[str, MethodSpec]:
    """The method table of a set of interfaces."""
    out: dict[str, MethodSpec] = {}
    for iface in interface_closure(interfaces):
        out.update(own_methods(iface))
    return out


def interface_by_name(name: str, version: int | None = None) -> type[Interface] | None:
    """Look up a known interface; a version mismatch counts as unknown."""
    iface = INTERFACES.get(name)
    if iface is None or (version is not None and iface.version != version):
        return None
    return iface
