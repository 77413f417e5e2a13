"""pyobs-comm (our command-line inspector) against pyobs-core 2.19 modules on the same XMPP server."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml
from harness import Core, Server

ROOT = Path(__file__).resolve().parents[2]


def tool_config(server: Server, tmp_path: Path, account: str = "ourtool") -> Path:
    """A comm config for pyobs-comm (two running at once need two accounts: one session per JID)."""
    path = tmp_path / f"{account}.yaml"
    comm = {
        "class": "pyobs.comm.xmpp.XmppComm", "jid": server.jid(account), "password": server.password,
        "server": server.address, "use_tls": False, "allow_plain": True,
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"comm": comm}))
    return path


def command(config: Path, *argv: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pyobs.tools.cli",
        "--config",
        str(config),
        "--wait-for",
        "corescope,coresink,corecam",
        "--timeout",
        "30",
        *argv,
    ]


def pyobs_comm(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command(config, *argv), capture_output=True, text=True, env=env, timeout=90)


def test_pyobs_comm_lists_calls_and_reads_pyobs_core_modules(server: Server, core: Core, tmp_path: Path) -> None:
    config = tool_config(server, tmp_path)
    r = pyobs_comm(config, "--json", "ls", "--methods")
    assert r.returncode == 0, r.stderr
    listed = {m["name"]: m for m in (json.loads(line) for line in r.stdout.splitlines())}
    assert {"coresink", "corescope", "corecam"} <= set(listed)
    scope = listed["corescope"]
    assert scope["state"] == "ready" and {"ITelescope", "IPointingRaDec", "IFocuser"} <= set(scope["interfaces"])
    assert "move_radec(ra: float, dec: float) -> None" in [m["signature"] for m in scope["methods"]]

    r = pyobs_comm(config, "call", "corescope", "move_radec", "ra=12.5", "dec=-30")
    assert r.returncode == 0, r.stderr
    r = pyobs_comm(config, "--json", "state", "corescope", "IPointingRaDec")
    assert r.returncode == 0, r.stderr
    (state,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert state["value"]["ra"] == 12.5 and state["value"]["dec"] == -30.0
    # pyobs-core announces init's @timeout(20): the progress line shows the deadline it set
    r = pyobs_comm(config, "call", "corescope", "init")
    assert r.returncode == 0, r.stderr
    assert "corescope.init() running, deadline in 2" in r.stderr  # 20 s plus the margin
    r = pyobs_comm(config, "call", "corescope", "move_radec", "12.5")
    assert r.returncode == 2 and "missing required argument 'dec'" in r.stderr


def test_pyobs_comm_watches_pyobs_core_events(server: Server, core: Core, tmp_path: Path) -> None:
    config = tool_config(server, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = command(config, "--json", "watch", "--module", "corescope", "--event", "MotionStatusChangedEvent",
                   "-n", "1", "-t", "60")  # fmt: skip
    watch = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in watch.stdout or ()], daemon=True).start()
    try:
        # the watcher may still be joining: park and init again until it reports (bounded)
        event: dict[str, Any] | None = None
        for attempt in range(10):
            r = pyobs_comm(
                tool_config(server, tmp_path, "ourtool2"), "call", "corescope", "park" if attempt % 2 == 0 else "init"
            )
            assert r.returncode == 0, r.stderr
            try:
                event = json.loads(lines.get(timeout=3.0))
                break
            except queue.Empty:
                continue
        assert event is not None, "pyobs-comm watch saw no MotionStatusChangedEvent of pyobs-core's telescope"
        assert event["sender"] == "corescope" and event["type"] == "MotionStatusChangedEvent"
        assert event["data"]["status"] in ("parked", "idle")
        assert watch.wait(30) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(10)
