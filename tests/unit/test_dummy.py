"""DummyComm: a module alone."""

from __future__ import annotations

import pytest

from pyobs.comm.dummy import DummyComm
from pyobs.events import NewImageEvent
from pyobs.interfaces import ICamera


async def test_dummy_comm_has_no_peers_and_does_not_fail_on_events() -> None:
    comm = DummyComm()
    await comm.open()
    try:
        assert comm.clients == []
        assert await comm.clients_with_interface(ICamera) == []
        with pytest.raises(ValueError, match="not online"):
            await comm.proxy("camera", ICamera)
        assert await comm.safe_proxy("camera", ICamera) is None
        await comm.register_event(NewImageEvent)
        await comm.send_event(NewImageEvent("x.fits"))  # goes nowhere, no error
    finally:
        await comm.close()
