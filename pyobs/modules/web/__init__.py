"""The web dashboard as a module (needs aiohttp: ``pip install 'pyobs-comm[web]'``).

YAML::

    class: pyobs.modules.web.Dashboard
    port: 8080
    bind: 127.0.0.1          # default; see docs/dashboard.md before changing it
    login_file: /etc/pyobs/dashboard.password   # or $PYOBS_DASHBOARD_PASSWORD; else a random token
    comm: {class: pyobs.comm.xmpp.XmppComm, jid: dashboard@obs.example.org, password: ...}
"""

from __future__ import annotations

import logging
from typing import Any

from pyobs.modules.module import Module

from .server import DashboardServer, read_login

log = logging.getLogger(__name__)


class Dashboard(Module):
    """Serves a live web page of the whole fleet; calls from the page go out as this module.

    Args:
        port: TCP port (0: any free port; the URL is printed).
        bind: address to listen on (default 127.0.0.1: this machine only).
        login_file: file with the login password (first line); default $PYOBS_DASHBOARD_PASSWORD,
            else a random token, printed with the URL.
        history: events and log lines kept for pages that connect later.
    """

    def __init__(
        self,
        port: int = 8080,
        bind: str = "127.0.0.1",
        login_file: str | None = None,
        history: int = 500,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._port = port
        self._bind = bind
        self._password = read_login(login_file)
        self._history = history
        self.server: DashboardServer | None = None

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    async def _after_open(self) -> None:
        await super()._after_open()
        self.server = DashboardServer(
            self.comm, port=self._port, bind=self._bind, password=self._password, history=self._history
        )
        await self.server.start()
        # printed, not logged: log lines travel to every module as LogEvents, the token must not
        print(f"dashboard: open {self.server.url}", flush=True)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        await super().close()


__all__ = ["Dashboard", "DashboardServer"]
