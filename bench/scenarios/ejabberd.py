"""XmppComm, one process per module, on a throw-away ejabberd (pyobs.testing.ejabberd_server).

The same measurements as the prosody scenario (scenarios/xmpp.py: ours, pyobs-core 2.19.1 and the
plain-slixmpp floor, one after the other on the same server), with the ejabberd configuration of
docs/xmpp.md; ``bench/run --ejabberd-shaper 30000`` measures with a tighter c2s shaper.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from scenarios.xmpp import (  # noqa: F401  (the workers find the roles and make_comm here)
    FLOOR_EVENT_ROLES,
    IMPLS,
    IMPORT,
    IN_PROCESS,
    floor,
    make_comm,
    role_floor_callee,
    role_floor_caller,
    role_floor_msg_publisher,
    role_floor_msg_subscriber,
    role_floor_publisher,
    role_floor_subscriber,
    users,
)
from scenarios.xmpp import available as _xmpp_available

if TYPE_CHECKING:
    from harness.driver import Run

NAME = "ejabberd"
TITLE = "XmppComm (one process per module, ejabberd on 127.0.0.1)"
FLOOR = (
    "plain slixmpp through the same ejabberd: IQ with an rpc-sized payload answered by a minimal callback; "
    "events: a <message> to each subscriber's full JID (as ours sends to our peers); "
    "the pubsub floor (XEP-0060 publish to a node with persist_items=0, subscribers by full JID) in its own rows"
)
#: no goals of their own: the issue-4 goals are set on prosody; here the ratios are reported
GOALS: list[tuple[str, str, float, str]] = []


def available(impl: str) -> str | None:
    if shutil.which("erl") is None:
        return "ejabberd (erl) is not installed"
    why = _xmpp_available(impl)
    return None if why == "prosody is not installed" else why


@contextlib.asynccontextmanager
async def environment(run: Run) -> AsyncIterator[dict[str, Any]]:
    from pyobs.testing.ejabberd_server import SHAPER_RATE, EjabberdTestServer

    names = users(run.profile.subscribers, run.profile.starts)
    rate = getattr(run, "ejabberd_shaper", None) or SHAPER_RATE
    async with EjabberdTestServer(names, shaper_rate=rate) as server:
        run.say(f"ejabberd on {server.address} ({server.directory}; c2s shaper {rate} B/s)")
        yield {"server": server.address, "domain": server.domain, "password": server.password,
               "server_pid": server.pid}  # fmt: skip
