"""D-Bus specific tests share the behaviour suite's modules (``support``)."""

from __future__ import annotations

import sys
from pathlib import Path

_BEHAVIOUR = str(Path(__file__).parent.parent / "behaviour")
if _BEHAVIOUR not in sys.path:
    sys.path.insert(0, _BEHAVIOUR)
