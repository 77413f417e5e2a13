"""Objects from config, and the CLI's handling of bad configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyobs.comm.dummy import DummyComm
from pyobs.comm.local import LocalComm
from pyobs.modules import Module, MultiModule
from pyobs.object import Object, get_class_from_string, get_object
from pyobs.utils.exceptions import ConfigError


class Configurable(Object):
    def __init__(self, speed: float, name: str = "x", child: Object | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.speed = speed
        self.name = name
        self.child = child


def test_builds_object_with_cast_arguments() -> None:
    obj = get_object({"class": f"{__name__}.Configurable", "speed": 3}, Object)
    assert isinstance(obj, Configurable) and obj.speed == 3.0 and type(obj.speed) is float
    assert isinstance(obj.comm, DummyComm)


def test_builds_nested_objects_and_comm_from_dicts() -> None:
    cfg = {
        "class": f"{__name__}.Configurable",
        "speed": 1.5,
        "child": {"class": f"{__name__}.Configurable", "speed": 2},
        "comm": {"class": "pyobs.comm.local.LocalComm", "name": "parent"},
    }
    obj = get_object(cfg, Configurable)
    assert isinstance(obj.child, Configurable) and obj.child.speed == 2.0
    assert isinstance(obj.comm, LocalComm) and obj.comm.name == "parent"


@pytest.mark.parametrize(
    "cfg,key,problem",
    [
        ({"class": "pyobs.nothing.Here"}, "class", "unknown module 'pyobs.nothing'"),
        ({"class": "pyobs.modules.Nope"}, "class", "unknown class 'Nope'"),
        ({"class": "Module"}, "class", "dotted class path"),
        ({"speed": 1}, "", "missing 'class:'"),
        ({"class": f"{__name__}.Configurable"}, "speed", "missing required argument"),
        ({"class": f"{__name__}.Configurable", "speed": 1, "sped": 2}, "sped", "unexpected argument"),
        ({"class": f"{__name__}.Configurable", "speed": "fast"}, "speed", "wrong type: expected float"),
        ({"class": f"{__name__}.Configurable", "speed": 1, "child": {"class": "x.Y"}}, "child.class", "unknown"),
        ({"class": "pyobs.comm.local.LocalComm", "name": "a"}, "class", "is not a Object"),
    ],
)
def test_config_errors_name_key_and_problem(cfg: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_object(cfg, Object)
    assert info.value.key == key
    assert problem in info.value.problem


def test_class_from_string() -> None:
    assert get_class_from_string("pyobs.modules.Module") is Module


def test_multimodule_gives_each_module_a_local_comm_on_a_shared_network() -> None:
    mm = get_object(
        {
            "class": "pyobs.modules.MultiModule",
            "modules": {"a": {"class": "pyobs.modules.Module"}, "b": {"class": "pyobs.modules.Module", "label": "B"}},
        },
        MultiModule,
    )
    a, b = mm["a"], mm["b"]
    assert isinstance(a.comm, LocalComm) and isinstance(b.comm, LocalComm)
    assert a.name == "a" and b.label == "B"
    assert a.comm.network is b.comm.network is mm.network


async def test_multimodule_modules_find_each_other() -> None:
    mm = MultiModule(modules={"a": {"class": "pyobs.modules.Module"}, "b": {"class": "pyobs.modules.Module"}})
    await mm.open()
    try:
        assert mm["a"].comm.clients == ["b"]
        assert mm["b"].comm.clients == ["a"]
    finally:
        await mm.close()
    assert mm["a"].comm.clients == []


def test_multimodule_errors_name_the_module() -> None:
    with pytest.raises(ConfigError) as info:
        MultiModule(modules={"cam": {"class": "pyobs.modules.Module", "bogus": 1}})
    assert info.value.key == "modules.cam.bogus"


def _run_cli(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "pyobs", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("class: pyobs.modules.Module\n  label: [oops\n", "invalid YAML"),
        ("class: pyobs.modules.Modul\n", "class: unknown class 'Modul'"),
        ("class: pyobs.modules.Module\nlabl: x\n", "labl: unexpected argument"),
        ("- just\n- a list\n", "expected a mapping"),
        ("class: pyobs.modules.Module\ncomm:\n  class: pyobs.comm.local.LocalComm\n", "comm.name: missing"),
    ],
)
def test_cli_reports_bad_config_without_traceback(tmp_path: Path, text: str, expected: str) -> None:
    result = _run_cli(tmp_path, text)
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyobs", str(tmp_path / "none.yaml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "cannot read file" in result.stderr


def test_cli_runs_until_sigterm_and_closes_cleanly(tmp_path: Path) -> None:
    import signal
    import time

    path = tmp_path / "ok.yaml"
    path.write_text("class: pyobs.modules.Module\nlabel: Test\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyobs", str(path), "--log-level", "DEBUG"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import os
        import selectors

        assert proc.stderr is not None
        fd = proc.stderr.fileno()  # read the pipe unbuffered: select() does not see a text buffer
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        seen = b""
        while b"running until SIGINT/SIGTERM" not in seen:  # the module is open
            remaining = deadline - time.monotonic()
            assert remaining > 0 and proc.poll() is None, f"never reported it was running: {seen!r}"
            if sel.select(remaining):
                seen += os.read(fd, 65536)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
