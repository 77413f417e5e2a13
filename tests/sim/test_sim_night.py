"""A whole night over LocalComm: weather, slew, autofocus, images, summary."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sim_support import Client, observatory

from pyobs.cli.main import build
from pyobs.comm.local import LocalComm
from pyobs.interfaces import ExposureState, IAutonomous, IExposure, IMotion, IRunning
from pyobs.modules import MultiModule
from pyobs.modules.simulated import NightScript, SimCamera, SimTelescope
from pyobs.modules.simulated.weather import parse_script
from pyobs.utils.enums import ExposureStatus, MotionStatus
from pyobs.utils.exceptions import ConfigError

fits = pytest.importorskip("astropy.io.fits")

ALL = ["weather", "telescope", "focuser", "camera", "autofocus", "night"]
EXAMPLE = Path(__file__).parents[2] / "examples" / "observatory.yaml"


async def run_night(obs: MultiModule, timeout: float = 30.0) -> NightScript:
    """Open the observatory, wait until it says it is finished (as the CLI does), close it."""
    night = obs["night"]
    assert isinstance(night, NightScript)
    await obs.open()
    try:
        await asyncio.wait_for(obs.finished.wait(), timeout)  # type: ignore[attr-defined]
    finally:
        await obs.close()
    return night


async def test_night_runs_to_its_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    obs = observatory(
        tmp_path, ALL, weather={"script": [{"good": False, "duration": 0.3}, {"good": True}]}, night={"images": 3}
    )
    with caplog.at_level(logging.INFO):
        night = await run_night(obs)
    summary = night.summary
    assert summary is not None and night.finished.is_set()
    assert summary.reason == "all 3 images taken"
    assert summary.target is not None
    assert len(summary.images) == 3
    for filename in summary.images:
        with fits.open(filename) as hdul:
            hdul.verify("exception")
            assert hdul[0].header["IMAGETYP"] == "object" and hdul[0].data.shape == (384, 384)
    # 7 focus images and 3 science images
    assert len(list(tmp_path.glob("*-focus.fits"))) == 7 and len(list(tmp_path.glob("*-object.fits"))) == 3
    assert summary.focus is not None and summary.true_focus is not None
    assert abs(summary.focus.focus - summary.true_focus) < 0.05
    lines = [r.getMessage() for r in caplog.records if "NIGHT SUMMARY" in r.getMessage()]
    assert len(lines) == 1
    assert "3 of 3 images taken" in lines[0] and "vs true best focus" in lines[0]
    # the story is in the log: the night waited for the weather event, and the devices say who called them
    messages = [r.getMessage() for r in caplog.records]
    assert "night: received GoodWeatherEvent from weather" in messages
    assert any(m.startswith("camera: grab_data() called by autofocus") for m in messages)
    assert any(m.startswith("camera: grab_data() called by night") for m in messages)
    assert any(m.startswith("focuser: set_focus(") and "called by autofocus" in m for m in messages)
    assert summary.duration < 10


async def test_bad_weather_stops_the_night(tmp_path: Path) -> None:
    # the weather turns bad when the test says so (autostart: false), right after the first science
    # image, i.e. early in the 3 s exposure of the second: whatever the machine's load, the night has
    # taken images by then, and an exposure that was waited for instead of aborted would show
    obs = observatory(
        tmp_path,
        ALL,
        weather={"autostart": False, "script": [{"good": True, "duration": 0.05}, {"good": False}]},
        night={"images": 100, "exposure_time": 3.0},
    )
    night = obs["night"]
    assert isinstance(night, NightScript)
    loop = asyncio.get_running_loop()
    await obs.open()
    try:
        deadline = loop.time() + 60
        # counted by the night (its file is written a moment before the night records it)
        while night.summary is None or not night.summary.images:
            assert loop.time() < deadline, "the night took no science image in 60 s"
            await asyncio.sleep(0.02)
        started = loop.time()
        await obs["weather"].start()
        await asyncio.wait_for(obs.finished.wait(), 30)  # type: ignore[attr-defined]
        stopped_after = loop.time() - started
    finally:
        await obs.close()
    summary = night.summary
    assert summary is not None
    assert summary.reason == "stopped: weather turned bad"
    assert 0 < len(summary.images) < 100
    # the exposure running when the rain came was aborted, not waited for (it had ~2.9 s left)
    assert stopped_after < 2.0, stopped_after
    tel = obs["telescope"]
    assert isinstance(tel, SimTelescope)
    assert tel.comm.get_own_state(IMotion).status == MotionStatus.PARKED
    exposure: ExposureState = obs["camera"].comm.get_own_state(IExposure)
    assert exposure.status == ExposureStatus.IDLE
    assert len(list(tmp_path.glob("*-object.fits"))) == len(summary.images)


async def test_no_good_weather_no_night(tmp_path: Path) -> None:
    obs = observatory(tmp_path, ALL, weather={"script": [{"good": False}]}, night={"weather_timeout": 0.3})
    night = await run_night(obs)
    assert night.summary is not None
    assert night.summary.reason == "no good weather within 0.3 s"
    assert night.summary.images == [] and night.summary.focus is None
    assert list(tmp_path.glob("*.fits")) == []


async def test_night_started_and_stopped_through_its_interface(tmp_path: Path) -> None:
    obs = observatory(tmp_path, ALL, night={"autostart": False, "images": 100, "exposure_time": 0.3})
    client = Client(comm=LocalComm("client", network=obs.network))
    await obs.open()
    await client.open()
    try:
        night = await client.proxy("night", IAutonomous)
        assert (night.get_state(IRunning)).running is False
        await night.start()
        # wait until it takes science images, then stop it
        camera = obs["camera"]
        assert isinstance(camera, SimCamera)
        script = obs["night"]
        assert isinstance(script, NightScript)
        deadline = asyncio.get_running_loop().time() + 10
        while script.summary is None or len(script.summary.images) < 1:
            assert asyncio.get_running_loop().time() < deadline, "the night took no science image in 10 s"
            await asyncio.sleep(0.05)
        await night.stop()  # cancels the exposure running then (its image is not kept)
        await asyncio.wait_for(obs.finished.wait(), 5)  # type: ignore[attr-defined]
        assert script.summary is not None
        assert len(list(tmp_path.glob("*-object.fits"))) == len(script.summary.images)
        assert script.summary.reason == "stopped: stopped by client"
        assert 1 <= len(script.summary.images) < 100
        assert (night.get_state(IRunning)).running is False
    finally:
        await client.close()
        await obs.close()


def test_weather_script_errors_name_the_entry() -> None:
    assert [p.good for p in parse_script([{"good": True, "duration": 1}, {"good": False}])] == [True, False]
    with pytest.raises(ConfigError, match=r"script\[0\].duration: only the last period"):
        parse_script([{"good": True}, {"good": False}])
    with pytest.raises(ConfigError, match=r"script\[1\]: unknown keys \['rain'\]"):
        parse_script([{"good": True, "duration": 1}, {"good": False, "rain": 3}])


def test_example_config_builds() -> None:
    obs = build(str(EXAMPLE))
    assert isinstance(obs, MultiModule)
    assert list(obs.modules) == ALL
    assert isinstance(getattr(obs, "finished", None), asyncio.Event)  # so `pyobs observatory.yaml` ends by itself
    night = obs["night"]
    assert isinstance(night, NightScript) and night.images == 20


@pytest.mark.parametrize("transport", ["dbus", "xmpp"])
def test_one_process_per_module_configs_build_and_share_one_world(transport: str) -> None:
    """examples/<transport>/*.yaml: one module each, named after its file, and the same world everywhere
    (each process builds its own SimWorld, so the parameters must agree)."""
    worlds = []
    for name in ALL:
        module = build(str(EXAMPLE.parent / transport / f"{name}.yaml"))
        assert module.comm.name == name
        world = getattr(module, "world", None)
        if world is not None:
            worlds.append(vars(world))
    assert len(worlds) == 4  # weather, focuser, camera, night
    assert all(w == worlds[0] for w in worlds)
