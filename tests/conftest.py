"""Fixtures shared by all tests. The behaviour suite runs once per transport backend.

Each backend lives in ``tests/backends/<kind>.py`` and provides a fixture ``<kind>_backend``
(see ``tests/backends/base.py``). Set ``PYOBS_TEST_BACKENDS=local,xmpp`` to choose.
"""

from __future__ import annotations

import os

import pytest
from backends.local import local_backend, local_outage_backend  # noqa: F401  (fixture)

try:
    from backends.xmpp import (  # noqa: F401  (fixtures)
        ejabberd,
        prosody,
        server_kinds,
        xmpp_backend,
        xmpp_ejabberd_backend,
        xmpp_ejabberd_outage_backend,
        xmpp_kind,
        xmpp_prosody_backend,
        xmpp_prosody_outage_backend,
        xmpp_server,
    )
except ImportError:  # the transport is not written yet
    pass
try:
    from backends.dbus import dbus_backend, dbus_bus, dbus_outage_backend  # noqa: F401  (fixtures)
except ImportError:
    pass

ALL_BACKENDS = ["local", "xmpp", "dbus"]


def _selected() -> list[str]:
    """Backend ids: the transports of ``PYOBS_TEST_BACKENDS``; XMPP once per server kind of
    ``PYOBS_XMPP_SERVERS`` (``xmpp-prosody``, ``xmpp-ejabberd``)."""
    wanted = os.environ.get("PYOBS_TEST_BACKENDS")
    kinds = [k.strip() for k in wanted.split(",")] if wanted else ALL_BACKENDS
    selected = []
    for kind in kinds:
        if kind == "xmpp" and "xmpp_backend" in globals():
            selected += [f"xmpp-{server}" for server in server_kinds()]
        elif f"{kind}_backend" in globals():
            selected.append(kind)
    return selected


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # every test on an XMPP server runs once per server kind
    if "xmpp_server" in metafunc.fixturenames:
        metafunc.parametrize("xmpp_server", server_kinds(), indirect=True, scope="session")
    elif "xmpp_kind" in metafunc.fixturenames:
        metafunc.parametrize("xmpp_kind", server_kinds(), indirect=True)


@pytest.fixture(params=_selected())
def backend(request: pytest.FixtureRequest) -> object:
    """Each test using this runs once per available transport (and XMPP server kind)."""
    return request.getfixturevalue(f"{request.param.replace('-', '_')}_backend")


@pytest.fixture(params=_selected())
def outage_backend(request: pytest.FixtureRequest) -> object:
    """A backend on a network of its own whose links the test can cut (see backends.base.OutageBackend)."""
    return request.getfixturevalue(f"{request.param.replace('-', '_')}_outage_backend")
