"""Fleet, the view of the bus that pyobs-comm and the dashboard share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from backends.base import eventually

from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.modules import Module
from pyobs.modules.simulated import SimFocuser
from pyobs.tools.fleet import Fleet


@contextlib.asynccontextmanager
async def fleet_with(module_class: type[Module], name: str) -> AsyncIterator[tuple[Module, Fleet, list]]:
    """Module ``name`` and a tool's Fleet on one LocalNetwork: (module, fleet, what listeners heard)."""
    network = LocalNetwork()
    module = module_class(comm=LocalComm(name, network=network))
    tool = LocalComm("tool", network=network)
    await module.open()
    await tool.open()
    try:
        fleet = Fleet(tool)
        heard: list[tuple[str, dict]] = []
        fleet.add_listener(lambda kind, record: heard.append((kind, record)))
        await fleet.start()
        yield module, fleet, heard
    finally:
        await tool.close()
        if module.opened:
            await module.close()


async def test_fleet_follows_lifecycle_state() -> None:
    """A tool that stays connected sees a LocalComm module go into error and back."""
    async with fleet_with(Module, "dome") as (module, fleet, heard):
        assert fleet.module("dome").state == "ready"
        module.set_error("shutter stuck")
        await eventually(lambda: fleet.module("dome").state == "error", what="the error state")
        assert fleet.module("dome").message == "shutter stuck"
        # listeners (the dashboard) are told at once
        error = {"module": "dome", "state": "error", "message": "shutter stuck"}
        await eventually(lambda: ("presence", error) in heard)
        await module.reset_error()
        await eventually(lambda: fleet.module("dome").state == "ready", what="ready again")


async def test_fleet_forgets_the_state_of_a_module_that_left() -> None:
    async with fleet_with(SimFocuser, "focuser") as (focuser, fleet, heard):
        assert ("focuser", "IFocuser") in fleet.states
        await focuser.close()
        await eventually(lambda: ("fleet", {"module": "focuser", "online": False}) in heard, what="the fleet change")
        assert not [k for k in fleet.states if k[0] == "focuser"]
        assert fleet.modules() == []


def test_arguments_typed_by_a_person_are_cast_by_the_signature() -> None:
    import pytest

    from pyobs.interfaces import IPointingRaDec, IWeather
    from pyobs.interfaces.interface import interface_methods
    from pyobs.tools.fleet import describe_method, parse_arguments, signature
    from pyobs.utils.enums import WeatherSensors

    move = interface_methods(IPointingRaDec)["move_radec"]
    assert parse_arguments(move, ["10", "dec=-5.5"]) == [10.0, -5.5]
    with pytest.raises(TypeError, match=r"positional argument '3' after keyword arguments; expected move_radec"):
        parse_arguments(move, ["ra=1", "3"])
    with pytest.raises(TypeError, match=r"got an unexpected keyword argument 'alt'"):
        parse_arguments(move, ["1", "2", "alt=3"])
    sensor = interface_methods(IWeather)["get_sensor_value"]
    assert parse_arguments(sensor, ["station=", "sensor=rain"]) == ["", WeatherSensors.RAIN]
    with pytest.raises(ValueError, match="'sensor'"):
        parse_arguments(sensor, ["", "snowfall"])
    assert signature(sensor) == "get_sensor_value(station: str, sensor: WeatherSensors) -> WeatherSensorReading"
    described = describe_method(sensor)
    assert described["params"][1]["choices"][:2] == [s.value for s in WeatherSensors][:2]
