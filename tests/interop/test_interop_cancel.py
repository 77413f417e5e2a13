"""Cancel and progress next to pyobs-core: its modules never see either, and calls behave as before.

A pyobs-core callee cannot be cancelled: our caller's await ends at once (CancelledError, or
RemoteTimeoutError at the deadline) as it always did, nothing is sent, and the method runs to its
end there. A pyobs-core caller of ours gets no progress notices; our method's reports go nowhere.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import Core, Ours
from support import IKitchenSink

from pyobs.comm.calls import CancelOutcome
from pyobs.utils.exceptions import RemoteTimeoutError

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cancelling_a_call_to_pyobs_core_ends_our_await_at_once(ours: Ours, core: Core) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)
    call = sink.sleep(2.0)
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0.3)  # the call is under way at pyobs-core (no condition to observe there)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError, match="cannot be cancelled"):
        await task
    assert time.monotonic() - start < 0.2  # nothing to wait for: nothing was sent
    assert call.cancel_outcome is CancelOutcome.UNSUPPORTED
    # pyobs-core finishes the method (its late answer is dropped) and keeps answering
    assert await sink.echo_int(7) == 7
    assert await sink.sleep(0.1) == 0.1


async def test_our_deadline_on_pyobs_core_says_the_call_goes_on(ours: Ours, core: Core) -> None:
    sink = await ours.probe.proxy("coresink", IKitchenSink)  # probe's deadline: 3 s
    call = sink.sleep(4.0)
    start = time.monotonic()
    with pytest.raises(RemoteTimeoutError, match=r"cannot be cancelled.*goes on"):
        await call
    assert 2.5 < time.monotonic() - start < 3.5
    assert call.cancel_outcome is CancelOutcome.UNSUPPORTED


async def test_pyobs_core_caller_gets_no_progress_and_its_result(ours: Ours, core: Core) -> None:
    ours.sink.progress_told.clear()
    logged = len(core.sink.log)
    assert await core.sink.call("oursink", "IKitchenSink", "sleep_announced", 0.5) == 0.5
    assert ours.sink.progress_told == [False, False]  # nobody to tell: nothing sent
    assert not [line for line in core.sink.log[logged:] if "Traceback" in line or "ERROR" in line]


async def test_our_caller_gets_progress_from_our_callee_on_the_shared_server(ours: Ours, core: Core) -> None:
    ours.sink.progress_told.clear()
    sink = await ours.probe.proxy("oursink", IKitchenSink)
    notices = []
    assert await sink.sleep_announced(0.3).on_progress(notices.append) == 0.3
    assert ours.sink.progress_told == [True, True]
    assert [(p.fraction, p.message) for p in notices][-1] == (1.0, "slept")
