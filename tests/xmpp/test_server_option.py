"""The ``server:`` option: host:port, a list of them (cluster nodes), and clear errors for bad values."""

from __future__ import annotations

from typing import Any

import pytest

from pyobs.comm.xmpp import XmppComm
from pyobs.utils.exceptions import ConfigError


def _addresses(server: Any) -> list[tuple[str, int]]:
    return XmppComm(jid="cam@example.org", server=server).xmpp.link.addresses


def test_one_server_a_list_and_the_default() -> None:
    assert _addresses("xmpp.example.org:5223") == [("xmpp.example.org", 5223)]
    assert _addresses("xmpp.example.org") == [("xmpp.example.org", 5222)]
    assert _addresses(["a.example.org:5222", "b.example.org:5322"]) == [
        ("a.example.org", 5222),
        ("b.example.org", 5322),
    ]
    assert _addresses("a:1, b:2") == [("a", 1), ("b", 2)]
    assert _addresses("[::1]:5222") == [("::1", 5222)]
    assert _addresses(None) == [] and _addresses("") == []  # DNS SRV of the domain (slixmpp tries every target)
    assert XmppComm(jid="cam@example.org").xmpp.address == "example.org"


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("host:port", "the port 'port' is not a number"),
        ("host:0", "the port must be 1 to 65535"),
        ("host:70000", "the port must be 1 to 65535"),
        (":5222", "expected host:port"),
        ("a b:5222", "expected host:port"),
        ([], "the list of servers is empty"),
        (["a:5222", 5222], "expected host:port, got 5222 (int)"),
        (5222, "expected host:port or a list of them, got int"),
        ({"host": "a"}, "expected host:port or a list of them, got dict"),
    ],
)
def test_bad_server_values_are_config_errors(server: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        XmppComm(jid="cam@example.org", server=server)
    assert info.value.key == "server" and problem in str(info.value)
