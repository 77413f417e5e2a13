"""The autofocus finds the hidden best focus from the images alone."""

from __future__ import annotations

import asyncio

import pytest
from backends.base import eventually
from sim_support import Client, devices

from pyobs.events import FocusFoundEvent
from pyobs.interfaces import AutoFocusState, IAutoFocus, IFocuser, IRunning, ITelescope
from pyobs.modules import MultiModule
from pyobs.modules.simulated import SimFocuser
from pyobs.utils.exceptions import AbortedError, FocusError, InvalidArgumentError

__all__ = ["devices"]  # the fixture

Devices = tuple[MultiModule, Client]

#: the autofocus must find the true best focus within this [mm]; with 7 images 0.1 mm apart and 0.1 s
#: exposures the error is about 0.01 mm rms (0.02 mm at most in 24 seeded runs); the depth of focus
#: (10 % wider stars) of the simulated optics is ±0.14 mm
TOLERANCE = 0.05


async def point_at_ngc188(client: Client) -> None:
    """A field that is always up from the (northern) default site, so the star field is the same each time."""
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    await tel.move_radec(12.108, 85.255)


async def test_autofocus_finds_true_focus_within_tolerance(devices: Devices) -> None:
    obs, client = devices
    await client.comm.register_event(FocusFoundEvent, client.collect)
    await point_at_ngc188(client)
    af = await client.proxy("autofocus", IAutoFocus)
    result = await af.auto_focus(7, 0.1, 0.1)
    focuser = obs["focuser"]
    assert isinstance(focuser, SimFocuser)
    truth = focuser.world.best_focus()
    assert abs(result.focus - truth) < TOLERANCE, f"found {result.focus:.4f}, true {truth:.4f}"
    assert 0 < result.focus_err < TOLERANCE
    # the focuser was left at the focus found, and everybody was told
    foc = await client.proxy("focuser", IFocuser)
    assert (foc.get_state(IFocuser)).focus == pytest.approx(result.focus)
    assert [e.focus for e in await client.wait_received(FocusFoundEvent, 1)] == [pytest.approx(result.focus)]
    state: AutoFocusState = af.get_state(IAutoFocus)
    assert len(state.points) == 7
    # the curve has its minimum near the focus found: the lowest point measured is one of the two
    # next to it (0.1 mm apart), give or take the fit's error
    best_point = min(state.points, key=lambda p: p.value)
    assert abs(best_point.focus - result.focus) <= 0.1 + TOLERANCE
    assert (af.get_state(IRunning)).running is False


async def test_autofocus_outside_range_fails_and_restores_focus(devices: Devices) -> None:
    _obs, client = devices
    await point_at_ngc188(client)
    foc = await client.proxy("focuser", IFocuser)
    await foc.set_focus(10.5)  # 1.5 mm off: a series of ±0.15 mm only sees one side of the curve
    af = await client.proxy("autofocus", IAutoFocus)
    with pytest.raises(FocusError, match=r"outside the scanned range|no minimum|no focus found"):
        await af.auto_focus(5, 0.075, 0.05)
    assert (foc.get_state(IFocuser)).focus == pytest.approx(10.5)
    with pytest.raises(InvalidArgumentError, match="at least 3"):
        await af.auto_focus(2, 0.1, 0.1)


async def test_autofocus_abort(devices: Devices) -> None:
    _obs, client = devices
    af = await client.proxy("autofocus", IAutoFocus)
    series = asyncio.create_task(af.auto_focus(7, 0.1, 1.0))
    await eventually(lambda: af.get_state(IRunning).running, what="the focus series under way")
    await af.abort()
    with pytest.raises(AbortedError):
        await asyncio.wait_for(series, 3.0)
    assert (af.get_state(IRunning)).running is False
