"""The simulated devices through proxies, as any other module sees them."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest
from backends.base import eventually
from sim_support import Client, devices

from pyobs.events import (
    ExposureStatusChangedEvent,
    MotionStatusChangedEvent,
    MoveRaDecEvent,
    NewImageEvent,
    OffsetsRaDecEvent,
)
from pyobs.interfaces import (
    AltAzState,
    ExposureState,
    FocuserState,
    IAbortable,
    ICamera,
    IExposure,
    IExposureTime,
    IFocuser,
    IMotion,
    IOffsetsRaDec,
    IPointingAltAz,
    IPointingRaDec,
    IReady,
    IRunning,
    ITelescope,
    IWeather,
    IWindow,
    WeatherState,
)
from pyobs.modules import MultiModule
from pyobs.modules.simulated import AltitudeLimitError, SimTelescope, SimWorld, astro
from pyobs.utils.enums import ExposureStatus, ImageType, MotionStatus, WeatherSensors
from pyobs.utils.exceptions import AbortedError, InvalidArgumentError, MoveError, PointingLimitError

fits = pytest.importorskip("astropy.io.fits")

Devices = tuple[MultiModule, Client]
__all__ = ["devices"]  # the fixture


def above(tel: SimTelescope, alt: float, az: float) -> tuple[float, float]:
    """RA/Dec that is at ``alt``/``az`` for the telescope now."""
    return astro.altaz_to_radec(alt, az, tel.latitude, tel.longitude)


async def test_telescope_refuses_target_below_horizon(devices: Devices) -> None:
    _obs, client = devices
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    # the celestial pole of the other hemisphere never rises: altitude = -|latitude|
    with pytest.raises(AltitudeLimitError, match="below the telescope's limit of 20 deg") as info:
        await tel.move_radec(0.0, -90.0)
    assert isinstance(info.value, PointingLimitError)
    # refused without moving
    assert (tel.get_state(IMotion)).status == MotionStatus.IDLE
    with pytest.raises(AltitudeLimitError):
        await tel.move_altaz(10.0, 180.0)


async def test_telescope_must_be_initialized_and_validates(devices: Devices) -> None:
    _obs, client = devices
    tel = await client.proxy("telescope", ITelescope)
    assert (tel.get_state(IReady)).ready is False
    with pytest.raises(MoveError, match="init"):
        await tel.move_altaz(60.0, 90.0)
    await tel.init()
    assert (tel.get_state(IReady)).ready is True
    with pytest.raises(InvalidArgumentError, match="out of range"):
        await tel.move_radec(400.0, 0.0)


async def test_slew_takes_time_proportional_to_distance_and_tracks(devices: Devices) -> None:
    obs, client = devices
    await client.comm.register_event(MoveRaDecEvent, client.collect)
    await client.comm.register_event(MotionStatusChangedEvent, client.collect)
    sim = obs["telescope"]
    assert isinstance(sim, SimTelescope)
    sim.slew_speed = 50.0
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    durations = []
    for alt, az in ((60.0, 0.0), (60.0, 30.0), (60.0, 180.0)):  # from the park position (80, 0)
        ra, dec = above(sim, alt, az)
        expected = sim.slew_time(*astro.radec_to_altaz(ra, dec, sim.latitude, sim.longitude))
        t0 = time.perf_counter()
        await tel.move_radec(ra, dec)
        durations.append((time.perf_counter() - t0, expected))
    for took, expected in durations:
        assert expected - 0.01 < took < expected + 0.3
    assert durations[2][0] > durations[1][0] + 0.5  # a longer way takes longer
    assert [e.ra for e in await client.wait_received(MoveRaDecEvent, 3)] == pytest.approx(
        [above(sim, 60.0, az)[0] for az in (0, 30, 180)], abs=0.05
    )
    statuses = [e.status for e in client.received(MotionStatusChangedEvent)]
    assert statuses[:2] == [MotionStatus.INITIALIZING, MotionStatus.IDLE]
    assert statuses[-2:] == [MotionStatus.SLEWING, MotionStatus.TRACKING]
    # state: the telescope tracks the target, so its altitude is the target's
    state: AltAzState = tel.get_state(IPointingAltAz)
    assert state.alt == pytest.approx(60.0, abs=0.1)
    radec = tel.get_state(IPointingRaDec)
    assert (radec.ra, radec.dec) == pytest.approx(above(sim, 60.0, 180.0), abs=0.1)


async def test_new_move_aborts_running_slew(devices: Devices) -> None:
    obs, client = devices
    sim = obs["telescope"]
    assert isinstance(sim, SimTelescope)
    sim.slew_speed = 20.0
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    first = asyncio.create_task(tel.move_altaz(30.0, 180.0))  # ~3.5 s
    await eventually(lambda: tel.get_state(IMotion).status == MotionStatus.SLEWING, what="the first slew under way")
    await tel.move_altaz(75.0, 10.0)
    with pytest.raises(AbortedError, match="aborted by a new move_altaz from client"):
        await first
    assert (tel.get_state(IMotion)).status == MotionStatus.POSITIONED


async def test_radec_altaz_round_trip() -> None:
    lat, lon = 30.68, -104.02
    for ra, dec in ((10.0, 20.0), (200.0, -30.0), (359.0, 80.0)):
        alt, az = astro.radec_to_altaz(ra, dec, lat, lon, 1.7e9)
        ra2, dec2 = astro.altaz_to_radec(alt, az, lat, lon, 1.7e9)
        assert astro.separation(ra, dec, ra2, dec2) < 1e-8
    # the pole stands at the latitude, and a star on the meridian culminates at 90 - |lat - dec|
    assert astro.radec_to_altaz(123.0, 90.0, lat, lon)[0] == pytest.approx(lat)
    lst = astro.lst(lon, 1.7e9)
    assert astro.radec_to_altaz(lst, 10.0, lat, lon, 1.7e9) == pytest.approx((90 - (lat - 10), 180.0))


async def test_focuser_moves_take_time(devices: Devices) -> None:
    _obs, client = devices
    foc = await client.proxy("focuser", IFocuser)
    t0 = time.perf_counter()
    await foc.set_focus(12.95)  # 1 mm at 10 mm/s
    assert 0.09 < time.perf_counter() - t0 < 0.4
    state: FocuserState = foc.get_state(IFocuser)
    assert state.focus == 12.95 and state.focus_offset == 0.0
    await foc.set_focus_offset(0.1)
    assert (foc.get_state(IFocuser)).focus_offset == 0.1
    with pytest.raises(InvalidArgumentError, match="outside the focus range"):
        await foc.set_focus(99.0)


async def test_exposure_writes_fits_and_sends_events(devices: Devices, tmp_path: Path) -> None:
    _obs, client = devices
    await client.comm.register_event(NewImageEvent, client.collect)
    await client.comm.register_event(ExposureStatusChangedEvent, client.collect)
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    cam = await client.proxy("camera", ICamera)
    await cam.set_exposure_time(0.3)
    assert (cam.get_state(IExposureTime)).exposure_time == 0.3
    t0 = time.perf_counter()
    filename = await cam.grab_data()
    assert time.perf_counter() - t0 >= 0.3
    assert Path(filename).parent == tmp_path
    with fits.open(filename) as hdul:
        hdul.verify("exception")
        data, header = hdul[0].data, hdul[0].header
    assert data.shape == (384, 384)
    assert header["EXPTIME"] == 0.3 and header["IMAGETYP"] == "object" and header["FOCUS"] == 11.95
    assert "TEL-ALT" in header  # cards from the telescope's IFitsHeaderBefore
    assert data.max() > data.mean() + 1000  # there are stars
    assert [e.filename for e in await client.wait_received(NewImageEvent, 1)] == [filename]
    assert [e.current for e in client.received(ExposureStatusChangedEvent)] == [
        ExposureStatus.EXPOSING,
        ExposureStatus.READOUT,
        ExposureStatus.IDLE,
    ]
    # a bias has no stars
    await cam.set_image_type(ImageType.BIAS)
    with fits.open(await cam.grab_data(broadcast=False)) as hdul:
        assert hdul[0].header["EXPTIME"] == 0.0 and hdul[0].data.std() < 10


async def test_exposure_longer_than_the_callers_timeout(devices: Devices) -> None:
    """grab_data is a @timeout method: the caller's deadline grows with the exposure time."""
    _obs, client = devices
    client.comm.timeout = 0.3
    cam = await client.proxy("camera", ICamera)
    await cam.set_exposure_time(0.8)
    filename = await cam.grab_data(broadcast=False)
    assert filename.endswith(".fits")


async def test_abort_ends_exposure_midway(devices: Devices) -> None:
    _obs, client = devices
    cam = await client.proxy("camera", ICamera)
    await cam.set_exposure_time(5.0)
    grab = asyncio.create_task(cam.grab_data())
    await eventually(lambda: cam.get_state(IExposure).progress > 0, what="the exposure under way (progress above 0)")
    state: ExposureState = cam.get_state(IExposure)
    assert state.status == ExposureStatus.EXPOSING and 0 < state.progress < 20
    t0 = time.perf_counter()
    assert cam.implements(IAbortable)
    await cam.abort()
    with pytest.raises(AbortedError, match=r"exposure aborted after 0\.\d+ of 5\.00 s by abort\(\) from client"):
        await grab
    assert time.perf_counter() - t0 < 0.5
    assert (cam.get_state(IExposure)).status == ExposureStatus.IDLE
    # the camera works again afterwards
    await cam.set_exposure_time(0.01)
    assert (await cam.grab_data(broadcast=False)).endswith(".fits")


async def test_star_width_follows_defocus() -> None:
    world = SimWorld(best_focus=12.0, seeing=1.0, pixel_scale=0.5, defocus_blur=8.0)
    t = 1.7e9
    best = world.best_focus(t)
    assert world.star_fwhm(best, t) == pytest.approx(2.0)
    assert world.star_fwhm(best + 0.25, t) == pytest.approx(math.hypot(2.0, 2.0))
    assert world.star_fwhm(best - 0.25, t) == pytest.approx(world.star_fwhm(best + 0.25, t))
    # the best focus drifts with the temperature
    temps = [world.temperature(t + dt) for dt in range(0, 1800, 60)]
    assert max(temps) - min(temps) > 2.0
    shift = world.best_focus(t + 600) - world.best_focus(t)
    assert shift == pytest.approx(
        world.focus_temperature_coefficient * (world.temperature(t + 600) - world.temperature(t))
    )


async def test_offsets_move_the_pointing(devices: Devices) -> None:
    obs, client = devices
    await client.comm.register_event(OffsetsRaDecEvent, client.collect)
    sim = obs["telescope"]
    assert isinstance(sim, SimTelescope)
    tel = await client.proxy("telescope", ITelescope)
    await tel.init()
    with pytest.raises(MoveError, match="not tracking"):
        await tel.set_offsets_radec(0.01, 0.0)
    ra, dec = 12.108, 85.255
    await tel.move_radec(ra, dec)
    await tel.set_offsets_radec(0.0, 0.5)
    assert (tel.get_state(IOffsetsRaDec)).dec == 0.5
    radec = tel.get_state(IPointingRaDec)
    assert radec.dec == pytest.approx(dec + 0.5) and radec.ra == pytest.approx(ra)
    assert [(e.ra, e.dec) for e in await client.wait_received(OffsetsRaDecEvent, 1)] == [(0.0, 0.5)]


async def test_binning_and_window_shape_the_image(devices: Devices) -> None:
    _obs, client = devices
    cam = await client.proxy("camera", ICamera)
    await cam.set_exposure_time(0.01)
    await cam.set_binning(2, 2)
    await cam.set_window(0, 100, 384, 200)
    assert (cam.get_state(IWindow)).height == 200
    with fits.open(await cam.grab_data(broadcast=False)) as hdul:
        assert hdul[0].data.shape == (100, 192)
        assert hdul[0].header["XBINNING"] == 2 and hdul[0].header["YORGSUBF"] == 100
    with pytest.raises(InvalidArgumentError, match="binning 5x5 not supported"):
        await cam.set_binning(5, 5)
    with pytest.raises(InvalidArgumentError, match="does not fit"):
        await cam.set_window(300, 0, 100, 100)
    caps = await cam.wait_for_capabilities(IWindow)
    assert (caps.full_frame_width, caps.full_frame_height) == (384, 384)


async def test_weather_station(devices: Devices) -> None:
    _obs, client = devices
    weather = await client.proxy("weather", IWeather)
    state: WeatherState = weather.get_state(IWeather)
    assert state.good is True
    reading = await weather.get_sensor_value("weather", WeatherSensors.TEMPERATURE)
    assert reading.unit == "celsius" and -20 < reading.value < 40
    with pytest.raises(InvalidArgumentError, match="not measured"):
        await weather.get_sensor_value("weather", WeatherSensors.PARTICLES)
    with pytest.raises(InvalidArgumentError, match="unknown weather station"):
        await weather.get_sensor_value("elsewhere", WeatherSensors.TEMPERATURE)
    await weather.stop()
    assert (weather.get_state(IRunning)).running is False
    await weather.start()
    assert (weather.get_state(IRunning)).running is True
