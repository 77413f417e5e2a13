"""What the one private slixmpp override of the XMPP transport (``Client._spawn_event``,
pyobs/comm/xmpp/client.py) saves per received stanza, against slixmpp's public way of receiving
them (``register_handler`` with a matcher: slixmpp builds a stanza object, runs its filters and
matches it against every handler).

    PYTHONPATH=. python3 bench/slixmpp_dispatch.py [N] [ROUNDS]

In one process, no server: N pre-parsed stanzas of each kind the transport receives (a call, an
answer, an event, a presence) go through each path; the paths alternate ROUNDS times (the machine
is shared). Prints the median µs per stanza.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element, fromstring

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.xmlstream import XMLStream

from pyobs.comm.xmpp.client import Client

STANZAS = {
    "call": '<iq xmlns="jabber:client" type="set" id="c1" from="a@d/pyobs" to="b@d/pyobs">'
    '<call xmlns="urn:pyobs:comm:call:1" method="move_radec"><double>1.0</double><double>2.0</double></call></iq>',
    "answer": '<iq xmlns="jabber:client" type="result" id="c1" from="b@d/pyobs" to="a@d/pyobs">'
    '<result xmlns="urn:pyobs:comm:call:1"><nil/></result></iq>',
    "event": '<message xmlns="jabber:client" from="a@d/pyobs" to="b@d/pyobs">'
    '<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="pyobs:event:a:NewImageEvent:1">'
    '<item id="u1"><json xmlns="urn:xmpp:json:0">{"filename": "x.fits"}</json></item></items></event></message>',
    "presence": '<presence xmlns="jabber:client" from="a@d/pyobs" to="b@d/pyobs">'
    '<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="urn:pyobs" ver="abc="/></presence>',
}


def _taken(_xml: Element) -> bool:
    return True


def public_client() -> Client:
    """Our client, receiving through slixmpp's public handler API instead of the override."""
    client = Client("b@d/pyobs", "x", on_iq=_taken, on_message=_taken, on_presence=_taken)
    client.session_up = True
    for tag in ("iq", "message", "presence"):
        client.register_handler(Callback(f"pyobs {tag}", MatchXPath(f"{{jabber:client}}{tag}"), _use_xml))
    return client


def _use_xml(stanza: Any) -> None:
    _ = stanza.xml  # what the transport would take


def per_stanza(dispatch: Callable[[Element], None], text: str, n: int) -> float:
    elements = [fromstring(text) for _ in range(n)]
    begin = time.perf_counter()
    for element in elements:
        dispatch(element)
    return (time.perf_counter() - begin) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    ours = Client("b@d/pyobs", "x", on_iq=_taken, on_message=_taken, on_presence=_taken)
    ours.session_up = True
    public = public_client()

    def via_handlers(element: Element) -> None:
        XMLStream._spawn_event(public, element)

    paths: dict[str, Callable[[Element], None]] = {"override": ours._spawn_event, "handlers": via_handlers}
    for kind, text in STANZAS.items():
        times: dict[str, list[float]] = {name: [] for name in paths}
        for index in range(rounds):
            for name in list(paths) if index % 2 == 0 else list(paths)[::-1]:
                times[name].append(per_stanza(paths[name], text, n))
        medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
        print(
            f"{kind:9s} override {medians['override']:6.1f} µs, public handlers {medians['handlers']:6.1f} µs "
            f"per stanza ({medians['handlers'] / medians['override']:.1f}x)"
        )


if __name__ == "__main__":
    main()
