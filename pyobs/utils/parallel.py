"""Waiting with a deadline (pyobs-core's ``pyobs.utils.parallel`` helpers)."""

from __future__ import annotations

import asyncio


async def event_wait(evt: asyncio.Event, timeout: float = 1.0) -> bool:
    """Wait at most ``timeout`` s for ``evt``; whether it is set."""
    try:
        await asyncio.wait_for(evt.wait(), timeout)
    except TimeoutError:
        pass
    return evt.is_set()


async def acquire_lock(lock: asyncio.Lock, timeout: float = 1.0) -> bool:
    """Try at most ``timeout`` s to acquire ``lock``; whether it was acquired (then release it yourself)."""
    try:
        await asyncio.wait_for(lock.acquire(), timeout)
    except TimeoutError:
        return False
    return True


__all__ = ["acquire_lock", "event_wait"]
