"""The errors of the XMPP transport (their wire names stay ``pyobs.comm.xmpp.transport.*``, as in
pyobs-core 2.19's exception descriptions) and the size check every sender applies."""

from __future__ import annotations

from pyobs.utils.exceptions import RemoteError

from ..transport import NotConnected


class XmppConnectionError(NotConnected):
    """Not connected to the XMPP server (or the connection was lost during the operation)."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)


class XmppAuthError(XmppConnectionError, PermissionError):
    """The server refused our credentials, or its certificate is not trusted: retrying won't help."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)


class IqError(RemoteError):
    """An IQ was answered with an error."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)

    def __init__(self, condition: str, text: str = "", what: str = "") -> None:
        detail = f"{what}: " if what else ""
        super().__init__(f"{detail}{condition}{f' ({text})' if text else ''}")
        self.condition = condition
        self.text = text


class XmppNodeOwnershipError(RemoteError, PermissionError):
    """One of our pubsub nodes exists and belongs to another account (squatted, or a stale node of
    an account that was renamed); names the owner. Not retried: an administrator must act."""

    __module__ = "pyobs.comm.xmpp.transport"  # its name on the wire (errors travel by qualified name)

    def __init__(self, node: str, owners: list[str], me: str) -> None:
        who = ", ".join(owners) if owners else "another account (the server does not say which)"
        super().__init__(
            f"{me}: the pubsub node {node} belongs to {who}, not to {me}; another account created it "
            f"first. Delete the node on the server and restrict node creation (see docs/xmpp.md, "
            f"'Node ownership')"
        )
        self.node = node
        self.owners = owners


def too_large(data: str, limit: int) -> int:
    """The size in bytes of ``data`` if it exceeds ``limit`` (0: no limit), else 0."""
    if not limit or len(data) <= limit // 4:  # UTF-8 has at most 4 bytes per character
        return 0
    size = len(data.encode())
    return size if size > limit else 0
