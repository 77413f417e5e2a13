"""The dashboard started from the CLI (`pyobs-comm ... dashboard`), driven over HTTP and its WebSocket:
login before anything, origin check, calls with results and errors, logout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from browser import Process, env, python
from tools_support import MODULES, observatory_config

aiohttp = pytest.importorskip("aiohttp")


async def receive(ws: Any, kind: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
    """The next message of type ``kind`` (with the given fields) from the dashboard."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive_json()
            if msg["t"] == kind and all(msg.get(k) == v for k, v in match.items()):
                return msg  # type: ignore[no-any-return]


async def test_dashboard_from_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "observatory.yaml"
    config.write_text(yaml.safe_dump(observatory_config(tmp_path)))
    proc = Process(python("-m", "pyobs.tools.cli", "--config", str(config), "dashboard", "--port", "0"), env=env())
    try:
        line = await asyncio.to_thread(proc.wait_for_line, "pyobs-comm: dashboard at ")
        url = line.split(" at ", 1)[1].strip()
        base, _, fragment = url.partition("#token=")
        assert base.startswith("http://127.0.0.1:") and fragment  # no password configured: a random token
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await http.get(base)
            assert page.status == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
            assert "<title>pyobs dashboard</title>" in await page.text()
            assert (await http.get(base + "static/app.js")).status == 200
            assert (await http.get(base + "static/../server.py")).status == 404
            # nothing before the login
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(base + "ws")
            assert refused.value.status == 401
            assert (await http.post(base + "login", json={"password": "guess"})).status == 401
            assert (await http.post(base + "login", data="not json")).status == 400
            ok = await http.post(base + "login", json={"password": fragment})
            assert ok.status == 200 and (await ok.json())["name"] == "pyobs-comm"
            # a page of another site may not use the session (cross-site WebSocket hijacking)
            with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
                await http.ws_connect(base + "ws", origin="http://evil.example")
            assert foreign.value.status == 403

            async with http.ws_connect(base + "ws") as ws:
                hello = await receive(ws, "hello")
                assert sorted(m["name"] for m in hello["modules"]) == MODULES
                telescope = next(m for m in hello["modules"] if m["name"] == "telescope")
                move = next(m for m in telescope["methods"] if m["name"] == "move_altaz")
                assert [p["name"] for p in move["params"]] == ["alt", "az"] and move["params"][0]["type"] == "float"
                assert {"module": "telescope", "interface": "IMotion"}.items() <= next(
                    s for s in hello["states"] if s["interface"] == "IMotion" and s["module"] == "telescope"
                ).items()
                # a call with form values (text), its deadline, its result
                await ws.send_json({"t": "call", "id": 1, "module": "telescope", "method": "init", "args": {}})
                deadline = await receive(ws, "deadline", id=1)
                assert deadline["seconds"] > 0
                assert (await receive(ws, "result", id=1))["ok"] is True
                await ws.send_json(
                    {
                        "t": "call",
                        "id": 2,
                        "module": "telescope",
                        "method": "move_altaz",
                        "args": {"alt": "5", "az": "0"},
                    }
                )
                result = await receive(ws, "result", id=2)
                assert not result["ok"] and result["error"]["type"] == "AltitudeLimitError"
                await ws.send_json(
                    {"t": "call", "id": 3, "module": "telescope", "method": "move_altaz", "args": {"alt": "high"}}
                )
                result = await receive(ws, "result", id=3)
                assert not result["ok"] and "expected move_altaz(alt: float, az: float)" in result["error"]["message"]
                await ws.send_json({"t": "call", "id": 4, "module": "nobody", "method": "park"})
                result = await receive(ws, "result", id=4)
                assert not result["ok"] and "not online" in result["error"]["message"]
                await ws.send_str("{not json")
                assert "bad message" in (await receive(ws, "error"))["message"]
                # live state while it slews
                await ws.send_json(
                    {"t": "call", "id": 5, "module": "telescope", "method": "move_altaz", "args": {"alt": 60, "az": 90}}
                )
                async with asyncio.timeout(20):  # the altitude on its way from 80 down to 60
                    while True:
                        state = await receive(ws, "state", module="telescope", interface="IPointingAltAz")
                        if 60.5 < state["value"]["alt"] < 79.5:
                            break
                assert (await receive(ws, "result", id=5))["ok"] is True
            # logged out: the session is gone
            assert (await http.post(base + "logout")).status == 200
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(base + "ws")
    finally:
        await asyncio.to_thread(proc.stop)
