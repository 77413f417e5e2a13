"""Module: an Object that other modules can find and call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pyobs.comm.acl import Acl
from pyobs.events import LogEvent
from pyobs.interfaces import IConfig, IModule
from pyobs.interfaces.interface import implemented_interfaces, methods_of
from pyobs.interfaces.types import ConfigCapabilities, ConfigValue
from pyobs.object import Object
from pyobs.utils.enums import ModuleState
from pyobs.utils.exceptions import ConfigError, InvalidArgumentError

from .logpublisher import LogPublisher

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def timeout(value: float | str | Callable[..., Any]) -> Callable[[F], F]:
    """Declare how long a method may take, so callers extend their deadline for that call.

    ``value`` is seconds, the name of an attribute or method of the module giving seconds, or a
    callable ``(module, **arguments) -> seconds`` (may be async), e.g. for an exposure::

        @timeout(lambda self, **kw: self.exposure_time + 30)
        async def grab_data(self, broadcast: bool = True, **kwargs: Any) -> str: ...
    """

    def decorator(func: F) -> F:
        func.__pyobs_timeout__ = value  # type: ignore[attr-defined]
        return func

    return decorator


class Module(Object, IModule, IConfig):
    """A module: its name comes from its comm, ``label`` is a human-readable name.

    ``acl`` restricts who may call the module's methods, as pyobs-core's option does (see
    :mod:`pyobs.comm.acl`).

    Config values are exposed through IConfig for every name added with :meth:`add_config`.
    With ``publish_logs`` (default), log records of INFO and above are sent as LogEvent, as
    pyobs-core modules do, so GUIs and loggers on the network show them.
    """

    def __init__(
        self,
        label: str | None = None,
        publish_logs: bool = True,
        acl: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
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
        self._config: dict[str, tuple[Callable[[], Any], Callable[[Any], Any] | None]] = {}

    @property
    def name(self) -> str:
        return self.comm.name

    @property
    def label(self) -> str:
        return self._label or self.name

    @property
    def module_state(self) -> ModuleState:
        return self._module_state

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
            ConfigCapabilities(caps={n: (True, setter is not None, False) for n, (_, setter) in self._config.items()}),
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

    async def get_permitted_methods(self, **kwargs: Any) -> list[str]:
        """Names of the methods the caller (``sender``, given by the transport) may call under our ACL."""
        sender = str(kwargs.get("sender", ""))
        if self._owns_comm:
            return self.comm.permitted_methods(sender)
        return sorted(methods_of(implemented_interfaces(self)))

    def add_config(self, name: str, getter: Callable[[], Any], setter: Callable[[Any], Any] | None = None) -> None:
        """Expose a configuration value through IConfig."""
        self._config[name] = (getter, setter)

    async def get_config_value(self, name: str, **kwargs: Any) -> ConfigValue:
        if name not in self._config:
            raise InvalidArgumentError(f"unknown config value '{name}'")
        return self._config[name][0]()  # type: ignore[no-any-return]

    async def set_config_value(self, name: str, value: ConfigValue, **kwargs: Any) -> None:
        entry = self._config.get(name)
        if entry is None:
            raise InvalidArgumentError(f"unknown config value '{name}'")
        if entry[1] is None:
            raise InvalidArgumentError(f"config value '{name}' is read-only")
        entry[1](value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.comm.name}>"
