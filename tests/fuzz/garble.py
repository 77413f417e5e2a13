"""Garbled but well-formed stanza payloads, from the wire vocabulary (seeded: reproducible)."""

from __future__ import annotations

import random
from xml.sax.saxutils import escape, quoteattr

NAMES = [
    "query", "methodCall", "methodName", "params", "param", "value", "fault", "items", "item", "dict",
    "entry", "key", "val", "string", "int", "i4", "double", "boolean", "nil", "tuple", "state", "call",
    "result", "methodTimeout", "timeout", "x", "a1", "Z",
]  # fmt: skip
NAMESPACES = ["", "jabber:iq:rpc", "urn:pyobs:rpc:1", "urn:pyobs:comm:call:1", "urn:x:garbage"]
TEXTS = ["1", "-1", "1e999", "nan", "-inf", "true", "maybe", "", " ", "abc", "<&>", "\u00e9\u4e2d", "9" * 5000, "0x10"]
METHODS = ["add", "echo", "count", "stats", "no_such", "", "add add", "__init__", "_on_event"]


def tree(rng: random.Random, depth: int) -> str:
    name = rng.choice(NAMES)
    ns = rng.choice(NAMESPACES) if rng.random() < 0.3 else None
    attrs = f" xmlns={quoteattr(ns)}" if ns is not None else ""
    if rng.random() < 0.2:
        attrs += f" method={quoteattr(rng.choice(METHODS))}"
    if depth <= 0 or rng.random() < 0.3:
        return f"<{name}{attrs}>{escape(rng.choice(TEXTS))}</{name}>"
    children = "".join(tree(rng, depth - 1) for _ in range(rng.randint(0, 4)))
    return f"<{name}{attrs}>{children}</{name}>"


def call_payload(rng: random.Random) -> str:
    """The child of a garbled call IQ: either envelope, real or bogus method names, random values."""
    method = escape(rng.choice(METHODS))
    body = "".join(tree(rng, rng.randint(0, 6)) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.5:
        params = "".join(
            f'<param><value><value xmlns="urn:pyobs:rpc:1">{tree(rng, 4)}</value></value></param>'
            for _ in range(rng.randint(0, 3))
        )
        inner = rng.choice([f"<params>{params}</params>", body, f"<params>{body}</params>"])
        return f'<query xmlns="jabber:iq:rpc"><methodCall><methodName>{method}</methodName>{inner}</methodCall></query>'
    return f'<call xmlns="urn:pyobs:comm:call:1" method={quoteattr(rng.choice(METHODS))}>{body}</call>'
