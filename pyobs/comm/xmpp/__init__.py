"""XMPP transport: modules talk through an XMPP server, wire-compatible with pyobs-core 2.19."""

from .comm import XmppComm
from .link import XmppAuthError, XmppConnectionError, is_valid_jid
from .nodes import XmppNodeOwnershipError
from .transport import XmppTransport

__all__ = [
    "XmppAuthError",
    "XmppComm",
    "XmppConnectionError",
    "XmppNodeOwnershipError",
    "XmppTransport",
    "is_valid_jid",
]
