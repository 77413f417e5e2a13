"""The simulated devices report the progress of long calls and stop cleanly when a call is cancelled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from backends.base import eventually
from sim_support import Client, devices

from pyobs.comm.calls import CancelOutcome, Progress
from pyobs.interfaces import IAutoFocus, ICamera, IExposure, IExposureTime, IFocuser, IMotion, IRunning, ITelescope
from pyobs.modules import MultiModule
from pyobs.modules.simulated import SimTelescope
from pyobs.utils.enums import ExposureStatus, MotionStatus

Devices = tuple[MultiModule, Client]
__all__ = ["devices"]  # the fixture


async def _first_progress(notices: list[Progress], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not notices:
        assert loop.time() < end, "no progress notice"
        await asyncio.sleep(0.01)


async def test_camera_reports_progress_and_a_cancelled_exposure_leaves_nothing(
    devices: Devices, tmp_path: Path
) -> None:
    obs, client = devices
    obs["camera"].comm.progress_interval = 0.0
    cam = await client.proxy("camera", ICamera)
    assert isinstance(cam, IExposureTime)
    await cam.set_exposure_time(0.5)
    # a whole exposure: fractions grow to 1.0 over exposure and readout
    notices: list[Progress] = []
    filename = await cam.grab_data().on_progress(notices.append)
    assert Path(filename).exists()
    fractions = [p.fraction for p in notices]
    assert fractions == sorted(fractions) and len(fractions) >= 3  # type: ignore[type-var]
    assert any("exposure" in p.message for p in notices) and any("readout" in p.message for p in notices)

    # cancelled midway: the camera is idle again before our await ends, and no image is left
    await cam.set_exposure_time(5.0)
    before = set(tmp_path.glob("*.fits"))
    notices.clear()
    call = cam.grab_data().on_progress(notices.append)
    task = asyncio.ensure_future(call)
    await _first_progress(notices)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 1.0
    assert call.cancel_outcome is CancelOutcome.CANCELLED
    assert cam.get_state(IExposure).status == ExposureStatus.IDLE
    assert set(tmp_path.glob("*.fits")) == before
    await cam.set_exposure_time(0.05)
    assert Path(await cam.grab_data()).exists()  # and it takes the next image


async def test_telescope_reports_progress_and_stops_where_it_is_when_cancelled(devices: Devices) -> None:
    obs, client = devices
    sim = obs["telescope"]
    assert isinstance(sim, SimTelescope)
    sim.slew_speed = 20.0
    sim.comm.progress_interval = 0.0
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    notices: list[Progress] = []
    call = tel.move_altaz(30.0, 180.0).on_progress(notices.append)  # a few seconds
    task = asyncio.ensure_future(call)
    await _first_progress(notices)
    await eventually(lambda: len(notices) >= 3, what="the slew under way (three progress notices)")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancel_outcome is CancelOutcome.CANCELLED
    assert tel.get_state(IMotion).status == MotionStatus.IDLE
    alt, az = sim.altaz()
    assert abs(alt - 30.0) > 1.0 or abs(az - 180.0) > 1.0  # stopped on the way
    assert all("slew to alt 30.0 az 180.0" in p.message for p in notices)
    await tel.move_altaz(60.0, 90.0)  # it moves again afterwards
    assert tel.get_state(IMotion).status == MotionStatus.POSITIONED


async def test_autofocus_reports_points_and_a_cancel_stops_camera_and_focuser(devices: Devices) -> None:
    obs, client = devices
    obs["autofocus"].comm.progress_interval = 0.0
    foc = await client.proxy("focuser", IFocuser)
    start_focus = foc.get_state(IFocuser).focus
    af = await client.proxy("autofocus", IAutoFocus)
    notices: list[Progress] = []
    call = af.auto_focus(7, 0.1, 1.0).on_progress(notices.append)  # ~1 s per point
    task = asyncio.ensure_future(call)
    loop = asyncio.get_running_loop()
    end = loop.time() + 10.0
    while len(notices) < 2:  # on its second point
        assert loop.time() < end, f"autofocus reported {notices}"
        await asyncio.sleep(0.02)
    assert [p.message[:12] for p in notices[:2]] == ["point 1 of 7", "point 2 of 7"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancel_outcome is CancelOutcome.CANCELLED
    # the series ended cleanly: not running, the camera's exposure was cancelled, the focuser is back
    assert af.get_state(IRunning).running is False
    cam = await client.proxy("camera", ICamera)
    assert cam.get_state(IExposure).status == ExposureStatus.IDLE
    assert foc.get_state(IFocuser).focus == pytest.approx(start_focus, abs=1e-6)
