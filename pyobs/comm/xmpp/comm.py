"""XmppComm: a Comm whose transport is an XMPP server (the production choice)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..comm import Comm
from .link import PING_INTERVAL, PING_TIMEOUT, XmppOptions, log
from .peers import PEER_CHECK_INTERVAL
from .transport import XmppTransport


class XmppComm(Comm):
    """Comm over an XMPP server, wire-compatible with pyobs-core 2.19 modules. The options in
    detail: docs/xmpp.md, "Configuration".

    Args:
        jid: ``name@domain[/resource]``; the module name is the local part.
        user: the account name (the module name) if no ``jid`` is given.
        domain: the XMPP domain if no ``jid`` is given.
        resource: the fleet's resource; every module of a fleet must use the same (``pyobs``).
        password: the account's password.
        server: ``host:port``, or a list of them (the nodes of a cluster, tried in turn when connecting
            and reconnecting); default: the domain's DNS SRV records (all targets, by priority) or port 5222.
        use_tls: use STARTTLS when the server offers it, verifying the certificate.
        ignore_cert_errors: accept any server certificate (no hostname or CA check; pyobs-core's
            option, for self-signed test servers; ``ca_file`` is the safe way to trust one).
        ping_interval: seconds between keepalive pings to the server.
        ping_timeout: seconds a ping may take before the connection counts as lost (reconnect).
        require_tls: refuse to log in over an unencrypted connection.
        direct_tls: connect with TLS right away (XEP-0368, e.g. port 5223) instead of STARTTLS.
        ca_file: a CA (or self-signed) certificate file to trust for the server's certificate.
        allow_plain: allow SASL PLAIN over an unencrypted connection (the password in clear).
        timeout: default deadline of a call in seconds (``@timeout`` methods extend it); also the
            deadline of discovery, subscription and publish requests.
        connect_timeout: how long ``open()`` keeps trying to reach and log into the server.
        event_queue_size: events kept while the server is unreachable (the oldest are dropped).
        version: the pyobs version announced in IModule capabilities (empty: not compared).
        peer_check_interval: every so many seconds ask a few peers (PEER_CHECK_PER_ROUND, in turn)
            whether they are still there: servers do not always say when a peer is gone; 0: off.
        max_stanza_size: the server's stanza size limit in bytes (0: none known); larger calls,
            answers, events and state are refused here with a clear error, not by the server.
        trusted: the accounts (``name@domain``, or ``name`` in our domain) whose calls, events and
            presence are accepted; default (None): our roster, the server's shared group of the fleet.
        **limits: the bounds of :class:`~pyobs.comm.Comm` (``max_call_timeout``, ``max_calls``, …).

    YAML::

        comm:
          class: pyobs.comm.xmpp.XmppComm
          jid: camera@example.org
          password: secret
          server: "127.0.0.1:5222"
    """

    def __init__(
        self,
        jid: str | None = None,
        user: str | None = None,
        domain: str | None = None,
        resource: str = "pyobs",
        password: str = "",
        server: str | list[str] | None = None,
        use_tls: bool = True,
        ignore_cert_errors: bool = False,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        require_tls: bool = False,
        direct_tls: bool = False,
        ca_file: str | None = None,
        allow_plain: bool = False,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        event_queue_size: int = 10000,
        version: str = "",
        peer_check_interval: float = PEER_CHECK_INTERVAL,
        max_stanza_size: int = 0,
        trusted: list[str] | None = None,
        **limits: Any,
    ) -> None:
        if jid is None:
            if not user or not domain:
                raise ValueError("XmppComm needs either 'jid' or both 'user' and 'domain'")
            jid = f"{user}@{domain}/{resource}"
        elif "/" not in jid:
            jid = f"{jid}/{resource}"
        given = locals()  # each field of XmppOptions is a keyword of this constructor, by the same name
        options = XmppOptions(**{f.name: given[f.name] for f in dataclasses.fields(XmppOptions)})
        if ignore_cert_errors:
            log.warning("%s: ignore_cert_errors is set: the server's certificate is not checked", jid)
        super().__init__(XmppTransport(options), timeout=timeout, event_queue_size=event_queue_size, **limits)

    @property
    def xmpp(self) -> XmppTransport:
        transport = self.transport
        assert isinstance(transport, XmppTransport)
        return transport
