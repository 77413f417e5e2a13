"""Fixtures of the XMPP transport tests (see xmpp_helpers)."""

from xmpp_helpers import raw  # noqa: F401  (fixture)
