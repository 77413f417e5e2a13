"""Helpers for testing pyobs modules and transports: throw-away servers on loopback.

Nothing here is used by the comm layer itself; it exists for tests, benchmarks and the examples.
``xmpp_server`` (prosody), ``ejabberd_server`` and ``dbus_daemon`` (a private bus) share
``process``: starting a child that dies with us, stopping it (SIGTERM, then SIGKILL), waiting for
its port, and what both XMPP servers offer.
"""
