"""Interfaces every module or many modules implement: module, config, running, ready, abort, reset."""

from abc import abstractmethod
from typing import Any, ClassVar

from .interface import Interface
from .types import (
    ConfigAppliedState,
    ConfigCapabilities,
    ConfigSchema,
    ConfigValue,
    ConfigValueTree,
    ModuleCapabilities,
    ReadyState,
    RunningState,
)


class IModule(Interface):
    """A pyobs module (every module implements it)."""

    capabilities_class: ClassVar[type | None] = ModuleCapabilities

    @abstractmethod
    async def reset_error(self, **kwargs: Any) -> bool:
        """Resets an error state of the module; returns success."""
        ...

    @abstractmethod
    async def get_permitted_methods(self, **kwargs: Any) -> list[str]:
        """Names of the methods the caller is permitted to call."""
        ...


class IConfig(Interface):
    """Flat config options with getters and setters."""

    capabilities_class: ClassVar[type | None] = ConfigCapabilities

    @abstractmethod
    async def get_config_value(self, name: str, **kwargs: Any) -> ConfigValue:
        """Returns the value of config option ``name``."""
        ...

    @abstractmethod
    async def set_config_value(self, name: str, value: ConfigValue, **kwargs: Any) -> None:
        """Sets config option ``name`` to ``value``."""
        ...


class IStructuredConfig(Interface):
    """A structured config described by a schema."""

    state_class: ClassVar[type | None] = ConfigAppliedState
    capabilities_class: ClassVar[type | None] = ConfigSchema

    @abstractmethod
    async def set_config(self, config: dict[str, ConfigValueTree], **kwargs: Any) -> None:
        """Applies a (partial) structured config."""
        ...


class IAbortable(Interface):
    """Something that can be aborted."""

    @abstractmethod
    async def abort(self, **kwargs: Any) -> None:
        """Aborts the current action."""
        ...


class IRunning(Interface):
    """Something that is running or not."""

    state_class: ClassVar[type | None] = RunningState


class IStartStop(IRunning):
    """Something that can be started and stopped."""

    @abstractmethod
    async def start(self, **kwargs: Any) -> None:
        """Starts the module."""
        ...

    @abstractmethod
    async def stop(self, **kwargs: Any) -> None:
        """Stops the module."""
        ...


class IRunnable(IAbortable):
    """Something that runs one task at a time."""

    @abstractmethod
    async def run(self, **kwargs: Any) -> None:
        """Runs the task."""
        ...


class IAutonomous(IStartStop):
    """A module acting on its own once started."""


class IReady(Interface):
    """A device that is ready or not."""

    state_class: ClassVar[type | None] = ReadyState


class IResettable(Interface):
    """A device that can be reset."""

    @abstractmethod
    async def reset(self, **kwargs: Any) -> None:
        """Resets the device."""
        ...

    @abstractmethod
    async def full_reset(self, **kwargs: Any) -> None:
        """Fully resets the device (e.g. power cycle)."""
        ...
