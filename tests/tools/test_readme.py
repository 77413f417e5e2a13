"""The README's new commands work: the two-command start of the dashboard and the pyobs-comm tour."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from browser import Process, env, python

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("numpy")


def tour() -> list[tuple[str, int]]:
    """The README's `pyobs-comm --config examples/...` lines, with the exit code a comment announces."""
    out = []
    for line in README.splitlines():
        if line.startswith("    pyobs-comm --config examples/"):
            cmd, _, comment = line.strip().partition("#")
            match = re.search(r"exit (\d)", comment)
            out.append((cmd.strip(), int(match.group(1)) if match else 0))
    return out


def test_readme_has_the_two_commands_and_the_tour() -> None:
    assert '    pip install -e ".[all]"\n    pyobs examples/dashboard.yaml\n' in README
    assert len(tour()) >= 6


@pytest.mark.parametrize(("line", "code"), tour())
def test_tour_command(line: str, code: int) -> None:
    argv = shlex.split(line)
    assert argv[0] == "pyobs-comm"
    bound = ["--duration", "30"] if "--count" in argv else []  # a follow that sees too little still ends
    done = subprocess.run(
        [sys.executable, "-m", "pyobs.tools.cli", *argv[1:], *bound],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **env()},
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert (done.stdout if code == 0 else done.stderr).strip()


async def test_two_command_start(tmp_path: Path) -> None:
    """`pyobs examples/dashboard.yaml` prints a URL that logs in and shows the whole observatory
    (on a free port instead of 8080: tests never take fixed ports)."""
    config = yaml.safe_load((ROOT / "examples" / "dashboard.yaml").read_text())
    assert config["modules"]["dashboard"]["port"] == 8080
    config["modules"]["dashboard"]["port"] = 0
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = Process(python("-m", "pyobs", str(path)), env=env())
    try:
        line = await asyncio.to_thread(proc.wait_for_line, "dashboard: open ")
        base, _, token = line.split("dashboard: open ", 1)[1].strip().partition("#token=")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            assert (await http.get(base)).status == 200
            assert (await http.post(base + "login", json={"password": token})).status == 200
            async with http.ws_connect(base + "ws") as ws:
                async with asyncio.timeout(20):
                    hello = await ws.receive_json()
            names = sorted(m["name"] for m in hello["modules"])
            assert names == sorted(n for n in config["modules"] if n != "dashboard")
    finally:
        await asyncio.to_thread(proc.stop)
