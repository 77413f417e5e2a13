"""Object: the base of everything built from configuration, and the config builder."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pyobs.comm.comm import Comm
from pyobs.comm.proxy import ProxyRequest
from pyobs.utils.casting import CastError, cast
from pyobs.utils.exceptions import ConfigError
from pyobs.utils.owner import current_owner

log = logging.getLogger(__name__)
T = TypeVar("T")


def get_class_from_string(path: str, key: str = "class") -> type:
    """Import ``package.module.Class``; ConfigError naming the problem otherwise."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(key, f"expected a dotted class path like 'pyobs.modules.Module', got {path!r}")
    module_name, _, cls_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(key, f"unknown module '{module_name}' ({exc})") from None
    except Exception as exc:  # the module exists but failed to import
        raise ConfigError(key, f"module '{module_name}' failed to import: {exc}") from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ConfigError(key, f"unknown class '{cls_name}' in module '{module_name}'")
    return cls


def get_object(config: Any, object_class: type[T] | None = None, key: str = "", **kwargs: Any) -> T:
    """Build an object from a config dict ``{class: ..., arg: value, ...}``.

    Nested dicts with ``class:`` are built first. ``kwargs`` are extra arguments (not checked
    against the config). An already built object is returned as it is (type-checked).
    Errors are :class:`ConfigError` naming the key path and the problem.
    """
    if object_class is not None and isinstance(config, object_class):
        return config
    if not isinstance(config, dict):
        expected = object_class.__name__ if object_class is not None else "an object"
        raise ConfigError(key, f"expected a mapping with 'class:' for {expected}, got {config!r}")
    if "class" not in config:
        raise ConfigError(key, "missing 'class:'")
    class_key = f"{key}.class" if key else "class"
    cls = get_class_from_string(config["class"], class_key)
    if object_class is not None and not issubclass(cls, object_class):
        raise ConfigError(class_key, f"{config['class']} is not a {object_class.__name__}")
    args = {k: v for k, v in config.items() if k != "class"}
    args = {k: _build_nested(v, f"{key}.{k}" if key else k) for k, v in args.items()}
    args = _check_arguments(cls, args, key)
    try:
        return cls(**args, **kwargs)  # type: ignore[no-any-return]
    except ConfigError as exc:  # raised by the constructor: its keys are relative to this object
        raise ConfigError(f"{key}.{exc.key}" if key and exc.key else key or exc.key, exc.problem) from None
    except TypeError as exc:
        raise ConfigError(key or str(config["class"]), f"{config['class']}: {exc}") from None


def _build_nested(value: Any, key: str) -> Any:
    if isinstance(value, dict) and "class" in value:
        return get_object(value, key=key)
    if isinstance(value, list):
        return [_build_nested(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _check_arguments(cls: type, args: dict[str, Any], key: str) -> dict[str, Any]:
    """Unknown, missing and mistyped arguments, named by their key."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return args
    params = sig.parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    hints = _init_hints(cls)
    out = dict(args)
    for name, value in args.items():
        path = f"{key}.{name}" if key else name
        if name not in params:
            if not accepts_any:
                known = ", ".join(p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD)
                raise ConfigError(path, f"unexpected argument for {cls.__name__} (known: {known})")
            continue
        ann = hints.get(name)
        if ann is not None:
            try:
                out[name] = cast(value, ann)
            except CastError as exc:
                raise ConfigError(path, f"wrong type: {exc}") from None
    for name, p in params.items():
        if (
            p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            and name not in args
        ):
            path = f"{key}.{name}" if key else name
            raise ConfigError(path, f"missing required argument for {cls.__name__}")
    return out


def _init_hints(cls: type) -> dict[str, Any]:
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__:
            try:
                return typing.get_type_hints(klass.__dict__["__init__"])
            except Exception:
                return {}
    return {}


def _outermost(kind: str, func: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Wrap open()/close() so the object notices when the outermost call (the subclass's) ends.

    Subclasses call ``await super().open()`` first and register events afterwards; the module
    must go online only after all of that, so the comm is announced when the outermost
    ``open()`` returns, and closed when the outermost ``close()`` returns.
    """

    @functools.wraps(func)
    async def wrapper(self: Object) -> None:
        depth = self.__dict__.get("_lifecycle_depth", 0)
        self._lifecycle_depth = depth + 1
        # our code runs: log records (and tasks started here) belong to this object
        owner = current_owner.set(self) if depth == 0 else None
        try:
            try:
                await func(self)
            except BaseException:
                self._lifecycle_depth = depth
                if depth == 0 and kind == "close":
                    await self._after_close()
                raise
            self._lifecycle_depth = depth
            if depth == 0:
                await (self._after_open() if kind == "open" else self._after_close())
        finally:
            if owner is not None:
                current_owner.reset(owner)

    wrapper.__pyobs_lifecycle__ = True  # type: ignore[attr-defined]
    return wrapper


class Object:
    """Base of everything configurable: owns a comm and background tasks.

    Args:
        comm: a Comm, a config dict with ``class:``, or None for a DummyComm.
        timezone, location: site information, kept for modules that need it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for kind in ("open", "close"):
            func = cls.__dict__.get(kind)
            if func is not None and not getattr(func, "__pyobs_lifecycle__", False):
                setattr(cls, kind, _outermost(kind, func))

    def __init__(
        self,
        comm: Comm | dict[str, Any] | None = None,
        timezone: str = "utc",
        location: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            name = next(iter(kwargs))
            raise ConfigError(name, f"unexpected argument for {type(self).__name__}")
        if comm is None:
            from pyobs.comm.dummy import DummyComm

            self._comm: Comm = DummyComm()
        elif isinstance(comm, Comm):
            self._comm = comm
        else:
            self._comm = get_object(comm, Comm, key="comm")
        self.timezone = timezone
        self.location = location
        self._owns_comm = self._comm.module is None
        if self._owns_comm:
            self._comm.attach(self)
        self._background: list[tuple[Callable[[], Awaitable[Any]], bool]] = []
        self._background_tasks: list[asyncio.Task[Any]] = []
        self._lifecycle_depth = 0
        self._opened = False

    @property
    def comm(self) -> Comm:
        return self._comm

    def add_background_task(self, func: Callable[[], Awaitable[Any]], restart: bool = True) -> None:
        """Run ``func`` while the object is open; crashes are logged (and restarted if asked)."""
        self._background.append((func, restart))
        if self._opened:
            self._start_background(func, restart)

    def _start_background(self, func: Callable[[], Awaitable[Any]], restart: bool) -> None:
        self._background_tasks.append(asyncio.create_task(self._run_background(func, restart)))

    async def _run_background(self, func: Callable[[], Awaitable[Any]], restart: bool) -> None:
        name = getattr(func, "__qualname__", repr(func))
        while True:
            try:
                await func()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s of %s crashed%s", name, self, ", restarting" if restart else "")
                if not restart:
                    return
                await asyncio.sleep(1.0)

    async def open(self) -> None:
        """Open the object: connects the comm and starts background tasks."""
        if self._owns_comm:
            await self._comm.open()
        self._opened = True
        for func, restart in self._background:
            self._start_background(func, restart)

    async def _after_open(self) -> None:
        """The outermost open() finished: go online."""
        if self._owns_comm and self._comm.opened:
            await self._comm.announce()

    async def close(self) -> None:
        """Close the object: cancels background tasks."""
        self._opened = False
        tasks, self._background_tasks = self._background_tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    async def _after_close(self) -> None:
        if self._owns_comm:
            await self._comm.close()

    @property
    def opened(self) -> bool:
        return self._opened

    def proxy(self, name_or_object: Any, interface: type[T] | None = None) -> ProxyRequest[Any]:
        """A proxy to another module (``await`` it or use ``async with``); see :meth:`Comm.proxy`."""
        return self._comm.proxy(name_or_object, interface)

    async def __aenter__(self) -> Object:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# Object's own open/close are the innermost ones; wrap them too so an Object alone works.
Object.open = _outermost("open", Object.__dict__["open"])  # type: ignore[method-assign,assignment]
Object.close = _outermost("close", Object.__dict__["close"])  # type: ignore[method-assign,assignment]
