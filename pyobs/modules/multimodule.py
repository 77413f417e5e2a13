"""MultiModule: several modules from one configuration, in one process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.object import get_object
from pyobs.utils.exceptions import ConfigError

from .module import Module

log = logging.getLogger(__name__)


class MultiModule(Module):
    """Runs several modules; each gets a LocalComm named after its key on a network shared by
    this MultiModule, unless its config has its own ``comm:``.

    Args:
        modules: name → module config (a dict with ``class:``).
        shared: arguments given to every module (overridden by its own config); a value with
            ``class:`` is built once and the same object given to every module (as pyobs-core).
    """

    def __init__(self, modules: dict[str, Any], shared: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("publish_logs", False)  # its own comm is a DummyComm: nobody to send logs to
        super().__init__(**kwargs)
        if not isinstance(modules, dict) or not modules:
            raise ConfigError("modules", "expected a mapping of module name to module config")
        self.network = LocalNetwork()
        self._modules: dict[str, Module] = {}
        self._mains: list[asyncio.Task[None]] = []
        if shared is not None and not isinstance(shared, dict):
            raise ConfigError("shared", f"expected a mapping of argument name to value, got {shared!r}")
        shared = {
            k: self.add_child_object(v, copy_comm=False) if isinstance(v, dict) and "class" in v else v
            for k, v in (shared or {}).items()
        }
        for name, cfg in modules.items():
            key = f"modules.{name}"
            if isinstance(cfg, Module):
                self._modules[name] = cfg
                continue
            if not isinstance(cfg, dict):
                raise ConfigError(key, f"expected a module config with 'class:', got {cfg!r}")
            cfg = {**shared, **cfg}
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

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    async def _forward_finished(self) -> None:
        await asyncio.gather(*(e.wait() for e in self._ends))
        self.finished.set()

    async def open(self) -> None:
        await super().open()
        # devices first, in config order: modules that look for peers in open() find them
        for module in self._modules.values():
            await module.startup()
            if type(module).main is not Module.main:  # a module that works in main(), as in pyobs-core
                self._mains.append(asyncio.create_task(self._run_main(module)))

    async def _run_main(self, module: Module) -> None:
        """A module's own main(); when it returns, the module is done and closes (as pyobs-core)."""
        try:
            await module.main()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("main() of module %s failed", module.name)
        await module.close()

    async def close(self) -> None:
        mains, self._mains = self._mains, []
        for task in mains:
            task.cancel()
        if mains:
            await asyncio.wait(mains, timeout=5.0)
        results = await asyncio.gather(
            *(m.close() for m in reversed(self._modules.values()) if m.opened), return_exceptions=True
        )
        await super().close()
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def quit(self) -> None:
        """Quit every module, then this one."""
        for module in self._modules.values():
            module.quit()
        super().quit()
