"""XMPP transport: modules talk through an XMPP server, wire-compatible with pyobs-core 2.19."""

from .comm import XmppComm
from .errors import XmppAuthError, XmppConnectionError, XmppNodeOwnershipError
from .link import is_valid_jid
from .transport import XmppTransport

__all__ = [
    "XmppAuthError",
    "XmppComm",
    "XmppConnectionError",
    "XmppNodeOwnershipError",
    "XmppTransport",
    "is_valid_jid",
]
