"""The simulated observatory, end to end, on every transport: the same night, no event lost.

LocalComm runs it as a MultiModule in this process; D-Bus and XMPP with one process per module
(``python -m pyobs CONFIG``) on a private dbus-daemon / the session's XMPP server. An observer
module in this process receives every event type of every module; what each module sent is
what its comm counted (for processes: the line it logs when it closes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from backends.base import eventually
from observatory import Observer, check_night, module_configs, parse_summaries

from pyobs.comm.local import LocalComm
from pyobs.modules import MultiModule

pytest.importorskip("numpy")
REPO = Path(__file__).resolve().parents[2]
#: upper bound of one night (the weather turns bad about 1 s into the science images)
NIGHT_TIMEOUT = 60.0


async def test_observatory_night_on_local_comm(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.INFO)  # as `pyobs CONFIG` runs: INFO records become LogEvents
    configs = module_configs(tmp_path / "images")
    night = MultiModule(configs)
    observer = Observer(comm=LocalComm("observer", network=night.network))
    await observer.open()
    try:
        await night.open()
        try:
            await asyncio.wait_for(night.finished.wait(), NIGHT_TIMEOUT)
        finally:
            await night.close()
        modules = night.modules
        sent = {n: dict(m.comm.outbox.sent) for n, m in modules.items()}
        lost = {n: (m.comm.outbox.dropped, m.comm.outbox.refused, m.comm.outbox.unsent) for n, m in modules.items()}
        await eventually(
            lambda: all(observer.received_from(n) == sent[n] for n in sent), timeout=10.0, what="every event"
        )
        summary = modules["scheduler"].summary  # type: ignore[attr-defined]
        got = check_night(observer, tmp_path / "images", summary.reason, sent, lost)
        print("LocalComm events per sender and type:", got)
    finally:
        await observer.close()


def _spawn(cfg: dict[str, Any], path: Path, log: Path) -> subprocess.Popen[bytes]:
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pyobs", str(path), "--log-level", "INFO"], stdout=out, stderr=out, env=env
        )


async def _night_in_processes(backend: Any, tmp_path: Path) -> dict[str, dict[str, int]]:
    image_dir = tmp_path / "images"
    configs = module_configs(image_dir)
    observer = Observer(comm=backend.comm("observer"))
    await observer.open()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in configs}
    try:
        for name, cfg in configs.items():  # devices first, the night script last (as the examples do)
            procs[name] = _spawn({**cfg, "comm": backend.comm_config(name)}, tmp_path / f"{name}.yaml", logs[name])
        loop = asyncio.get_running_loop()
        end = loop.time() + NIGHT_TIMEOUT
        while procs["scheduler"].poll() is None:
            assert loop.time() < end, "the night did not end:\n" + logs["scheduler"].read_text()[-3000:]
            for name, proc in procs.items():
                assert proc.poll() is None or name == "scheduler", f"{name} died:\n{logs[name].read_text()[-3000:]}"
            await asyncio.sleep(0.1)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            code = await asyncio.to_thread(proc.wait, 20)
            assert code == 0, f"{name} exited with {code}:\n{logs[name].read_text()[-3000:]}"
        texts = {name: log.read_text() for name, log in logs.items()}
        summaries = {}
        for name, text in texts.items():
            parsed = parse_summaries(text)
            assert name in parsed, f"{name} logged no event counts at exit:\n{text[-3000:]}"
            summaries[name] = parsed[name]
            assert "not sent before closing" not in text, f"{name} warned about unsent events"
        sent = {n: s[0] for n, s in summaries.items()}
        lost = {n: s[1:] for n, s in summaries.items()}
        await eventually(
            lambda: all(observer.received_from(n) == sent[n] for n in sent), timeout=10.0, what="every event"
        )
        line = next(ln for ln in texts["scheduler"].splitlines() if "NIGHT SUMMARY" in ln)
        reason = line.split(" images taken", 1)[1].split("(", 1)[1].split(")", 1)[0]
        return check_night(observer, image_dir, reason, sent, lost)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        await observer.close()


async def test_observatory_night_on_dbus_one_process_per_module(dbus_backend: Any, tmp_path: Path) -> None:
    got = await _night_in_processes(dbus_backend, tmp_path)
    print("D-Bus events per sender and type:", got)


async def test_observatory_night_on_xmpp_one_process_per_module(xmpp_backend: Any, tmp_path: Path) -> None:
    got = await _night_in_processes(xmpp_backend, tmp_path)
    print("XMPP events per sender and type:", got)
