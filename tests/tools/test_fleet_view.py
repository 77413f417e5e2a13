"""Fleet, the view of the bus that pyobs-comm and the dashboard share."""

from __future__ import annotations

from backends.base import eventually

from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.modules import Module
from pyobs.modules.simulated import SimFocuser
from pyobs.tools.fleet import Fleet


async def test_fleet_follows_lifecycle_state() -> None:
    """A tool that stays connected sees a LocalComm module go into error and back."""
    network = LocalNetwork()
    module = Module(comm=LocalComm("dome", network=network))
    tool = LocalComm("tool", network=network)
    await module.open()
    await tool.open()
    try:
        fleet = Fleet(tool)
        changes: list[dict] = []
        fleet.add_listener(lambda kind, record: changes.append(record) if kind == "presence" else None)
        await fleet.start()
        assert fleet.module("dome").state == "ready"
        module.set_error("shutter stuck")
        await eventually(lambda: fleet.module("dome").state == "error", what="the error state")
        assert fleet.module("dome").message == "shutter stuck"
        # listeners (the dashboard) are told at once
        await eventually(lambda: {"module": "dome", "state": "error", "message": "shutter stuck"} in changes)
        await module.reset_error()
        await eventually(lambda: fleet.module("dome").state == "ready", what="ready again")
    finally:
        await tool.close()
        await module.close()


async def test_fleet_forgets_the_state_of_a_module_that_left() -> None:
    network = LocalNetwork()
    focuser = SimFocuser(comm=LocalComm("focuser", network=network))
    tool = LocalComm("tool", network=network)
    await focuser.open()
    await tool.open()
    try:
        fleet = Fleet(tool)
        seen: list[tuple[str, dict]] = []
        fleet.add_listener(lambda kind, record: seen.append((kind, record)))
        await fleet.start()
        assert ("focuser", "IFocuser") in fleet.states
        await focuser.close()
        await eventually(lambda: ("fleet", {"module": "focuser", "online": False}) in seen, what="the fleet change")
        assert not [k for k in fleet.states if k[0] == "focuser"]
        assert fleet.modules() == []
    finally:
        await tool.close()
        if focuser.opened:
            await focuser.close()


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
