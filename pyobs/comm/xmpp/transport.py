"""XmppTransport: the Transport contract on an XMPP server, speaking pyobs-core 2.19's wire format.

Who is online comes from roster presence, what a peer offers from its disco#info, calls are
``jabber:iq:rpc`` IQs, events and state live on ``pubsub.<domain>`` nodes (see
``docs/xmpp.md`` and the wire spec). Everything on the hot path (calls, answers, events,
notifications) is written as prebuilt strings and read from raw ElementTree elements.

Connection handling: the comm reconnects by itself (first retry at once, then every
:data:`RECONNECT_MAX_DELAY` s at most), announces itself again, re-subscribes, writes again the
publishes the server had not confirmed, and reports the connection back, upon which the core's
outbox (:mod:`pyobs.comm.outbox`) sends the events that waited. Calls made while disconnected fail
at once with a connection error.

The class is put together from one mixin per concern: :mod:`.connection` (connect, reconnect,
keepalive, writing), :mod:`.calls` (RPC in and out), :mod:`.presence` (announcing, discovery,
peers), :mod:`.events` (publishing and receiving events) and :mod:`.state` (module state), on
:mod:`.base` (constructor, shared attributes, errors, constants). The public names stay importable
from here.
"""

from __future__ import annotations

from .base import (
    CAPS_NS,
    DISCOVERY_WAIT,
    OFFLINE_DEBOUNCE,
    PING_INTERVAL,
    PING_TIMEOUT,
    PUBSUB_DELAY,
    Q_DIRECT_SUBSCRIBE,
    Q_PING,
    RECENTLY_GONE,
    RECONNECT_MAX_DELAY,
    RESTORE_GRACE,
    IqError,
    XmppAuthError,
    XmppConnectionError,
    XmppNodeOwnershipError,
    split_jid,
)
from .calls import CallsMixin
from .connection import ConnectionMixin
from .events import EventsMixin
from .presence import PresenceMixin
from .state import StateMixin

__all__ = [
    "CAPS_NS",
    "DISCOVERY_WAIT",
    "OFFLINE_DEBOUNCE",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "PUBSUB_DELAY",
    "Q_DIRECT_SUBSCRIBE",
    "Q_PING",
    "RECENTLY_GONE",
    "RECONNECT_MAX_DELAY",
    "RESTORE_GRACE",
    "IqError",
    "XmppAuthError",
    "XmppConnectionError",
    "XmppNodeOwnershipError",
    "XmppTransport",
    "split_jid",
]


class XmppTransport(ConnectionMixin, CallsMixin, PresenceMixin, EventsMixin, StateMixin):
    """See :class:`pyobs.comm.xmpp.XmppComm` for the options."""
