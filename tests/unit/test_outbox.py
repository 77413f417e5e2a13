"""The core's outbox and link policy against a small in-memory transport: order, retries, bound, close, state
(no server needed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from backends.base import eventually

from pyobs.comm import Comm
from pyobs.comm.outbox import Outbox
from pyobs.comm.transport import Announcement, Extend, NotConnected, Transport, TransportHandler
from pyobs.events import Event, NewImageEvent
from pyobs.interfaces import IMotion
from pyobs.interfaces.interface import MethodSpec
from pyobs.interfaces.types import MotionState
from pyobs.utils.enums import MotionStatus


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


async def test_the_connection_reported_back_ends_a_retry_pause_at_once(monkeypatch: Any) -> None:
    import pyobs.comm.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "RETRY_MIN", 30.0)  # a long pause after the first refusal
    link = FakeLink()
    box = _ready(Outbox("m", link.publish))
    link.up = False
    await box.send(NewImageEvent("/a"))
    await asyncio.sleep(0.05)  # the flusher tried once and pauses now
    assert box.waiting == 1
    box.set_connected(False)
    link.up = True
    loop = asyncio.get_running_loop()
    start = loop.time()
    box.set_connected(True)
    await eventually(lambda: link.published == ["/a"], timeout=2.0, what="the event, without waiting 30 s")
    assert loop.time() - start < 1.0
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


class LinkTransport(Transport):
    """A transport with nothing but a link that can go down: publishing raises NotConnected then."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.link = FakeLink()
        self.states: list[Any] = []
        self.handler: TransportHandler | None = None

    async def open(self, handler: TransportHandler) -> None:
        self.handler = handler

    async def announce(self, info: Announcement) -> None:
        return None

    async def close(self) -> None:
        return None

    async def call(self, peer: str, method: MethodSpec, args: list[Any], extend: Extend) -> Any:
        raise NotConnected("no peers")

    async def publish_event(self, event: Event) -> None:
        await self.link.publish(event)

    async def publish_state(self, interface: str, state: Any) -> None:
        if not self.link.up:
            raise NotConnected("link down")
        self.states.append(state)

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        raise NotConnected("link down")


async def test_comm_keeps_events_and_state_while_the_link_is_down() -> None:
    """The core's policy on a transport whose link drops: send_event and set_state do not raise."""
    transport = LinkTransport("dev")
    comm = Comm(transport)
    await comm.register_event(NewImageEvent)
    await comm.open()
    try:
        assert transport.handler is comm
        transport.link.up = False
        comm.connection_changed(False, "test")
        await comm.send_event(NewImageEvent("/kept"))
        await comm.set_state(IMotion, MotionState(status=MotionStatus.SLEWING))  # raised before
        assert comm.get_own_state(IMotion).status is MotionStatus.SLEWING
        transport.link.up = True
        comm.connection_changed(True)
        await eventually(lambda: transport.link.published == ["/kept"], what="the kept event")
        await comm.set_state(IMotion, MotionState(status=MotionStatus.IDLE))
        assert [s.status for s in transport.states] == [MotionStatus.IDLE]
    finally:
        await comm.close()
