"""Fixtures of the XMPP transport tests (see xmpp_helpers); without prosody they are skipped
(unless PYOBS_REQUIRE_XMPP is set, as in CI), except the codec tests that need no server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from xmpp_helpers import probe, raw  # noqa: F401  (fixtures)

from pyobs.testing.xmpp_server import PROSODY

_HERE = Path(__file__).parent
_NO_SERVER_NEEDED = {
    "test_values.py",
    "test_values_property.py",
    "test_slixmpp_adapter.py",
    "test_server_option.py",
    "test_docs_config.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which(PROSODY) is not None or os.environ.get("PYOBS_REQUIRE_XMPP"):
        return
    skip = pytest.mark.skip(reason=f"'{PROSODY}' is not installed (Debian package 'prosody')")
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == _HERE and path.name not in _NO_SERVER_NEEDED:
            item.add_marker(skip)
