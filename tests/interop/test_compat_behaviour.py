"""Same-file behaviour tests: compat/behaviour_checks.py runs once with this package and once in
pyobs-core 2.19.1's venv, with the same assertions; and a module file plus config written for
pyobs-core (``{include}``, ``acl:``, ``comm:`` with ``ignore_cert_errors``, ``vfs:``, ``own_comm``) starts with
``pyobs`` and is called by a pyobs-core module."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import Core, Server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHECKS = HERE / "compat" / "behaviour_checks.py"


def _run_checks(python: str, ours: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    args = [python, str(CHECKS)] if ours else [python, "-P", str(CHECKS)]
    if ours:
        env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(args, cwd="/", env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_same_checks_pass_on_both_packages(core_py: Path) -> None:
    ours = _run_checks(sys.executable, ours=True)
    theirs = _run_checks(str(core_py), ours=False)
    assert set(ours) == set(theirs) and len(ours) >= 10
    failed = {f"{who}: {name}": result for who, results in (("pyobs-core", theirs), ("ours", ours))
              for name, result in results.items() if result != "ok"}  # fmt: skip
    print(f"\n{len(ours)} behaviour checks pass on pyobs-core 2.19.1 and on ours")
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())


MODULE_FILE = '''
"""A focuser written for pyobs-core 2.19 (its idioms only)."""
from typing import Any

from pyobs.interfaces import IFocuser
from pyobs.interfaces.types import FocuserState
from pyobs.modules import Module, timeout
from pyobs.utils.enums import ModuleState
from pyobs.utils.exceptions import MoveError


class StepsMixin:
    def __init__(self, steps_per_mm: int = 100, **kwargs: Any):
        self.steps_per_mm = steps_per_mm
        super().__init__(**kwargs)


class CompatFocuser(Module, IFocuser, StepsMixin):
    __module__ = "compat_focuser"

    def __init__(self, start: float = 10.0, **kwargs: Any):
        Module.__init__(self, **kwargs)
        self._focus = start

    async def open(self) -> None:
        await Module.open(self)
        await self.comm.set_state(IFocuser, FocuserState(focus=self._focus, focus_offset=0.0))

    @timeout(60)
    async def set_focus(self, focus: float, **kwargs: Any) -> None:
        if focus < 0:
            raise MoveError("negative focus", module=self.name)
        self._focus = focus * self.steps_per_mm / 100
        await self.comm.set_state(IFocuser, FocuserState(focus=self._focus, focus_offset=0.0))

    async def set_focus_offset(self, offset: float, **kwargs: Any) -> None:
        await self.set_state(ModuleState.ERROR, "offsets are not supported")

    async def init(self, **kwargs: Any) -> None: ...

    async def park(self, **kwargs: Any) -> None: ...

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None: ...
'''


@pytest.mark.asyncio(loop_scope="session")
async def test_a_module_file_and_config_written_for_pyobs_core_start_with_pyobs(
    server: Server, core: Core, tmp_path: Path
) -> None:
    (tmp_path / "compat_focuser.py").write_text(MODULE_FILE)
    (tmp_path / "_comm.yaml").write_text(
        textwrap.dedent(f"""\
        class: pyobs.comm.xmpp.XmppComm
        jid: {server.jid("ourcompat")}
        password: {server.password}
        server: {server.address}
        use_tls: false
        allow_plain: true
        ignore_cert_errors: true
        ping_interval: 60
        ping_timeout: 10
        """)
    )
    (tmp_path / "_site.yaml").write_text("timezone: Africa/Johannesburg\nlocation:\n  longitude: 20.81\n")
    config = tmp_path / "ourcompat.yaml"
    config.write_text(
        textwrap.dedent("""\
        {include _site.yaml}
        class: compat_focuser.CompatFocuser
        steps_per_mm: 200
        own_comm: true
        additional_config_variables: [start]
        vfs:
          class: pyobs.vfs.VirtualFileSystem
        acl:
          allow:
            coresink: [IFocuser, IModule]
        comm:
          {include _comm.yaml}
        """)
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyobs", str(config), "--log-level", "info"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        async def online() -> bool:
            return "ourcompat" in await core.sink.result("clients")

        ok = False
        for _ in range(300):  # bounded: 30 s
            if proc.poll() is not None:
                break
            if await online():
                ok = True
                break
            await asyncio.sleep(0.1)
        if not ok:
            if proc.poll() is None:
                proc.kill()
            stderr = proc.communicate()[1][-3000:]
            raise AssertionError(f"the module did not come online (exit {proc.poll()}): {stderr}")
        # a pyobs-core module calls it: the mixin's argument and the @timeout method work
        assert await core.sink.call("ourcompat", "IFocuser", "set_focus", 2.0) is None
        error = await core.sink.call_fails("ourcompat", "IFocuser", "set_focus", -1.0)
        assert error["type"] == "pyobs.utils.exceptions.MoveError"
        # the acl: of the config is enforced: another pyobs-core module is refused
        error = await core.scope.call_fails("ourcompat", "IFocuser", "set_focus", 1.0)
        assert error["type"] == "pyobs.utils.exceptions.ForbiddenError", error
        # pyobs-core reads the state its way (proxy.get_state, synchronous there too): 2.0 mm * 200/100
        state = await core.sink.result("wait_for_state", module="ourcompat", interface="IFocuser", timeout=5)
        assert state["fields"]["focus"] == 4.0, state
        # Module.set_state(ModuleState.ERROR, text) reaches pyobs-core as presence
        assert await core.sink.result("client_state", module="ourcompat") == ["ready", ""]
        await core.sink.call("ourcompat", "IFocuser", "set_focus_offset", 1.0)
        for _ in range(100):  # bounded: 10 s
            if await core.sink.result("client_state", module="ourcompat") == ["error", "offsets are not supported"]:
                break
            await asyncio.sleep(0.1)
        assert await core.sink.result("client_state", module="ourcompat") == ["error", "offsets are not supported"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "error in" not in err and "Traceback" not in err, err[-3000:]
