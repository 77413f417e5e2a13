"""A real pyobs-core module watches our simulated modules over XMPP and receives every event they send:
LogEvent, NewImageEvent, BadWeatherEvent and MotionStatusChangedEvent, including those sent in
``open()`` (before our modules are announced) and right after it."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from harness import Core, Server, eventually

from pyobs.modules.simulated.camera import SimCamera
from pyobs.modules.simulated.telescope import SimTelescope
from pyobs.modules.simulated.weather import SimWeather

pytestmark = pytest.mark.asyncio(loop_scope="session")

WATCHED = ("LogEvent", "NewImageEvent", "BadWeatherEvent", "MotionStatusChangedEvent")


def _data(record: dict[str, Any]) -> dict[str, Any]:
    """The event's data as the probe printed it (a tagged dict)."""
    data = record["data"]
    return data.get("dict", data) if isinstance(data, dict) else {}


async def test_pyobs_core_observer_receives_every_event_of_our_simulated_modules(
    server: Server, core: Core, tmp_path_factory: pytest.TempPathFactory, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)  # as `pyobs CONFIG` runs: INFO records become LogEvents
    observer = core.peers.make("coreobserver", "peer.probe.CoreObserver").start()
    modules: list[Any] = []
    try:
        await observer.wait_started(90.0)
        weather = SimWeather(
            autostart=False,
            interval=0.05,
            script=[{"good": True, "duration": 0.3}, {"good": False}],
            comm=server.our_comm("ourweather"),
        )
        scope = SimTelescope(slew_speed=300.0, init_time=0.05, settle_time=0.0, comm=server.our_comm("oursimscope"))
        camera = SimCamera(
            image_dir=str(tmp_path_factory.mktemp("observed")),
            width=64,
            height=64,
            exposure_time=0.05,
            readout_time=0.02,
            comm=server.our_comm("oursimcam"),
        )
        for m in (weather, scope, camera):
            await m.open()  # each logs in open(); the telescope also sends its motion status
            modules.append(m)
        # right after open(), before anybody could have seen them: events of every watched kind
        await weather.start()
        await scope.init()
        image = await camera.grab_data()
        await eventually(lambda: weather.comm.outbox.sent["BadWeatherEvent"] == 1, 10.0, "the weather to turn bad")
        for m in reversed(modules):
            await m.close()
        modules.clear()

        sent = {
            m.comm.name: {t: n for t, n in m.comm.outbox.sent.items() if t in WATCHED} for m in (weather, scope, camera)
        }
        for name, (box) in ((m.comm.name, m.comm.outbox) for m in (weather, scope, camera)):
            assert (box.dropped, box.refused, box.unsent) == (0, 0, 0), f"{name} lost events"

        def received() -> dict[str, dict[str, int]]:
            counts: dict[str, Counter[str]] = {name: Counter() for name in sent}
            for record in observer.find(kind="event"):
                if record["sender"] in counts and record["type"] in WATCHED:
                    counts[record["sender"]][record["type"]] += 1
            return {name: dict(c) for name, c in counts.items()}

        await eventually(lambda: received() == sent, 20.0, f"pyobs-core to receive {sent} (has {received()})")
        got = received()
        assert got["ourweather"]["BadWeatherEvent"] == 1
        assert got["oursimscope"]["MotionStatusChangedEvent"] >= 2
        assert got["oursimcam"]["NewImageEvent"] == 1
        assert all(got[name].get("LogEvent", 0) > 0 for name in got)
        # exactly once, and the ones sent in open() are among them
        records = [r for r in observer.find(kind="event") if r["sender"] in sent]
        assert len({r["uuid"] for r in records}) == len(records)
        messages = [_data(r).get("message", "") for r in records if r["type"] == "LogEvent"]
        assert any("weather script" in m for m in messages), "the LogEvent logged in SimWeather.open()"
        assert any("images go to" in m for m in messages), "the LogEvent logged in SimCamera.open()"
        (new_image,) = [r for r in records if r["type"] == "NewImageEvent"]
        assert _data(new_image)["filename"] == image
        print("pyobs-core received:", got)
    finally:
        for m in reversed(modules):
            await m.close()
        observer.stop()
