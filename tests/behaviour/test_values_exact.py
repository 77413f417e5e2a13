"""Values arrive exactly as sent, on every transport (issue #13, point 10: a CR used to arrive as LF
over XMPP); what a transport cannot carry at all is refused with an error naming it, never changed."""

from __future__ import annotations

import math
from typing import Any

import pytest
from support import sink_and_caller

NASTY = [
    "a\r\nb",
    "\r",
    "\r\r\n\n",
    " leading and trailing \t ",
    "tab\there",
    "\x7f\x80\x85\x9f",  # DEL and C1 controls (XML 1.0 carries them)
    '<tag attr="x">&amp;</tag>',
    "]]>",
    "\u2028\u2029",
    "emoji \U0001f52d and \u4e2d\u6587",
    "",
]


async def test_strings_and_numbers_round_trip_exactly(backend: Any) -> None:
    async with sink_and_caller(backend) as (_sink, _caller, proxy):
        for text in NASTY:
            assert await proxy.echo_str(text) == text
        for number in (0.1, -0.0, 1e308, 5e-324, float("inf"), float("-inf")):
            back = await proxy.echo_float(number)
            assert back == number and math.copysign(1, back) == math.copysign(1, number)
        assert math.isnan(await proxy.echo_float(float("nan")))
        assert await proxy.echo_int(-(2**63)) == -(2**63)
        # what a transport cannot carry is refused by name (XML 1.0: most C0 controls; D-Bus: NUL)
        bad = {"xmpp": "\x01", "dbus": "\x00"}.get(backend.kind)
        if bad is not None:
            with pytest.raises(TypeError, match=r"cannot carry|NUL"):
                await proxy.echo_str(f"a{bad}b")
        else:
            assert await proxy.echo_str("\x00\x01") == "\x00\x01"
