"""Bounds on what one received stanza may hold, checked before anything recursive touches it.

slixmpp's parser builds each stanza as an ElementTree (iteratively, in C); everything after that —
our value decoder, the payload echoed in an error reply, slixmpp's stanza objects and its deep copy
of unhandled IQs — recurses over the tree. A stanza nested thousands of levels deep would raise
RecursionError inside the socket callback and take the connection down. :func:`stanza_problem`
walks the tree with an explicit stack (no recursion) and says what exceeds the bounds; the client
(:mod:`.client`) runs it on every stanza before handing it on. How large one stanza can get at all
is the server's limit (prosody ``c2s_stanza_size_limit``, ejabberd ``max_stanza_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element


@dataclass(frozen=True)
class StanzaLimits:
    #: element levels, the stanza itself being level 1 (a call uses 7 plus its value's nesting)
    max_depth: int = 64
    #: elements in one stanza
    max_elements: int = 200_000
    #: characters of text, tails and attribute values in one stanza
    max_chars: int = 16 * 1024 * 1024


def stanza_problem(xml: Element, limits: StanzaLimits) -> str | None:
    """None if ``xml`` is within ``limits``, else what exceeds them (without recursion)."""
    max_elements, max_chars = limits.max_elements, limits.max_chars
    count = 0
    chars = 0
    # Element.iter() walks in C, without recursion: counting is cheap for the small stanzas of calls
    for el in xml.iter():
        count += 1
        text, tail = el.text, el.tail
        if text:
            chars += len(text)
        if tail:
            chars += len(tail)
        if el.attrib:
            for value in el.attrib.values():
                chars += len(value)
        if count > max_elements:
            return f"more than {max_elements} elements"
        if chars > max_chars:
            return f"more than {max_chars} characters"
    # fewer elements than levels allowed: it cannot be nested too deeply
    return _depth_problem(xml, limits.max_depth) if count > limits.max_depth else None


def _depth_problem(xml: Element, max_depth: int) -> str | None:
    stack: list[tuple[Element, int]] = [(xml, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        el, depth = pop()
        if len(el):
            if depth >= max_depth:
                return f"nested too deeply (more than {max_depth} levels)"
            for child in el:
                push((child, depth + 1))
    return None
