#!/usr/bin/env python3
"""Memory per pending call on the callee side (issue #13): a module in its own process serves N slow
calls at once over XMPP (prosody on loopback); its resident memory with them pending, minus before.

    PYTHONPATH=. python3 bench/pending_calls.py [N]      # default 5000; prints kB per pending call
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "fuzz"), str(ROOT / "tests" / "xmpp"), str(ROOT / "tests")]

from fuzz_support import rss_mb, start_target, stop_target  # noqa: E402
from xmpp_helpers import RawClient, rpc_call, rpc_param  # noqa: E402

from pyobs.comm.xmpp import rpc  # noqa: E402
from pyobs.testing.xmpp_server import TestServer  # noqa: E402


async def main(n: int) -> None:
    async with TestServer(["worker", "raw"]) as server:
        with tempfile.TemporaryDirectory() as tmp:
            config = {"class": "pyobs.comm.xmpp.XmppComm", "jid": server.jid("worker", "pyobs"),
                      "password": server.password, "server": server.address}  # fmt: skip
            proc = start_target(config, Path(tmp), "worker", max_calls=n + 10)
            raw = await RawClient(server, "raw", "pyobs").login()
            jid = server.jid("worker", "pyobs")
            try:

                async def serving() -> int:
                    reply = await raw.request(rpc_call(jid, "stats", ""), timeout=30)
                    return int(rpc.parse_reply(reply).value["serving"])

                loop = asyncio.get_running_loop()
                end = loop.time() + 30
                while True:  # until the module is online and answers
                    try:
                        await serving()
                        break
                    except (AssertionError, TimeoutError, KeyError, TypeError, rpc.RpcFormatError):
                        if loop.time() > end:
                            raise
                        await asyncio.sleep(0.2)
                warm = [raw.request(rpc_call(jid, "sleep", rpc_param("<double>0.1</double>")), 30) for _ in range(500)]
                await asyncio.gather(*warm)
                before = rss_mb(proc)
                calls = [
                    asyncio.ensure_future(raw.request(rpc_call(jid, "sleep", rpc_param("<double>20</double>")), 60))
                    for _ in range(n)
                ]
                end = loop.time() + 60
                while await serving() < n:
                    if loop.time() > end:
                        raise TimeoutError("the calls did not all arrive")
                    await asyncio.sleep(0.2)
                during = rss_mb(proc)
                print(f"{n} pending calls: RSS {before:.1f} MB -> {during:.1f} MB, "
                      f"{(during - before) * 1024 / n:.2f} kB per pending call")  # fmt: skip
                for c in calls:
                    c.cancel()
            finally:
                await raw.close()
                stop_target(proc)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
