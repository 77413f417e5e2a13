"""Module: an Object that other modules can find and call."""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from pyobs.comm.acl import Acl
from pyobs.comm.calls import report_progress
from pyobs.events import LogEvent
from pyobs.interfaces import IConfig, IModule, IResettable
from pyobs.interfaces.interface import Interface, implemented_interfaces, methods_of
from pyobs.interfaces.types import ConfigCapabilities, ConfigValue
from pyobs.object import Object
from pyobs.utils.enums import ModuleState
from pyobs.utils.exceptions import ConfigError, InvalidArgumentError, UnknownMethodError

from .logpublisher import LogPublisher

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def timeout(func_timeout: float | str | Callable[..., Any] | None = None) -> Callable[[F], F]:
    """Declare how long a method may take, so callers extend their deadline for that call.

    ``func_timeout`` is seconds, the name of an attribute or method of the module giving seconds, a
    callable ``(module, **arguments) -> seconds`` (may be async), e.g. for an exposure::

        @timeout(lambda self, **kw: self.exposure_time + 30)
        async def grab_data(self, broadcast: bool = True, **kwargs: Any) -> str: ...

    or, as in pyobs-core, an arithmetic expression of the arguments (``"exposure_time + 10"``).
    """

    def decorator(func: F) -> F:
        func.__pyobs_timeout__ = func_timeout  # type: ignore[attr-defined]
        return func

    return decorator


def raises(*exceptions: type[Exception]) -> Callable[[F], F]:
    """Document which pyobs exceptions a method raises (pyobs-core's decorator; metadata only)."""

    def decorator(func: F) -> F:
        func.raises = exceptions  # type: ignore[attr-defined]
        return func

    return decorator


class Module(Object, IModule, IConfig):
    """A module: its name comes from its comm, ``label`` is a human-readable name.

    ``acl`` restricts who may call the module's methods, as pyobs-core's option does (see
    :mod:`pyobs.comm.acl`).

    Config values are exposed through IConfig for every name added with :meth:`add_config`, and,
    as in pyobs-core, for every constructor argument (and ``additional_config_variables``) the
    module has ``_get_config_<name>`` / ``_set_config_<name>`` / ``_get_config_options_<name>``
    methods for.
    With ``publish_logs`` (default), log records of INFO and above are sent as LogEvent, as
    pyobs-core modules do, so GUIs and loggers on the network show them.

    Args:
        label: human-readable name (default: the module's name).
        own_comm: whether the module opens and closes its comm (False: another object owns it,
            and the module is not reachable through it).
        additional_config_variables: more names to look for config getters/setters.
        publish_logs: send log records as LogEvent.
    """

    def __init__(
        self,
        label: str | None = None,
        own_comm: bool = True,
        additional_config_variables: list[str] | None = None,
        acl: dict[str, Any] | None = None,
        publish_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        self._own_comm = own_comm  # read by Object.__init__
        super().__init__(**kwargs)
        parsed_acl = Acl.from_config(acl, implemented_interfaces(self))
        if parsed_acl is not None:
            if not self._owns_comm:
                raise ConfigError("acl", "the module shares another module's comm, whose calls it does not check")
            self.comm.set_acl(parsed_acl)
        self._label = label
        self._publish_logs = publish_logs
        self._log_handler: LogPublisher | None = None
        self._module_state = ModuleState.STARTING
        self._error_message = ""
        self._additional_config_variables = list(additional_config_variables or [])
        self._config: dict[str, tuple[Callable[[], Any], Callable[[Any], Any] | None]] = {}
        self._config_options: dict[str, Callable[[], Any]] = {}
        self._find_config_methods()

    @property
    def name(self) -> str:
        return self.comm.name

    @property
    def label(self) -> str:
        return self._label or self.name

    def report_progress(self, fraction: float | None = None, message: str = "") -> bool:
        """Tell the caller of the method being served how far it got (``fraction`` 0..1 or None)
        and what it does; see :func:`pyobs.comm.calls.report_progress`. False: nobody to tell."""
        return report_progress(fraction, message)

    @property
    def module_state(self) -> ModuleState:
        return self._module_state

    async def get_label(self, **kwargs: Any) -> str:
        return self.label

    async def get_version(self, **kwargs: Any) -> str:
        """The version this module announces to its peers."""
        from pyobs import __version__

        return __version__

    @property
    def interfaces(self) -> list[type[Interface]]:
        """The interfaces this module implements."""
        return implemented_interfaces(self)

    @property
    def methods(self) -> dict[str, tuple[Callable[..., Any], inspect.Signature, dict[str, Any]]]:
        """Remotely callable methods: name → (bound method, signature, type hints), as pyobs-core."""
        out = {}
        for name in methods_of(self.interfaces):
            func = getattr(self, name)
            out[name] = (func, inspect.signature(func), typing.get_type_hints(func))
        return out

    @staticmethod
    def new_event_loop() -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    async def startup(self) -> None:
        """Open the module and make it ready (what the ``pyobs`` command and MultiModule call).

        A module implementing IResettable is put into its configured state with ``full_reset()``
        first, as pyobs-core does.
        """
        await self.open()
        if isinstance(self, IResettable):
            try:
                await self.full_reset()
            except Exception:
                log.exception("could not reset module %s to its defaults during startup", self.name)
        missing = self.comm.missing_published_state(self.interfaces)
        for iface in missing:
            log.error("module %s implements %s, which declares a state, but published none", self.name, iface.__name__)
        if self._module_state == ModuleState.STARTING:
            await self.set_state(ModuleState.READY)

    async def main(self) -> None:
        """Runs until :meth:`quit` is called (override to do work; the module closes when it returns)."""
        await self.closing.wait()

    async def set_state(self, state: ModuleState, error_string: str | None = None) -> None:
        """Set the module's lifecycle state (and error text) and show it to peers."""
        state = ModuleState(state)
        if state != self._module_state:
            log.info("%s: module state %s", self.name, state)
        self._module_state = state
        if error_string is not None:
            self._error_message = error_string
        await self.comm.set_module_state(state, self._error_message)

    async def get_state(self, **kwargs: Any) -> ModuleState:  # type: ignore[override]
        """The module's lifecycle state (pyobs-core's Module.get_state)."""
        return self._module_state

    def set_error_string(self, error: str = "") -> None:
        self._error_message = error

    async def get_error_string(self, **kwargs: Any) -> str:
        """The error text of the module ("" if none)."""
        return self._error_message

    async def open(self) -> None:
        await super().open()
        if self._publish_logs:
            await self.comm.register_event(LogEvent)
            self._log_handler = LogPublisher(self)
            logging.getLogger().addHandler(self._log_handler)

    async def _after_open(self) -> None:
        # capabilities are constant per session: known before the module goes online
        self.comm.set_capabilities(
            IConfig,
            ConfigCapabilities(caps={n: self._config_cap(n) for n in self._config}),
        )
        await super()._after_open()
        self._module_state = ModuleState.READY

    async def close(self) -> None:
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            await self._log_handler.stop()
            self._log_handler = None
        await super().close()
        self._module_state = ModuleState.CLOSED

    def set_error(self, message: str) -> None:
        """Put the module into error state: only IModule methods may be called until reset."""
        self._module_state = ModuleState.ERROR
        self._error_message = message
        log.error("%s: %s", self.name, message)
        self._report_state()

    async def reset_error(self, **kwargs: Any) -> bool:
        """Leave the error state."""
        if self._module_state == ModuleState.ERROR:
            self._module_state = ModuleState.READY
            self._error_message = ""
            self._report_state()
        return True

    def _report_state(self) -> None:
        """Show the new state to peers (in the background: callers of set_error need not await)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not running yet: the state is announced when the module goes online
        self.comm._spawn(self.comm.set_module_state(self._module_state, self._error_message))

    async def execute(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call one of this module's remote methods by name, with the checks and casts a remote call
        gets (unknown method, module starting or in error)."""
        spec = self.comm.method(method)
        if spec is None:
            raise UnknownMethodError(f"module '{self.name}' has no method '{method}'")
        sender = str(kwargs.pop("sender", self.name))
        bound = spec.bind(args, kwargs)
        return await self.comm.handle_call(sender, method, bound, lambda seconds: None, cast=False)

    async def get_permitted_methods(self, **kwargs: Any) -> list[str]:
        """Names of the methods the caller (``sender``, given by the transport) may call under our ACL."""
        sender = str(kwargs.get("sender", ""))
        if self._owns_comm:
            return self.comm.permitted_methods(sender)
        return sorted(methods_of(implemented_interfaces(self)))

    def add_config(self, name: str, getter: Callable[[], Any], setter: Callable[[Any], Any] | None = None) -> None:
        """Expose a configuration value through IConfig (getter and setter may be sync or async)."""
        self._config[name] = (getter, setter)

    def _find_config_methods(self) -> None:
        """pyobs-core's convention: ``_get_config_<name>`` etc. for constructor arguments of the
        module's classes and for ``additional_config_variables``."""
        names: list[str] = []
        for cls in type(self).__mro__:
            if cls in (Module, Object) or "__init__" not in cls.__dict__:
                continue
            try:
                params = inspect.signature(cls.__dict__["__init__"]).parameters
            except (TypeError, ValueError):
                continue
            names += [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        for name in [*names, *self._additional_config_variables]:
            getter = getattr(self, f"_get_config_{name}", None)
            setter = getattr(self, f"_set_config_{name}", None)
            options = getattr(self, f"_get_config_options_{name}", None)
            if name not in self._config and (getter is not None or setter is not None):
                self._config[name] = (getter or _write_only(name), setter)
            if options is not None:
                self._config_options[name] = options

    async def get_config_caps(self, **kwargs: Any) -> dict[str, tuple[bool, bool, bool]]:
        """Per config value: (has getter, has setter, has options), as pyobs-core."""
        return {n: self._config_cap(n) for n in self._config}

    def _config_cap(self, name: str) -> tuple[bool, bool, bool]:
        getter, setter = self._config[name]
        return (not getattr(getter, "write_only", False), setter is not None, name in self._config_options)

    async def get_config_value(self, name: str, **kwargs: Any) -> ConfigValue:
        if name not in self._config:
            raise InvalidArgumentError(f"unknown config value '{name}'")
        return await _maybe_await(self._config[name][0]())  # type: ignore[no-any-return]

    async def get_config_value_options(self, name: str, **kwargs: Any) -> list[str]:
        """The values a config value may take, where the module lists them."""
        options = self._config_options.get(name)
        if options is None:
            raise InvalidArgumentError(f"config value '{name}' has no list of options")
        return list(await _maybe_await(options()))

    async def set_config_value(self, name: str, value: ConfigValue, **kwargs: Any) -> None:
        entry = self._config.get(name)
        if entry is None:
            raise InvalidArgumentError(f"unknown config value '{name}'")
        if entry[1] is None:
            raise InvalidArgumentError(f"config value '{name}' is read-only")
        await _maybe_await(entry[1](value))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.comm.name}>"


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _write_only(name: str) -> Callable[[], Any]:
    def getter() -> Any:
        raise InvalidArgumentError(f"config value '{name}' cannot be read")

    getter.write_only = True  # type: ignore[attr-defined]
    return getter
