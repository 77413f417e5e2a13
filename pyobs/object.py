"""Object: the base of everything built from configuration, and the config builder."""

from __future__ import annotations

import asyncio
import datetime
import functools
import importlib
import inspect
import logging
import typing
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pyobs.comm.backoff import RETRY_CAP, RETRY_FIRST, backoff
from pyobs.comm.comm import Comm
from pyobs.comm.proxy import ProxyRequest
from pyobs.utils.casting import CastError, cast
from pyobs.utils.exceptions import ConfigError
from pyobs.utils.owner import current_owner

log = logging.getLogger(__name__)
T = TypeVar("T")


def get_class_from_string(class_name: str, key: str = "class") -> type:
    """Import ``package.module.Class``; ConfigError naming the problem otherwise."""
    path = class_name
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
    against the config; they win over it, as in pyobs-core). An already built object is returned
    as it is (type-checked); a class is instantiated with ``kwargs``.
    Errors are :class:`ConfigError` naming the key path and the problem.
    """
    if object_class is not None and isinstance(config, object_class):
        return config
    if isinstance(config, type):
        if object_class is not None and not issubclass(config, object_class):
            raise ConfigError(key, f"{config.__name__} is not a {object_class.__name__}")
        return config(**kwargs)  # type: ignore[no-any-return]
    if isinstance(config, dict) and kwargs:
        config = {k: v for k, v in config.items() if k not in kwargs}
    if not isinstance(config, dict) and object_class is None and config is not None:
        return config  # type: ignore[no-any-return]  # an object as it is (pyobs-core)
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
    args = {k: v if k in _KEPT_AS_GIVEN else _build_nested(v, f"{key}.{k}" if key else k) for k, v in args.items()}
    args = _check_arguments(cls, args, key)
    try:
        return cls(**args, **kwargs)  # type: ignore[no-any-return]
    except ConfigError as exc:  # raised by the constructor: its keys are relative to this object
        raise ConfigError(f"{key}.{exc.key}" if key and exc.key else key or exc.key, exc.problem) from None
    except (TypeError, ValueError) as exc:  # a constructor refusing a value: one line, no traceback
        raise ConfigError(key or str(config["class"]), f"{config['class']}: {exc}") from None


#: options whose ``class:`` names a part of pyobs-core outside this package: kept as configured, not built
_KEPT_AS_GIVEN = frozenset({"vfs"})


def get_safe_object(config: Any, object_class: type[T] | None = None, **kwargs: Any) -> T | None:
    """Like :func:`get_object`, but None instead of an error (as pyobs-core)."""
    try:
        return get_object(config, object_class, **kwargs)
    except Exception:
        return None


def create_object(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Instantiate ``config["class"]`` with the rest of ``config``, ``args`` and ``kwargs`` (pyobs-core)."""
    if "class" not in config:
        raise ConfigError("", "missing 'class:'")
    cls = get_class_from_string(config["class"])
    cfg = {k: v for k, v in config.items() if k != "class" and k not in kwargs}
    return cls(*args, **cfg, **kwargs)


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
    # the options of the base classes too: a constructor passing **kwargs on takes theirs
    known_hints, accepts_any = _all_parameters(cls)
    out = dict(args)
    for name, value in args.items():
        path = f"{key}.{name}" if key else name
        if name not in params and name not in known_hints:
            if not accepts_any:
                known = ", ".join(sorted(known_hints))
                raise ConfigError(path, f"unexpected argument for {cls.__name__} (known: {known})")
            continue
        ann = known_hints.get(name)
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


def _all_parameters(cls: type) -> tuple[dict[str, Any], bool]:
    """Keyword parameters of ``cls``'s constructor and, following ``**kwargs``, of its bases'
    constructors: name → annotation (None if unknown); and whether unknown names are accepted."""
    hints_of: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return hints_of, False
        try:
            params = list(inspect.signature(init).parameters.values())[1:]  # without self
            hints = typing.get_type_hints(init)
        except Exception:
            return hints_of, True
        passes_on = False
        for p in params:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                passes_on = True
            elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
                hints_of.setdefault(p.name, hints.get(p.name))
        if not passes_on:  # (Object passes what it does not take on to mixins later in the MRO)
            return hints_of, False
    return hints_of, True


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


class BackgroundTask:
    """A function an Object runs while it is open (see :meth:`Object.add_background_task`)."""

    def __init__(self, owner: Object, func: Callable[[], Awaitable[Any]], restart: bool) -> None:
        self._owner = owner
        self.func = func
        self.restart = restart
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Start it (again) unless it is running."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._owner._run_background(self.func, self.restart))

    def stop(self) -> None:
        """Cancel it."""
        if self._task is not None:
            self._task.cancel()

    @property
    def task(self) -> asyncio.Task[Any] | None:
        return self._task

    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()


class Object:
    """Base of everything configurable: owns a comm, background tasks and child objects.

    Args:
        vfs: pyobs-core's virtual file system config; accepted and kept (``self.vfs``), not used
            by this package.
        comm: a Comm, a config dict with ``class:``, or None for a DummyComm.
        timezone: the site's time zone (``self.timezone`` is a tzinfo).
        location: the site, a name or ``{longitude, latitude, elevation}``; kept as given.
        observer: pyobs-core's astroplan Observer; accepted and kept (``self.observer``), not used here.

    Keyword arguments no class in the MRO takes are an error naming the first of them. Mixins
    listed after Object take their own keyword arguments: Object passes what it does not know on.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for kind in ("open", "close"):
            func = cls.__dict__.get(kind)
            if func is not None and not getattr(func, "__pyobs_lifecycle__", False):
                setattr(cls, kind, _outermost(kind, func))

    def __init__(
        self,
        vfs: Any = None,
        comm: Comm | dict[str, Any] | None = None,
        timezone: str | datetime.tzinfo | None = "utc",
        location: dict[str, Any] | str | None = None,
        observer: Any = None,
        **kwargs: Any,
    ) -> None:
        self._vfs = vfs
        self._observer = observer
        self._location = location
        self._timezone = _tzinfo(timezone)
        if comm is None:
            from pyobs.comm.dummy import DummyComm

            self._comm: Comm = DummyComm()
        elif isinstance(comm, Comm):
            self._comm = comm
        else:
            self._comm = get_object(comm, Comm, key="comm")
        # Module(own_comm=False) says so before it gets here: then another object owns the comm
        self._owns_comm = self._comm.module is None and self.__dict__.get("_own_comm", True)
        if self._owns_comm:
            self._comm.attach(self)
        self._background: list[BackgroundTask] = []
        self._child_objects: list[Any] = []
        self._owned = False
        self._lifecycle_depth = 0
        self._opened = False
        self._closing: asyncio.Event | None = None
        _init_rest_of_mro(self, kwargs)

    @property
    def comm(self) -> Comm:
        return self._comm

    @property
    def vfs(self) -> Any:
        """The ``vfs:`` config as given (pyobs-core's virtual file system is not part of this package)."""
        return self._vfs

    @property
    def observer(self) -> Any:
        """The ``observer`` given, if any (pyobs-core builds an astroplan Observer; this package does not)."""
        return self._observer

    @property
    def location(self) -> Any:
        """The site as configured: a name or ``{longitude, latitude, elevation}``."""
        return self._location

    @property
    def timezone(self) -> datetime.tzinfo:
        return self._timezone

    def add_background_task(
        self, func: Callable[[], Awaitable[Any]], restart: bool = True, autostart: bool = True
    ) -> BackgroundTask:
        """Run ``func`` while the object is open; crashes are logged (and restarted if asked).

        With ``autostart=False`` it runs only when ``.start()`` is called on the returned task.
        """
        task = BackgroundTask(self, func, restart)
        if autostart:
            self._background.append(task)
            if self._opened:
                task.start()
        return task

    async def _run_background(self, func: Callable[[], Awaitable[Any]], restart: bool) -> None:
        name = getattr(func, "__qualname__", repr(func))
        pauses = backoff(RETRY_FIRST, RETRY_CAP)  # a task that keeps crashing is restarted less often
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
                await asyncio.sleep(next(pauses))

    async def open(self) -> None:
        """Open the object: connects the comm, starts background tasks, opens child objects."""
        if self._owns_comm:
            await self._comm.open()
        self._opened = True
        for task in self._background:
            task.start()
        for child in self._child_objects:
            opener = getattr(child, "open", None)
            if opener is not None:
                result = opener()
                if inspect.isawaitable(result):
                    await result

    async def _after_open(self) -> None:
        """The outermost open() finished: go online."""
        if self._owns_comm and self._comm.opened:
            await self._comm.announce()

    async def close(self) -> None:
        """Close the object: closes child objects, cancels background tasks."""
        self._opened = False
        for child in reversed(self._child_objects):
            closer = getattr(child, "close", None)
            if closer is not None:
                try:
                    result = closer()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("closing child object %r of %r failed", child, self)
        tasks = [t.task for t in self._background if t.task is not None and not t.task.done()]
        for t in self._background:
            t.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    @staticmethod
    def config_or_object_get_param(config_or_object: Any, param: str) -> Any:
        """A parameter of a config dict or an object; None if it has none (a class has none)."""
        if isinstance(config_or_object, dict):
            return config_or_object.get(param)
        if isinstance(config_or_object, type):
            return None
        return getattr(config_or_object, param, None)

    def quit(self) -> None:
        """Ask whoever runs this object (the ``pyobs`` command, a MultiModule) to close it."""
        self.closing.set()

    @property
    def closing(self) -> asyncio.Event:
        """Set by :meth:`quit`."""
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    def get_object(
        self, config_or_object: Any, object_class: type[T] | None = None, copy_comm: bool = True, **kwargs: Any
    ) -> Any:
        """Build an object from a config (or check a given one), sharing this object's comm (unless
        ``copy_comm=False``), time zone, vfs and observer where the config gives none."""
        params = dict(kwargs)
        if copy_comm:
            params["comm"] = self._comm
        for name, value in (("timezone", self._timezone), ("vfs", self._vfs), ("observer", self._observer)):
            given = config_or_object.get(name) if isinstance(config_or_object, dict) else None
            if given is None and value is not None and name not in params:
                params[name] = value
        if isinstance(config_or_object, dict) or isinstance(config_or_object, type):
            cls = get_class_from_string(config_or_object["class"]) if isinstance(config_or_object, dict) else None
            target = cls if cls is not None else config_or_object
            params = _accepted(target, params, keep={"comm"} if copy_comm else set())
        return get_object(config_or_object, object_class, **params)

    def get_safe_object(
        self, config_or_object: Any, object_class: type[T] | None = None, copy_comm: bool = True, **kwargs: Any
    ) -> Any:
        """Like :meth:`get_object`, but None instead of an error."""
        try:
            return self.get_object(config_or_object, object_class, copy_comm, **kwargs)
        except Exception:
            return None

    def add_child_object(
        self, config_or_object: Any, object_class: type[T] | None = None, copy_comm: bool = True, **kwargs: Any
    ) -> Any:
        """Like :meth:`get_object`; the object is opened and closed with this one."""
        obj = self.get_object(config_or_object, object_class, copy_comm, **kwargs)
        if not getattr(obj, "_owned", False):
            try:
                obj._owned = True
            except AttributeError:
                pass
            self._child_objects.append(obj)
        return obj

    async def _after_close(self) -> None:
        if self._owns_comm:
            await self._comm.close()

    @property
    def opened(self) -> bool:
        return self._opened

    def proxy(self, name_or_object: Any, obj_type: type[T] | None = None) -> ProxyRequest[Any]:
        """A proxy to another module (``await`` it or use ``async with``); see :meth:`Comm.proxy`."""
        return self._comm.proxy(name_or_object, obj_type)

    def safe_proxy(self, name_or_object: Any, obj_type: type[T] | None = None) -> ProxyRequest[Any]:
        """Like :meth:`proxy`, but None instead of ValueError."""
        return self._comm.safe_proxy(name_or_object, obj_type)

    async def has_proxy(self, name_or_object: Any, obj_type: type[Any] | None = None) -> bool:
        """Whether a proxy of that type can be had now."""
        return await self._comm.has_proxy(name_or_object, obj_type)

    async def __aenter__(self) -> Object:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _tzinfo(timezone: str | datetime.tzinfo | None) -> datetime.tzinfo:
    if timezone is None:
        return datetime.UTC
    if isinstance(timezone, datetime.tzinfo):
        return timezone
    if not isinstance(timezone, str):
        raise ConfigError("timezone", f"expected a time zone name, got {timezone!r}")
    if timezone.lower() in ("utc", "z", "gmt"):
        return datetime.UTC
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError("timezone", f"unknown time zone {timezone!r}") from None


def _init_rest_of_mro(obj: Object, kwargs: dict[str, Any]) -> None:
    """Pass what Object did not take to the next class in the MRO (mixins after Object take theirs);
    what nobody takes is a ConfigError naming it."""
    try:
        super(Object, obj).__init__(**kwargs)
    except TypeError as exc:
        if not kwargs or "object.__init__()" not in str(exc):
            raise
        # the deepest cooperative __init__ that forwarded to object.__init__ holds the leftovers
        leftover = kwargs
        tb = exc.__traceback__
        while tb is not None:
            frame_kwargs = tb.tb_frame.f_locals.get("kwargs")
            if isinstance(frame_kwargs, dict) and frame_kwargs:
                leftover = frame_kwargs
            tb = tb.tb_next
        name = sorted(leftover)[0]
        raise ConfigError(name, f"unexpected argument for {type(obj).__name__}") from None


def _accepted(target: Any, params: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """The inherited parameters (comm, timezone, ...) the target class takes; explicit ones stay."""
    if not isinstance(target, type):
        return params
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return params
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return params
    inherited = {"comm", "timezone", "vfs", "observer"} - keep
    return {k: v for k, v in params.items() if k not in inherited or k in sig.parameters}


# Object's own open/close are the innermost ones; wrap them too so an Object alone works.
Object.open = _outermost("open", Object.__dict__["open"])  # type: ignore[method-assign,assignment]
Object.close = _outermost("close", Object.__dict__["close"])  # type: ignore[method-assign,assignment]
