"""XMPP transport: modules talk through an XMPP server, wire-compatible with pyobs-core 2.19."""

from .base import is_valid_jid
from .comm import XmppComm
from .transport import XmppAuthError, XmppConnectionError, XmppNodeOwnershipError, XmppTransport

__all__ = [
    "XmppAuthError",
    "XmppComm",
    "XmppConnectionError",
    "XmppNodeOwnershipError",
    "XmppTransport",
    "is_valid_jid",
]
