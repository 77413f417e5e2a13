"""The core's outbox against a small in-memory transport: order, retries, bound, close (no server needed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from backends.base import eventually

from pyobs.comm.outbox import Outbox
from pyobs.comm.transport import NotConnected
from pyobs.events import Event, NewImageEvent


class FakeLink:
    """publish_event of a transport whose link can be up or down (down: NotConnected)."""

    def __init__(self) -> None:
        self.up = True
        self.published: list[str] = []
        self.refuse: set[str] = set()

    async def publish(self, event: Event) -> None:
        if not self.up:
            raise NotConnected("link down")
        name = getattr(event, "filename", "")
        if name in self.refuse:
            raise ValueError(f"cannot encode {name}")
        self.published.append(name)


def _ready(box: Outbox) -> Outbox:
    box.set_connected(True)
    box.set_announced(True)
    return box


async def test_events_before_the_announcement_wait_and_go_out_in_order() -> None:
    link = FakeLink()
    box = Outbox("m", link.publish)
    box.set_connected(True)
    for i in range(3):
        await box.send(NewImageEvent(f"/{i}"))
    assert link.published == [] and box.waiting == 3
    box.set_announced(True)
    await box.send(NewImageEvent("/3"))  # sent after the announcement: still behind the others
    await eventually(lambda: box.waiting == 0, what="flush")
    assert link.published == ["/0", "/1", "/2", "/3"]
    assert box.sent["NewImageEvent"] == 4
    await box.close()


async def test_not_connected_without_a_report_is_retried_until_it_works() -> None:
    """A transport that refuses without ever reporting the connection lost must not strand events."""
    link = FakeLink()
    box = _ready(Outbox("m", link.publish))
    link.up = False
    await box.send(NewImageEvent("/a"))  # raises nothing: kept
    await box.send(NewImageEvent("/b"))
    assert box.waiting == 2
    link.up = True  # ... and nobody tells the outbox
    await eventually(lambda: link.published == ["/a", "/b"], what="retry after backoff")
    await box.close()


async def test_connection_lost_and_back_flushes_in_order() -> None:
    link = FakeLink()
    box = _ready(Outbox("m", link.publish))
    await box.send(NewImageEvent("/0"))
    box.set_connected(False)
    link.up = False
    for i in range(1, 4):
        await box.send(NewImageEvent(f"/{i}"))
    link.up = True
    box.set_connected(True)
    await eventually(lambda: box.waiting == 0, what="flush")
    assert link.published == ["/0", "/1", "/2", "/3"]
    await box.close()


async def test_full_queue_drops_the_oldest_with_one_warning(caplog: Any) -> None:
    box = Outbox("m", FakeLink().publish, capacity=3)
    box.set_connected(True)
    for i in range(10):
        await box.send(NewImageEvent(f"/{i}"))
    assert box.dropped == 7 and [e.filename for e in box._queue] == ["/7", "/8", "/9"]  # type: ignore[attr-defined]
    assert caplog.text.count("event queue is full (3)") == 1  # rate-limited


async def test_an_event_the_transport_cannot_encode_is_logged_and_skipped(caplog: Any) -> None:
    link = FakeLink()
    link.refuse = {"/bad"}
    box = Outbox("m", link.publish)
    box.set_connected(True)
    for name in ("/a", "/bad", "/b"):
        await box.send(NewImageEvent(name))
    box.set_announced(True)
    await eventually(lambda: box.waiting == 0, what="flush")
    assert link.published == ["/a", "/b"] and box.refused == 1
    assert "refused a queued NewImageEvent, dropped: cannot encode /bad" in caplog.text
    # on the direct path, the sender gets the error itself
    with pytest.raises(ValueError, match="cannot encode"):
        await box.send(NewImageEvent("/bad"))


async def test_close_delivers_what_waits_when_it_can_and_reports_it_when_not(caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    link = FakeLink()
    box = _ready(Outbox("m", link.publish))
    box.set_connected(False)
    await box.send(NewImageEvent("/late"))

    async def reconnect() -> None:
        await asyncio.sleep(0.2)
        box.set_connected(True)

    task = asyncio.ensure_future(reconnect())
    assert await box.close() == 0  # it waited for the connection to come back
    await task
    assert link.published == ["/late"] and "not sent before closing" not in caplog.text

    gone = _ready(Outbox("g", FakeLink().publish))
    gone.set_connected(False)
    await gone.send(NewImageEvent("/lost"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await gone.close(grace=0.3) == 1
    assert loop.time() - start < 1.3  # its grace, not CLOSE_GRACE
    assert "g: 1 queued events not sent before closing (not connected)" in caplog.text
    with pytest.raises(RuntimeError, match="closed"):
        await gone.send(NewImageEvent("/after"))
