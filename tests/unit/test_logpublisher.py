"""LogEvents of several modules in one process (a MultiModule): each record goes out once, from the
module it names, else from the module whose class logs through that logger."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyobs.comm.local import LocalComm
from pyobs.events import LogEvent
from pyobs.modules import Module, MultiModule


async def test_each_record_is_sent_once_by_the_module_it_names(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="test.logpublisher")
    obs = MultiModule(
        modules={
            "alpha": {"class": "pyobs.modules.Module"},
            "beta": {"class": "pyobs.modules.Module"},
            "focus": {"class": "pyobs.modules.simulated.SimFocuser"},
        }
    )
    listener = LocalComm("listener", network=obs.network)
    received: list[tuple[str, str]] = []
    got = asyncio.Event()

    async def on_log(event: LogEvent, sender: str) -> bool:
        if event.message.startswith(("alpha:", "beta:", "nobody", "a focuser")):
            received.append((sender, event.message))
            if {m for _, m in received} >= {"alpha: end", "beta: end", "a focuser line without its name"}:
                got.set()
        return True

    await obs.open()
    await listener.open()
    await listener.register_event(LogEvent, on_log)
    try:
        log = logging.getLogger("test.logpublisher")
        log.info("alpha: one")
        log.info("beta: two")
        log.info("nobody's line")
        caplog.set_level(logging.INFO, logger="pyobs.modules.simulated.focuser")
        logging.getLogger("pyobs.modules.simulated.focuser").info("a focuser line without its name")
        # each publisher sends in order: once both ends arrived, any duplicate of the lines before has too
        log.info("alpha: end")
        log.info("beta: end")
        await asyncio.wait_for(got.wait(), 10)
        assert sorted(received) == [
            ("alpha", "alpha: end"), ("alpha", "alpha: one"), ("alpha", "nobody's line"),
            ("beta", "beta: end"), ("beta", "beta: two"),
            ("focus", "a focuser line without its name"),
        ]  # fmt: skip
    finally:
        await listener.close()
        await obs.close()
    assert isinstance(obs["alpha"], Module)
