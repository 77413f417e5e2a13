"""Login time of a fleet of our XMPP clients with slixmpp's SCRAM key derivation (a Python loop)
and with ours (hashlib, scoped to our Client; pyobs/comm/xmpp/client.py), alternating.

    PYTHONPATH=. python3 bench/scram_login.py [N] [ROUNDS]

N clients (default 50) of one process log in to a throw-away prosody at once; a round measures
from the first connect() until every session has started, once with each derivation (the order
alternates between rounds: the machine is shared and noisy). Prints the median per variant, and
the cost of one derivation with the server's iteration count.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import time
from xml.etree.ElementTree import Element

from slixmpp.util.sasl.mechanisms import SCRAM

from pyobs.comm.xmpp.client import Client
from pyobs.testing.xmpp_server import TestServer

LOGIN_DEADLINE = 60.0  # s for a whole round


class SlowScramClient(Client):
    fast_scram = False


def _not_taken(_xml: Element) -> bool:
    return False


async def login_round(server: TestServer, users: list[str], client_class: type[Client]) -> float:
    loop = asyncio.get_running_loop()
    clients = [
        client_class(
            server.jid(user, "bench"), server.password,
            on_iq=_not_taken, on_message=_not_taken, on_presence=_not_taken, use_tls=False,
        )
        for user in users
    ]  # fmt: skip
    started: list[asyncio.Future[None]] = []
    for client in clients:
        future: asyncio.Future[None] = loop.create_future()
        started.append(future)
        client.add_event_handler(
            "session_start", lambda _e, f=future: f.done() or f.set_result(None)
        )
    begin = time.perf_counter()
    for client in clients:
        client.connect(server.host, server.port)
    try:
        await asyncio.wait_for(asyncio.gather(*started), LOGIN_DEADLINE)
        return time.perf_counter() - begin
    finally:
        for client in clients:
            client.abort()
            await client.stop_send_task()


def iteration_count(server: TestServer, user: str) -> int:
    """The server's SCRAM iteration count, from what a client's challenge carried."""
    seen: list[int] = []
    original = SCRAM.process_2

    def spy(self: SCRAM, challenge: bytes) -> bytes:
        seen.append(int(dict(item.split(b"=", 1) for item in challenge.split(b","))[b"i"]))
        return original(self, challenge)

    SCRAM.process_2 = spy  # type: ignore[method-assign]  # only in this benchmark process
    try:
        asyncio.run(login_round(server, [user], SlowScramClient))
    finally:
        SCRAM.process_2 = original  # type: ignore[method-assign]
    return seen[0]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    users = [f"bench{i}" for i in range(n)]
    with TestServer(users) as server:
        iterations = iteration_count(server, users[0])
        mech = SCRAM("SCRAM-SHA-1", {"password": b"pyobs"}, {"encrypted": True, "unencrypted_scram": True})
        salt = base64.b64decode(b"c2FsdHNhbHQ=")
        begin = time.perf_counter()
        mech.Hi(b"pyobs", salt, iterations)
        slow_hi = time.perf_counter() - begin
        print(f"server SCRAM iterations: {iterations}; one slixmpp Hi(): {slow_hi * 1e3:.1f} ms")
        times: dict[str, list[float]] = {"slixmpp Hi": [], "hashlib Hi (ours)": []}
        variants = [("slixmpp Hi", SlowScramClient), ("hashlib Hi (ours)", Client)]
        for index in range(rounds):
            order = variants if index % 2 == 0 else variants[::-1]
            for name, client_class in order:
                times[name].append(asyncio.run(login_round(server, users, client_class)))
        for name, values in times.items():
            print(
                f"{n} clients log in at once, {name}: median {statistics.median(values) * 1e3:.0f} ms "
                f"(runs: {', '.join(f'{v * 1e3:.0f}' for v in values)})"
            )


if __name__ == "__main__":
    main()
