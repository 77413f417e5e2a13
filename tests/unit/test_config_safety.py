"""Configs that fail safe and fast (issue #13, point 9): YAML bounds, every option type-checked
(base classes and the comm included), one-line errors instead of tracebacks."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyobs.cli.main import load_config, main
from pyobs.utils import safeyaml
from pyobs.utils.exceptions import ConfigError

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
class: pyobs.modules.Module
"""


def _limit_memory() -> None:
    # without the bound the bomb grows to gigabytes: let it fail quickly instead
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_an_alias_bomb_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 400
    proc = subprocess.run(
        [sys.executable, "-m", "pyobs", str(path)],
        capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "aliases" in lines[0] and "bomb.yaml" in lines[0]


def test_yaml_bounds(tmp_path: Path) -> None:
    with pytest.raises(safeyaml.YamlLimitError, match="recursive alias"):
        safeyaml.load("a: &a [1, *a]\n")
    with pytest.raises(safeyaml.YamlLimitError, match="nested too deeply"):
        safeyaml.load("[" * 100_000 + "]" * 100_000)
    with pytest.raises(safeyaml.YamlLimitError, match="too large"):
        safeyaml.load("a: 1\n", max_bytes=3)
    # ordinary aliases (shared defaults) still work
    assert safeyaml.load("d: &d {x: 1}\na: *d\nb: *d\n") == {"d": {"x": 1}, "a": {"x": 1}, "b": {"x": 1}}
    path = tmp_path / "big.yaml"
    path.write_text("x: " + "a" * (safeyaml.MAX_BYTES + 1) + "\n")
    with pytest.raises(ConfigError, match="too large"):
        load_config(str(path))


XMPP = {"class": "pyobs.comm.xmpp.XmppComm", "jid": "camera@example.org", "password": "x"}


@pytest.mark.parametrize(
    ("module", "comm", "expect"),
    [
        ({}, {"jid": "no-at-sign"}, "comm: pyobs.comm.xmpp.XmppComm: invalid JID"),
        ({}, {"server": "host:port"}, "comm.server: invalid server 'host:port': the port 'port' is not a number"),
        ({}, {"timeout": -1}, "timeout must be a positive number"),
        ({}, {"timeout": "soon"}, "comm.timeout: wrong type"),
        ({}, {"event_queue_size": 0}, "event_queue_size must be a whole number"),
        ({}, {"max_calls": "many"}, "comm.max_calls: wrong type"),
        ({}, {"max_call_timeout": ".inf"}, "max_call_timeout must be a positive number"),
        ({}, {"trusted": "everybody"}, "comm.trusted: wrong type"),
        ({"publish_logs": "yes"}, {}, "publish_logs: wrong type"),
        ({"label": 5}, {}, "label: wrong type"),
        ({"timezone": 1}, {}, "timezone: wrong type"),
    ],
)
def test_every_option_is_checked_with_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: dict[str, Any], comm: dict[str, Any], expect: str
) -> None:
    import yaml

    config = {"class": "pyobs.modules.Module", **module, "comm": {**XMPP, **comm}}
    text = yaml.safe_dump(config).replace("'.inf'", ".inf")
    path = tmp_path / "module.yaml"
    path.write_text(text)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pyobs: error in {path}") and expect in err[0], err


def test_includes_are_bounded_too(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB.replace("class: pyobs.modules.Module\n", ""))
    main_file = tmp_path / "main.yaml"
    main_file.write_text("class: pyobs.modules.Module\n{include bomb.yaml i}\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_config(str(main_file))
    # a file that never ends (or is huge) is read only up to the bound
    main_file.write_text("class: pyobs.modules.Module\nx: {include /dev/zero}\n")
    with pytest.raises(ConfigError, match="too large"):
        load_config(str(main_file))
