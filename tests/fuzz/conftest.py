"""The fuzz suite (issue #13): attacks over XMPP and D-Bus on a module in its own process."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).parent
for extra in (_HERE, _HERE.parent / "xmpp"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
