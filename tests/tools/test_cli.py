"""pyobs-comm against the simulated observatory, on every transport (local, XMPP, D-Bus)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tools_support import MODULES, Bus

from pyobs.tools import cli

ROOT = Path(__file__).resolve().parents[2]


async def pyobs_comm(bus: Bus, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run pyobs-comm in this process (its own comm, on the bus of ``bus``); (exit code, stdout, stderr)."""
    capsys.readouterr()
    args = cli.build_parser().parse_args([*bus.args, "--timeout", "10", "--wait-for", ",".join(MODULES), *argv])
    code = await cli.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_ls(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await pyobs_comm(bus, capsys, "--json", "ls", "--methods")
    assert code == cli.OK, err
    listed = {m["name"]: m for m in json_lines(out)}
    assert sorted(listed) == MODULES
    assert all(m["state"] == "ready" for m in listed.values())
    assert "ITelescope" in listed["telescope"]["interfaces"] and "IWeather" in listed["weather"]["interfaces"]
    move = next(m for m in listed["telescope"]["methods"] if m["name"] == "move_radec")
    assert move["signature"] == "move_radec(ra: float, dec: float) -> None"

    code, out, err = await pyobs_comm(bus, capsys, "ls", "--methods")
    assert code == cli.OK, err
    assert "telescope  [ready]" in out and "    move_radec(ra: float, dec: float) -> None    (IPointingRaDec)" in out


async def test_call(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    # the remote exception with its type: a parked telescope does not move
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "move_altaz", "60", "100")
    assert code == cli.REMOTE_ERROR
    assert "telescope.move_altaz() raised MoveError:" in err and "parked" in err
    # arguments that do not fit the remote signature
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "move_altaz", "60")
    assert code == cli.USAGE
    assert "missing required argument 'az'; expected move_altaz(alt: float, az: float) -> None" in err
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "move_altaz", "alt=high", "az=3")
    assert code == cli.USAGE and "'alt'" in err
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "fly")
    assert code == cli.USAGE and "has no method 'fly'" in err
    code, out, err = await pyobs_comm(bus, capsys, "call", "nobody", "park")
    assert code == cli.NO_BUS and "module 'nobody' is not online" in err
    # init announces its duration (@timeout): the progress line shows the deadline
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "init")
    assert code == cli.OK, err
    assert "telescope.init() running, deadline in" in err
    # a result, as text and as JSON; keyword arguments, enums by value
    code, out, err = await pyobs_comm(
        bus, capsys, "--json", "call", "weather", "get_sensor_value", "station=", "sensor=rain"
    )
    assert code == cli.OK, err
    (record,) = json_lines(out)
    assert record["ok"] and record["result"]["sensor"] == "rain" and record["result"]["value"] in (0.0, 1.0)
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "get_permitted_methods")
    assert code == cli.OK and "move_radec" in json.loads(out)


async def test_state(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await pyobs_comm(bus, capsys, "--json", "state", "telescope")
    assert code == cli.OK, err
    states = {r["interface"]: r["value"] for r in json_lines(out)}
    assert states["IMotion"]["status"] == "parked"
    assert states["IPointingAltAz"]["alt"] == pytest.approx(80.0)
    code, out, err = await pyobs_comm(bus, capsys, "state", "weather", "IWeather", "--follow", "-n", "3", "-t", "20")
    assert code == cli.OK, err
    lines = out.splitlines()  # the current value, then 3 changes
    assert len(lines) == 4 and all(line.startswith("IWeather") and "good=" in line for line in lines)
    code, out, err = await pyobs_comm(bus, capsys, "state", "telescope", "IWeather")
    assert code == cli.USAGE and "does not implement IWeather" in err


async def test_watch_and_logs(bus: Bus, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyobs.modules.simulated.weather")  # as `pyobs CONFIG` runs it
    # the weather turns every half second: GoodWeatherEvent / BadWeatherEvent and a log line each time
    code, out, err = await pyobs_comm(
        bus, capsys, "watch", "--module", "weather", "--event", "GoodWeatherEvent", "--event", "BadWeatherEvent",
        "-n", "2", "-t", "20",
    )  # fmt: skip
    assert code == cli.OK, err
    lines = out.splitlines()
    assert len(lines) == 2 and all(" weather " in line and "WeatherEvent" in line for line in lines)
    code, out, err = await pyobs_comm(
        bus, capsys, "--json", "watch", "--event", "BadWeatherEvent", "-n", "1", "-t", "20"
    )
    assert code == cli.OK, err
    (event,) = json_lines(out)
    assert event["type"] == "BadWeatherEvent" and event["sender"] == "weather"
    code, out, err = await pyobs_comm(
        bus, capsys, "logs", "--module", "weather", "--level", "INFO", "-n", "3", "-t", "20"
    )
    assert code == cli.OK, err
    lines = out.splitlines()
    assert len(lines) == 3 and all(" INFO " in line for line in lines)
    assert any("weather: weather turned" in line for line in lines)
    code, out, err = await pyobs_comm(bus, capsys, "logs", "--level", "ERROR", "-t", "1.5")
    assert code == cli.OK and out == ""  # nothing of that level in 1.5 s: the filter holds


def test_process_exit_codes_and_completion(tmp_path: Path) -> None:
    """The real command in its own process: bad usage, a bus that is not there, completion, --help."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYOBS_PASSWORD", None)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyobs.tools.cli", *argv], capture_output=True, text=True, env=env, timeout=60
        )

    r = run("--xmpp", "tool@example.invalid", "ls")
    assert r.returncode == cli.NO_BUS and "no password: give --password-file FILE or set $PYOBS_PASSWORD" in r.stderr
    r = run("ls")
    assert r.returncode == cli.NO_BUS and "say which bus to join" in r.stderr
    r = run("--config", str(tmp_path / "missing.yaml"), "ls")
    assert r.returncode == cli.NO_BUS and "cannot read file" in r.stderr
    r = run("--config", str(ROOT / "examples" / "xmpp" / "telescope.yaml"), "ls")
    assert (
        r.returncode == cli.NO_BUS
        and "this is the config of a module (pyobs.modules.simulated.SimTelescope)" in r.stderr
    )
    r = run("call")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = run("--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "exit codes:" in r.stdout
    r = run("completion", "bash")
    assert r.returncode == 0 and "complete -o default -F _pyobs_comm pyobs-comm" in r.stdout
    script = tmp_path / "c.sh"
    script.write_text(r.stdout + 'COMP_WORDS=(pyobs-comm ca); COMP_CWORD=1; _pyobs_comm; echo "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["call"]


async def test_ls_shows_a_module_in_error(bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    if bus.observatory is None:  # local: pyobs-comm runs the observatory; put the telescope in error from its config
        pytest.skip("covered on LocalComm by test_fleet_follows_lifecycle_state")
    bus.observatory["telescope"].set_error("mount jammed")
    code, out, err = await pyobs_comm(bus, capsys, "--json", "ls")
    assert code == cli.OK, err
    telescope = next(m for m in json_lines(out) if m["name"] == "telescope")
    assert telescope["state"] == "error" and telescope["message"] == "mount jammed"
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "init")
    assert code == cli.REMOTE_ERROR and "ModuleError" in err
    code, out, err = await pyobs_comm(bus, capsys, "call", "telescope", "reset_error")
    assert code == cli.OK and out.strip() == "true"


def cli_process(tmp_path: Path, command: list[str], stderr: int, **options: dict) -> subprocess.Popen[bytes]:
    """pyobs-comm in a process of its own, on the simulated observatory (``options``: per module)."""
    import yaml
    from tools_support import observatory_config

    config = tmp_path / "observatory.yaml"
    config.write_text(yaml.safe_dump(observatory_config(tmp_path, **options)))
    return subprocess.Popen(
        [sys.executable, "-m", "pyobs.tools.cli", "--config", str(config), *command],
        stdout=subprocess.PIPE, stderr=stderr, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def cli_on_a_terminal(tmp_path: Path, command: list[str], **options: dict) -> tuple[int, bytes, str]:
    """pyobs-comm with its stderr on a terminal: (exit code, stdout, what the terminal got)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = cli_process(tmp_path, command, slave, **options)
    os.close(slave)
    seen = b""
    try:
        out, _ = proc.communicate(timeout=60)
        while select.select([master], [], [], 1.0)[0]:  # what the terminal got (bounded: it is finished)
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, seen.decode(errors="replace")


def test_progress_line_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the progress line is rewritten in place while the call runs, with its deadline."""
    code, _, text = cli_on_a_terminal(tmp_path, ["call", "telescope", "init"], telescope={"init_time": 1.5})
    assert code == cli.OK
    assert "\r" in text and "telescope.init() " in text and "deadline in 1" in text  # 1.5 + 10 s announced


def test_ctrl_c_ends_a_running_call(tmp_path: Path) -> None:
    """SIGINT during a long call: the tool leaves the bus and exits with 130 at once."""
    import signal
    import time

    proc = cli_process(tmp_path, ["call", "telescope", "init"], subprocess.PIPE, telescope={"init_time": 30.0})
    try:
        assert proc.stderr is not None
        # the progress line: the call is running (bounded by the call's deadline)
        line = proc.stderr.readline().decode()
        assert "telescope.init() running, deadline in" in line
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert proc.wait(20) == cli.INTERRUPTED
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_every_example_of_the_help_parses() -> None:
    import shlex

    lines = [line.split("#")[0].strip() for line in cli.EXAMPLES.splitlines()]
    examples = [shlex.split(line)[1:] for line in lines if line.startswith("pyobs-comm ")]
    assert len(examples) >= 8
    for argv in examples:
        args = cli.build_parser().parse_args(argv)
        assert args.command in ("ls", "call", "watch", "state", "logs", "dashboard"), argv
    call = cli.build_parser().parse_args(shlex.split("--xmpp t@x call telescope move_radec 83.8 -5.4"))
    assert call.args == ["83.8", "-5.4"]  # a negative number is an argument, not an option


def test_progress_of_a_long_call_on_a_terminal(tmp_path: Path) -> None:
    """The progress notices a module reports (#17) show in the progress line: the camera's exposure."""
    code, out, text = cli_on_a_terminal(tmp_path, ["call", "camera", "grab_data"], camera={"exposure_time": 1.5})
    assert code == cli.OK and out.strip().endswith(b".fits")
    assert "camera.grab_data() " in text and "% exposure, " in text and "deadline in" in text, text[-500:]
