"""XEP-0060 pieces for events (wire spec §9) and state (§7), as prebuilt strings and raw parsing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from .values import encode_fields, escape_attr

NS = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_DELAY = "urn:xmpp:delay"
EVENT_PAYLOAD_NS = "pyobs:event"

Q_EVENT = f"{{{NS_EVENT}}}event"
Q_ITEMS_EVENT = f"{{{NS_EVENT}}}items"
Q_DELAY = f"{{{NS_DELAY}}}delay"
Q_PUBSUB = f"{{{NS}}}pubsub"
Q_ITEMS = f"{{{NS}}}items"
Q_EVENT_PAYLOAD = f"{{{EVENT_PAYLOAD_NS}}}event"

#: JSON strings must not contain & < > literally (reference receivers unescape twice, spec §9.1)
_JSON_ESCAPE = str.maketrans({"&": "\\u0026", "<": "\\u003c", ">": "\\u003e"})


def event_node(module: str, event: str, version: int = 1) -> str:
    return f"pyobs:event:{module}:{event}:{version}"


def state_node(module: str, interface: str, version: int = 1) -> str:
    return f"pyobs:state:{module}:{interface}:{version}"


def parse_node(node: str) -> tuple[str, str, str, int] | None:
    """``pyobs:<kind>:<module>:<Name>:<v>`` → (kind, module, name, version); None if not ours."""
    parts = node.split(":")
    if len(parts) != 5 or parts[0] != "pyobs" or parts[1] not in ("event", "state"):
        return None
    if not parts[2] or not parts[3] or not parts[4].isdigit():
        return None
    return parts[1], parts[2], parts[3], int(parts[4])


def event_json(payload: dict[str, Any]) -> str:
    """The event's JSON, pure ASCII and free of ``& < >``, so it needs no further XML escaping."""
    return json.dumps(payload, allow_nan=True).translate(_JSON_ESCAPE)


def iq_head(service: str, iq_type: str = "set") -> str:
    """``<iq type=… to=service id="`` (the id and the payload follow)."""
    return f'<iq type="{iq_type}" to="{escape_attr(service)}" id="'


def publish_event_body(node: str, json_text: str) -> str:
    return (
        f'"><pubsub xmlns="{NS}"><publish node="{escape_attr(node)}"><item>'
        f'<event xmlns="{EVENT_PAYLOAD_NS}">{json_text}</event></item></publish></pubsub></iq>'
    )


def direct_event_head(node: str) -> str:
    """What follows the recipient of a direct event message, up to the JSON."""
    return (
        f'" type="headline"><event xmlns="{NS_EVENT}"><items node="{escape_attr(node)}"><item>'
        f'<event xmlns="{EVENT_PAYLOAD_NS}">'
    )


DIRECT_EVENT_TAIL = "</event></item></items></event></message>"
#: several events in one direct message: ``<items>`` of each (see :func:`direct_event_items`)
DIRECT_BATCH_HEAD = f'" type="headline"><event xmlns="{NS_EVENT}">'
DIRECT_BATCH_TAIL = "</event></message>"


def direct_event_items(node: str, text: str) -> str:
    """One event of a direct message that carries several (receivers read every ``<items>``)."""
    return (
        f'<items node="{escape_attr(node)}"><item><event xmlns="{EVENT_PAYLOAD_NS}">{text}</event></item></items>'
    )


def publish_state_body(node: str, interface: str, version: int, state: Any) -> str:
    return (
        f'"><pubsub xmlns="{NS}"><publish node="{escape_attr(node)}"><item>'
        f'<state xmlns="urn:pyobs:state:{escape_attr(interface)}:{version}">{encode_fields(state)}</state>'
        f"</item></publish></pubsub></iq>"
    )


def create_body(node: str, transient: bool) -> str:
    """Create a node; ``transient`` nodes keep no items (events) and only their owner publishes."""
    if not transient:
        return f'"><pubsub xmlns="{NS}"><create node="{escape_attr(node)}"/></pubsub></iq>'
    return (
        f'"><pubsub xmlns="{NS}"><create node="{escape_attr(node)}"/><configure>'
        '<x xmlns="jabber:x:data" type="submit">'
        f'<field var="FORM_TYPE" type="hidden"><value>{NS}#node_config</value></field>'
        '<field var="pubsub#persist_items"><value>0</value></field>'
        '<field var="pubsub#publish_model"><value>publishers</value></field>'
        '<field var="pubsub#access_model"><value>open</value></field>'
        "</x></configure></pubsub></iq>"
    )


def subscribe_body(node: str, jid: str) -> str:
    return f'"><pubsub xmlns="{NS}"><subscribe node="{escape_attr(node)}" jid="{escape_attr(jid)}"/></pubsub></iq>'


def subscribe_other_body(node: str, jids: list[str]) -> str:
    """As the node's owner: subscribe others (XEP-0060 §8.8.2)."""
    subs = "".join(f'<subscription jid="{escape_attr(j)}" subscription="subscribed"/>' for j in jids)
    node_attr = escape_attr(node)
    return f'"><pubsub xmlns="{NS_OWNER}"><subscriptions node="{node_attr}">{subs}</subscriptions></pubsub></iq>'


def unsubscribe_body(node: str, jid: str) -> str:
    return f'"><pubsub xmlns="{NS}"><unsubscribe node="{escape_attr(node)}" jid="{escape_attr(jid)}"/></pubsub></iq>'


def affiliations_body(node: str) -> str:
    """As owner: who is affiliated with the node (XEP-0060 §8.9.1)."""
    return f'"><pubsub xmlns="{NS_OWNER}"><affiliations node="{escape_attr(node)}"/></pubsub></iq>'


def set_affiliations_body(node: str, affiliations: dict[str, str]) -> str:
    """As owner: change affiliations (XEP-0060 §8.9.2)."""
    items = "".join(
        f'<affiliation jid="{escape_attr(j)}" affiliation="{escape_attr(a)}"/>' for j, a in affiliations.items()
    )
    return f'"><pubsub xmlns="{NS_OWNER}"><affiliations node="{escape_attr(node)}">{items}</affiliations></pubsub></iq>'


def parse_affiliations(iq: Element) -> dict[str, str]:
    """bare JID → affiliation of an affiliations result."""
    return {
        el.get("jid", "").partition("/")[0]: el.get("affiliation", "")
        for el in iq.iter(f"{{{NS_OWNER}}}affiliation")
    }


def metadata_owners(iq: Element) -> list[str]:
    """The owners (or else the creator) a node's disco#info meta-data names (XEP-0060 §5.4)."""
    found: dict[str, list[str]] = {}
    for field in iq.iter("{jabber:x:data}field"):
        var = field.get("var", "")
        if var in ("pubsub#owner", "pubsub#creator"):
            found.setdefault(var, []).extend(v.text.strip() for v in field.iter("{jabber:x:data}value") if v.text)
    return found.get("pubsub#owner") or found.get("pubsub#creator") or []


def items_body(node: str, max_items: int = 1) -> str:
    return f'"><pubsub xmlns="{NS}"><items node="{escape_attr(node)}" max_items="{max_items}"/></pubsub></iq>'


@dataclass
class Notification:
    kind: str  # "event" or "state"
    module: str
    name: str  # event type or interface name
    version: int
    payload: Element
    #: the JID the server names as the item's publisher, where it reports one (prosody:
    #: ``expose_publisher = true``; ejabberd: node option ``itemreply: publisher``)
    publisher: str | None = None


def notifications(message: Element) -> Iterator[Notification]:
    """The pyobs items of a pubsub ``<message>`` (replays with a delay stamp and retracts skipped)."""
    if message.find(Q_DELAY) is not None:
        return
    ev = message.find(Q_EVENT)
    if ev is None:
        return
    for items in ev:
        if items.tag != Q_ITEMS_EVENT:
            continue
        parsed = parse_node(items.get("node", ""))
        if parsed is None:
            continue
        for item in items:
            for payload in item:
                yield Notification(parsed[0], parsed[1], parsed[2], parsed[3], payload, item.get("publisher"))
                break


def newest_item_and_publisher(iq: Element) -> tuple[Element, str | None] | None:
    """(payload, publisher JID where the server reports it) of the newest item of an items result."""
    pubsub = iq.find(Q_PUBSUB)
    items = pubsub.find(Q_ITEMS) if pubsub is not None else None
    if items is None:
        return None
    for item in items:
        for payload in item:
            return payload, item.get("publisher")
    return None
