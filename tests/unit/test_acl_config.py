"""The ``acl:`` module option in config files: accepted in pyobs-core's forms, wrong forms named in one line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pyobs.cli.main import build, run
from pyobs.comm.acl import Acl
from pyobs.comm.local import LocalComm
from pyobs.interfaces import IConfig, IModule
from pyobs.modules import Module
from pyobs.utils.exceptions import ConfigError, ForbiddenError

GUARDED = """\
class: pyobs.modules.Module
label: Guarded
acl:
  allow:
    scheduler: "*"
    gui: [IConfig]
  mode: enforce
comm:
  class: pyobs.comm.local.LocalComm
  name: guarded
"""


async def test_a_module_config_with_acl_starts_with_the_cli_and_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "guarded.yaml"
    path.write_text(GUARDED)
    module = build(str(path))  # what `pyobs guarded.yaml` does, then run()
    assert isinstance(module, Module)
    stop = asyncio.Event()
    runner = asyncio.create_task(run(module, stop))
    callers = [LocalComm(name) for name in ("gui", "intruder")]
    try:
        for c in callers:
            await c.open()
        gui, intruder = callers
        for c in callers:
            async with asyncio.timeout(10):
                while not c.is_online("guarded"):
                    await asyncio.sleep(0.01)
        with pytest.raises(ForbiddenError, match="'intruder'"):
            await (await intruder.proxy("guarded", IModule)).reset_error()
        with pytest.raises(ForbiddenError, match="'gui' is not permitted to invoke 'reset_error'"):
            await (await gui.proxy("guarded", IModule)).reset_error()
        assert await (await gui.proxy("guarded", IModule)).get_permitted_methods() == [
            "get_config_value",
            "set_config_value",
        ]
        with pytest.raises(Exception, match="unknown config value"):  # got through the ACL to the method
            await (await gui.proxy("guarded", IConfig)).get_config_value("nothing")
    finally:
        for c in callers:
            await c.close()
        stop.set()
        await asyncio.wait_for(runner, 20)


@pytest.mark.parametrize(
    ("acl", "key", "problem"),
    [
        ("[scheduler]", "acl", "wrong type: expected dict"),
        ("{allow: {a: '*'}, deny: [b]}", "acl", 'either "allow" or "deny", not both'),
        ("{deny: [b], mode: audit}", "acl.mode", 'Invalid acl mode "audit"'),
        ("{alow: {a: '*'}}", "acl.alow", "unknown key (known: allow, deny, mode)"),
        ("{allow: [a, b]}", "acl.allow", "expected a mapping of caller to '*' or a list of methods"),
        ("{allow: {a: 5}}", "acl.allow.a", "expected a list of method or interface names, or '*'"),
        ("{allow: {a: [reset_error, 3]}}", "acl.allow.a", "expected a list of method or interface names"),
        ("{deny: {a: b}}", "acl.deny", "expected a list of caller names"),
    ],
)
def test_cli_names_a_wrong_acl_form_in_one_line(tmp_path: Path, acl: str, key: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"class: pyobs.modules.Module\nacl: {acl}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pyobs", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"bad.yaml: {key}: " in lines[0] and problem in lines[0], lines[0]


def test_allow_entries_expand_interfaces_and_keep_method_names() -> None:
    acl = Acl.from_config(
        {"allow": {"gui": ["IConfig", "reset_error"], "boss": "*", "one": "reset_error"}}, [IModule, IConfig]
    )
    assert acl is not None and acl.enforcing and acl.deny is None
    assert acl.allow == {
        "gui": frozenset({"get_config_value", "set_config_value", "reset_error"}),
        "boss": None,
        "one": frozenset({"reset_error"}),  # a single name, not its characters
    }
    assert acl.denies("gui", "get_permitted_methods") and not acl.denies("gui", "set_config_value")
    assert acl.denies("nobody", "reset_error") and not acl.denies("boss", "anything")


def test_deny_and_open_forms() -> None:
    assert Acl.from_config(None, [IModule]) is None
    acl = Acl.from_config({"deny": "guest", "mode": "log"}, [IModule])
    assert acl is not None and acl.deny == frozenset({"guest"}) and not acl.enforcing
    assert acl.denies("guest", "reset_error") and not acl.denies("gues", "reset_error")
    assert acl.permitted("guest", ["reset_error"]) == ["reset_error"]  # log mode reports no restriction
    empty = Acl.from_config({}, [IModule])
    assert empty is not None and not empty.denies("anyone", "reset_error")


def test_an_acl_on_a_module_sharing_a_comm_is_refused() -> None:
    owner = Module(comm=LocalComm("owner"))
    with pytest.raises(ConfigError, match="acl: the module shares another module's comm"):
        Module(comm=owner.comm, acl={"deny": ["x"]})
