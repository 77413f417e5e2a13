"""MultiModule: several modules from one configuration, in one process."""

from __future__ import annotations

import asyncio
from typing import Any

from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.object import Object, get_object
from pyobs.utils.exceptions import ConfigError

from .module import Module


class MultiModule(Object):
    """Runs several modules; each gets a LocalComm named after its key on a network shared by
    this MultiModule, unless its config has its own ``comm:``.

    Args:
        modules: name → module config (a dict with ``class:``).
        shared: arguments given to every module (overridden by its own config).
    """

    def __init__(self, modules: dict[str, Any], shared: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(modules, dict) or not modules:
            raise ConfigError("modules", "expected a mapping of module name to module config")
        self.network = LocalNetwork()
        self._modules: dict[str, Module] = {}
        for name, cfg in modules.items():
            key = f"modules.{name}"
            if isinstance(cfg, Module):
                self._modules[name] = cfg
                continue
            if not isinstance(cfg, dict):
                raise ConfigError(key, f"expected a module config with 'class:', got {cfg!r}")
            cfg = {**(shared or {}), **cfg}
            if "comm" not in cfg:
                cfg["comm"] = LocalComm(name, network=self.network)
            self._modules[name] = get_object(cfg, Module, key=key)
        # modules that end by themselves (a night script) have an asyncio.Event ``finished``; the CLI
        # stops when the object it runs has one that is set: so ours is set once all of theirs are
        self._ends = [e for m in self._modules.values() if isinstance(e := getattr(m, "finished", None), asyncio.Event)]
        if self._ends:
            self.finished = asyncio.Event()
            self.add_background_task(self._forward_finished, restart=False)

    @property
    def modules(self) -> dict[str, Module]:
        return dict(self._modules)

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    async def _forward_finished(self) -> None:
        await asyncio.gather(*(e.wait() for e in self._ends))
        self.finished.set()

    async def open(self) -> None:
        await super().open()
        # devices first, in config order: modules that look for peers in open() find them
        for module in self._modules.values():
            await module.open()

    async def close(self) -> None:
        results = await asyncio.gather(*(m.close() for m in reversed(self._modules.values())), return_exceptions=True)
        await super().close()
        for r in results:
            if isinstance(r, BaseException):
                raise r
