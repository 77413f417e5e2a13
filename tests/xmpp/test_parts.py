"""The XMPP transport is composed of parts that each own their state (docs/architecture.md):
no mixins, no part reads another's private attributes, every part's file says what it owns."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pyobs.comm.xmpp as xmpp_package
from pyobs.comm.transport import Transport
from pyobs.comm.xmpp import XmppTransport

PACKAGE = Path(xmpp_package.__file__).parent
PARTS = ("link", "exports", "nodes", "peers", "calls", "publish", "events", "state", "transport")
#: the adapter to slixmpp's internals (client.py) is used through the Client's public methods only
ALLOWED_PRIVATE = {"_run_out_filters"}  # slixmpp's send-queue task, ended in Link.dispose (SLIXMPP_PRIVATE)


def _foreign_private_reads(source: str) -> list[str]:
    """``x._name`` where ``x`` is not ``self``: another object's private state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr in ALLOWED_PRIVATE:
                continue
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_part_reads_another_parts_private_state() -> None:
    problems = {}
    for name in PARTS:
        reads = _foreign_private_reads((PACKAGE / f"{name}.py").read_text())
        if reads:
            problems[name] = reads
    assert not problems, problems


def test_no_mixins_and_no_cross_part_stubs() -> None:
    assert XmppTransport.__mro__[1] is Transport, XmppTransport.__mro__  # composed, not inherited
    for name in PARTS:
        text = (PACKAGE / f"{name}.py").read_text()
        assert "TYPE_CHECKING" not in text, f"{name}.py declares type-checking stubs"
        assert "Mixin" not in text, f"{name}.py has a mixin"


def test_each_part_file_says_what_it_owns() -> None:
    for name in PARTS:
        module = __import__(f"pyobs.comm.xmpp.{name}", fromlist=["_"])
        doc = inspect.getdoc(module) or ""
        assert len(doc) > 80, f"{name}.py: no module docstring saying what it owns"
    publish = inspect.getdoc(__import__("pyobs.comm.xmpp.publish", fromlist=["_"])) or ""
    assert "not yet confirmed" in publish and "outbox" in publish  # where an outgoing event lives
