"""The dashboard's web server: one page, a WebSocket with live updates, calls after a login.

Threat model (also in docs/dashboard.md):

* The dashboard calls modules as *its own* account: the modules' ``acl:`` decide what it may do,
  whoever sits at the browser. Give it an account with only the rights an operator needs.
* Anyone who can reach the port and knows the password can do what the dashboard's account may
  do. Hence it binds to 127.0.0.1 by default; to use it from elsewhere put it behind a TLS reverse
  proxy (or an SSH tunnel): the password and the session cookie travel in clear over plain HTTP.
* Nothing is served to a browser without a session: the page shell and its static files carry no
  data; every value, event, log line and call goes through the WebSocket, which needs the session
  cookie (HttpOnly, SameSite=Strict) and an ``Origin`` equal to the page's own (no cross-site
  WebSocket hijacking). Passwords are compared in constant time; failed logins are rate-limited.
* Values from the bus are shown as text (never as HTML): a module cannot inject script into the page.
* Bounds: sessions, WebSocket clients, the queue of each client (a slow client is dropped, the bus
  is never blocked), message size and calls in flight per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from pyobs.comm import Comm
from pyobs.tools.fleet import Fleet, bind, parse_value, plain
from pyobs.utils.exceptions import ConfigError

log = logging.getLogger(__name__)

#: environment variable with the dashboard password (when no file is given)
LOGIN_ENV = "PYOBS_DASHBOARD_PASSWORD"
MAX_SESSIONS = 64
SESSION_LIFETIME = 12 * 3600.0
MAX_CLIENTS = 32
CLIENT_QUEUE = 2000
MAX_MESSAGE = 64 * 1024
MAX_CALLS_PER_CLIENT = 8
#: failed logins allowed per minute (all clients together) before answering 429
MAX_FAILED_LOGINS = 20
COOKIE = "pyobs_session"
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def read_login(path: str | None) -> str | None:
    """The dashboard password: first line of ``path``, else $PYOBS_DASHBOARD_PASSWORD, else None
    (then a random token is made and printed)."""
    import os

    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError("login file", f"cannot read {path}: {exc.strerror or exc}") from None
        if not lines or not lines[0].strip():
            raise ConfigError("login file", f"{path} is empty")
        return lines[0].strip()
    return os.environ.get(LOGIN_ENV) or None


class _Client:
    """One WebSocket: a bounded queue of outgoing messages and a writer task."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=CLIENT_QUEUE)
        self.calls = 0
        self.overflowed = False

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(json.dumps(message, default=str))
        except asyncio.QueueFull:
            self.overflowed = True  # the writer closes the socket: a client this slow misses too much


class DashboardServer:
    """Serves the dashboard for a comm (a module's or a module-less tool's).

    Args:
        comm: an opened comm to see the bus through and to call as.
        port: TCP port (0: a free one, see :attr:`url`).
        bind: address to listen on.
        password: the login; None makes a random token (shown in :attr:`url` as ``#token=…``).
        history: events and log lines kept for a page that connects later.
    """

    def __init__(
        self, comm: Comm, port: int = 8080, bind: str = "127.0.0.1", password: str | None = None, history: int = 500
    ) -> None:
        if not 0 <= port < 65536:
            raise ConfigError("port", f"expected 0..65535, got {port}")
        self.comm = comm
        self.port = port
        self.bind = bind
        self.generated = password is None
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.fleet = Fleet(comm, history=history)
        self._sessions: dict[str, float] = {}
        self._clients: set[_Client] = set()
        self._failed: list[float] = []
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: what each module's acl: lets us (the dashboard's account) call, as it says itself
        self._permitted: dict[str, list[str]] = {}
        self.url = ""

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.fleet.start()
        self.fleet.add_listener(self._broadcast)
        for name in self.comm.clients:
            self._spawn(self._ask_permitted(name))
        app = web.Application(client_max_size=MAX_MESSAGE, middlewares=[self._headers])
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/favicon.ico", self._no_content)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        self.url = f"http://{host}:{self.port}/" + (f"#token={self.password}" if self.generated else "")

    async def stop(self) -> None:
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(), 2.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 10.0)
            self._runner = None
        await self.fleet.stop()

    # ---------------------------------------------------------------- http

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def _no_content(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES or name == "index.html":
            raise web.HTTPNotFound()
        return self._file(name)

    @staticmethod
    def _file(name: str) -> web.Response:
        text = resources.files("pyobs.modules.web").joinpath("static", name).read_text(encoding="utf-8")
        return web.Response(text=text, content_type=STATIC_FILES[name], charset="utf-8")

    def _session_ok(self, request: web.Request) -> bool:
        token = request.cookies.get(COOKIE, "")
        expires = self._sessions.get(token)
        if expires is None:
            return False
        if expires < time.time():
            self._sessions.pop(token, None)
            return False
        return True

    async def _login(self, request: web.Request) -> web.Response:
        now = time.time()
        self._failed = [t for t in self._failed if t > now - 60.0]
        if len(self._failed) >= MAX_FAILED_LOGINS:
            raise web.HTTPTooManyRequests(text="too many failed logins, try again in a minute")
        try:
            body = await request.json()
            password = str(body.get("password", ""))
        except (ValueError, AttributeError):
            raise web.HTTPBadRequest(text='expected JSON {"password": ...}') from None
        if not hmac.compare_digest(password.encode(), self.password.encode()):
            self._failed.append(now)
            raise web.HTTPUnauthorized(text="wrong password")
        for token, expires in list(self._sessions.items()):
            if expires < now:
                del self._sessions[token]
        if len(self._sessions) >= MAX_SESSIONS:  # the oldest session makes room
            del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
        token = secrets.token_urlsafe(32)
        self._sessions[token] = now + SESSION_LIFETIME
        response = web.json_response({"ok": True, "name": self.comm.name})
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", max_age=int(SESSION_LIFETIME))
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE)
        return response

    # ---------------------------------------------------------------- websocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        if not self._session_ok(request):
            raise web.HTTPUnauthorized(text="log in first")
        if len(self._clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="too many dashboard clients")
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        client = _Client(ws)
        self._clients.add(client)
        client.send(self._snapshot())
        writer = asyncio.ensure_future(self._write(client))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    client.send({"t": "error", "message": f"expected text messages (JSON), got {msg.type.name}"})
                    continue
                if not self._session_ok(request):  # logged out or expired meanwhile
                    break
                self._handle(client, msg.data)
        finally:
            self._clients.discard(client)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def _write(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if client.overflowed:
                await client.ws.close(code=1013, message=b"too slow")
                return
            await client.ws.send_str(text)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "t": "hello",
            "name": self.comm.name,
            "modules": [m.to_dict() for m in self.fleet.modules()],
            "states": list(self.fleet.states.values()),
            "series": {f"{k[0]}/{k[1]}": list(v) for k, v in self.fleet.series.items()},
            "events": list(self.fleet.events),
            "logs": list(self.fleet.logs),
            "permitted": dict(self._permitted),
        }

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask_permitted(self, module: str) -> None:
        """Ask the module which methods it lets the dashboard call (always callable, under the comm's
        deadline); the page marks the others. The module still decides on every call."""
        try:
            methods = await self.comm.execute(module, "get_permitted_methods")
        except Exception as exc:  # offline again, or it does not say: nothing is marked
            log.debug("get_permitted_methods of %s failed: %s", module, exc)
            return
        if not isinstance(methods, list) or module not in self.comm.clients:
            return
        self._permitted[module] = [str(m) for m in methods]
        self._broadcast("permitted", {"module": module, "methods": self._permitted[module]})

    def _broadcast(self, kind: str, record: dict[str, Any]) -> None:
        if kind == "fleet":
            if record["online"]:
                self._spawn(self._ask_permitted(record["module"]))
            else:
                self._permitted.pop(record["module"], None)
            message = {"t": "fleet", "modules": [m.to_dict() for m in self.fleet.modules()]}
        elif kind == "presence":
            message = {"t": "fleet", "modules": [m.to_dict() for m in self.fleet.modules()]}
        else:
            message = {"t": kind, **record}
        for client in self._clients:
            client.send(message)

    def _handle(self, client: _Client, text: str) -> None:
        try:
            msg = json.loads(text)
            if not isinstance(msg, dict):
                raise ValueError("expected an object")
        except ValueError as exc:
            client.send({"t": "error", "message": f"bad message: {exc}"})
            return
        if msg.get("t") == "call":
            call_id = msg.get("id")
            if client.calls >= MAX_CALLS_PER_CLIENT:
                client.send({"t": "result", "id": call_id, "ok": False,
                             "error": {"type": "DashboardBusy", "message": "too many calls running"}})  # fmt: skip
                return
            client.calls += 1
            self._spawn(self._call(client, msg))
        elif msg.get("t") == "refresh":
            client.send(self._snapshot())
        else:
            client.send({"t": "error", "message": f"unknown message type {msg.get('t')!r}"})

    async def _call(self, client: _Client, msg: dict[str, Any]) -> None:
        call_id = msg.get("id")
        module, method = str(msg.get("module", "")), str(msg.get("method", ""))
        try:
            spec = self.fleet.method(module, method)
            raw = msg.get("args") or {}
            if not isinstance(raw, dict):
                raise TypeError("args must be an object of name: value")
            # form fields arrive as text; empty optional fields take their default
            kwargs = {k: parse_value(v) if isinstance(v, str) else v for k, v in raw.items() if v != ""}
            args = bind(spec, [], kwargs)

            def deadline(seconds: float) -> None:
                client.send({"t": "deadline", "id": call_id, "seconds": seconds})

            client.send({"t": "deadline", "id": call_id, "seconds": self.comm.timeout})
            log.info("%s: calling %s.%s() for the dashboard", self.comm.name, module, method)
            def progress(fraction: float | None, message: str) -> None:
                client.send({"t": "progress", "id": call_id, "fraction": fraction, "message": message})

            result = await self.fleet.call(module, method, args, deadline, progress)
            client.send({"t": "result", "id": call_id, "ok": True, "value": plain(result)})
        except Exception as exc:
            original = getattr(exc, "original_type", None)
            error = {"type": str(original) if original else type(exc).__name__, "message": str(exc)}
            client.send({"t": "result", "id": call_id, "ok": False, "error": error})
        finally:
            client.calls -= 1
