"""Config files as pyobs-core writes them: includes, global defaults, its module options (docs/compat.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pyobs.cli.main import build
from pyobs.modules import Module
from pyobs.utils.config import MAX_INCLUDE_DEPTH, global_defaults, load_yaml, pre_process_yaml
from pyobs.utils.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(d: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (d / name).write_text(text)


def test_includes_whole_files_keys_lists_and_anchors(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "_comm.yaml": "comm_cfg: &comm\n  class: pyobs.comm.dummy.DummyComm\nfilters:\n  red: {name: R}\n",
            "_site.yaml": "timezone: Europe/Berlin\n",
            "_nested.yaml": "{include _site.yaml}\nlabel: nested\n",
            "m.yaml": "{include _nested.yaml}\nclass: pyobs.modules.Module\ncomm:\n  <<: *comm\n"
            "items:\n  - {include _comm.yaml filters.red}\nred: {include _comm.yaml filters.red}\n",
        },
    )
    assert load_yaml(str(tmp_path / "m.yaml")) == {
        "timezone": "Europe/Berlin",
        "label": "nested",
        "class": "pyobs.modules.Module",
        "comm": {"class": "pyobs.comm.dummy.DummyComm"},
        "items": [{"name": "R"}],
        "red": {"name": "R"},
    }
    (tmp_path / "b.yaml").write_text("{include _nested.yaml}\nclass: pyobs.modules.Module\ncomm:\n  <<: *comm\n"
                                     "vfs: {include _comm.yaml filters}\n")  # fmt: skip
    write(tmp_path, {"_nested.yaml": "{include _site.yaml}\nlabel: nested\n{include _comm.yaml filters}\n"})
    with pytest.raises(ConfigError, match="red: unexpected argument for Module"):
        build(str(tmp_path / "b.yaml"))
    write(tmp_path, {"_nested.yaml": "{include _site.yaml}\nlabel: nested\n"})
    module = build(str(tmp_path / "b.yaml"))
    assert isinstance(module, Module) and module.label == "nested" and str(module.timezone) == "Europe/Berlin"
    assert module.vfs == {"red": {"name": "R"}}


@pytest.mark.parametrize(
    "files,problem",
    [
        ({"m.yaml": "{include m.yaml}\n"}, "include cycle: m.yaml -> m.yaml"),
        ({"m.yaml": "{include none.yaml}\n"}, "cannot read file"),
        ({"m.yaml": "a:\n  {include b.yaml x.y}\n", "b.yaml": "x: {z: 1}\n"}, "has no key 'x.y'"),
        ({"m.yaml": "{include b.yaml}\n", "b.yaml": "a: [oops\n"}, "included b.yaml line 2: invalid YAML"),
    ],
)
def test_include_errors_name_file_and_problem(tmp_path: Path, files: dict[str, str], problem: str) -> None:
    write(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        pre_process_yaml(str(tmp_path / "m.yaml"))
    assert problem in str(info.value)
    assert "m.yaml" in str(info.value)


def test_includes_nest_only_so_deep(tmp_path: Path) -> None:
    for i in range(MAX_INCLUDE_DEPTH + 2):
        (tmp_path / f"f{i}.yaml").write_text(f"{{include f{i + 1}.yaml}}\n")
    (tmp_path / f"f{MAX_INCLUDE_DEPTH + 2}.yaml").write_text("a: 1\n")
    with pytest.raises(ConfigError, match="nested deeper than"):
        pre_process_yaml(str(tmp_path / "f0.yaml"))


def test_global_defaults_from_the_pyobs_section_and_environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "pyobs.yaml").write_text(
        "pyobs:\n  log_level: warning\n  syslog: true\n  unknown_key: 1\nother:\n  log_level: debug\n"
    )
    assert global_defaults({}) == {"log_level": "warning", "syslog": True}
    assert global_defaults({"PYOBS_LOG_LEVEL": "debug"})["log_level"] == "debug"  # variables win


def _start(tmp_path: Path, config: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "mod.yaml"
    path.write_text(config)
    return subprocess.Popen(
        [sys.executable, "-m", "pyobs", str(path), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    time.sleep(1.0)  # as test_config's CLI test: SIGTERM must close it cleanly whether it has started or not
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_cli_takes_pyobs_core_options_and_global_log_level(tmp_path: Path) -> None:
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "pyobs.yaml").write_text("pyobs:\n  log_level: debug\n  iers_offline: true\n")
    (tmp_path / "_site.yaml").write_text("timezone: utc\nlocation: {longitude: 20.81, latitude: -32.38}\n")
    config = (
        "{include _site.yaml}\nclass: pyobs.modules.Module\nown_comm: true\nadditional_config_variables: [a]\n"
        "vfs:\n  class: pyobs.vfs.VirtualFileSystem\n  roots: {cache: {class: pyobs.vfs.MemoryFile}}\n"
    )
    code, err = _stop(_start(tmp_path, config, {}, "-l", str(tmp_path / "log.txt")))
    assert code == 0, err
    assert "DEBUG" in err  # the global log level applied
    assert "global option iers_offline is not used by this package" in err
    assert "global option" in (tmp_path / "log.txt").read_text()


def test_cli_environment_wins_and_bad_options_stay_short_errors(tmp_path: Path) -> None:
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "pyobs.yaml").write_text("pyobs:\n  log_level: debug\n")
    code, err = _stop(_start(tmp_path, "class: pyobs.modules.Module\n", {"PYOBS_LOG_LEVEL": "warning"}))
    assert code == 0 and "DEBUG" not in err and "INFO" not in err, err
    proc = _start(tmp_path, "class: pyobs.modules.Module\nvfss: {}\n", {})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "mod.yaml: vfss: unexpected argument for Module" in err, err
    assert "Traceback" not in err
