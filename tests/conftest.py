"""Fixtures shared by all tests. The behaviour suite runs once per transport backend.

Each backend lives in ``tests/backends/<kind>.py`` and provides a fixture ``<kind>_backend``
(see ``tests/backends/base.py``). Set ``PYOBS_TEST_BACKENDS=local,xmpp`` to choose.
"""

from __future__ import annotations

import os

import pytest
from backends.local import local_backend, local_outage_backend  # noqa: F401  (fixture)

try:
    from backends.xmpp import prosody, xmpp_backend, xmpp_outage_backend  # noqa: F401  (fixtures)
except ImportError:  # the transport is not written yet
    pass
try:
    from backends.dbus import dbus_backend, dbus_bus, dbus_outage_backend  # noqa: F401  (fixtures)
except ImportError:
    pass

ALL_BACKENDS = ["local", "xmpp", "dbus"]


def _selected() -> list[str]:
    wanted = os.environ.get("PYOBS_TEST_BACKENDS")
    kinds = [k.strip() for k in wanted.split(",")] if wanted else ALL_BACKENDS
    return [k for k in kinds if f"{k}_backend" in globals()]


@pytest.fixture(params=_selected())
def backend(request: pytest.FixtureRequest) -> object:
    """Each test using this runs once per available transport."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture(params=_selected())
def outage_backend(request: pytest.FixtureRequest) -> object:
    """A backend on a network of its own whose links the test can cut (see backends.base.OutageBackend)."""
    return request.getfixturevalue(f"{request.param}_outage_backend")
