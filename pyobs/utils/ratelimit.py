"""Log lines that an outside peer can trigger per message, rate-limited and summarised.

A warning per bad event, per dropped event or per refused stanza lets a peer that floods us fill
the disk; :class:`RateLimitedLog` writes the first line of a kind at once and after that at most one
line per interval, saying how many lines of that kind it left out since the last one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

#: kinds of lines remembered at most (kinds are chosen by our code, never by a peer; this bounds it anyway)
_MAX_KINDS = 1024


class RateLimitedLog:
    """At most one line per ``kind`` every ``interval`` seconds, with a count of the left-out ones."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}
        #: lines left out in total (all kinds), for tests and statistics
        self.suppressed = 0

    def log(self, level: int, kind: str, msg: str, *args: Any, **kwargs: Any) -> bool:
        """Log ``msg % args`` unless a line of ``kind`` went out less than ``interval`` s ago; True if logged."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            self.suppressed += 1
            return False
        skipped = self._skipped.pop(kind, 0)
        if len(self._last) >= _MAX_KINDS and kind not in self._last:
            self._last.clear()
        self._last[kind] = now
        if skipped:
            msg = f"{msg} (%d more like this in the last %.0f s not logged)"
            args = (*args, skipped, now - (last or now))
        self.logger.log(level, msg, *args, **kwargs)
        return True

    def info(self, kind: str, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.INFO, kind, msg, *args, **kwargs)

    def warning(self, kind: str, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.WARNING, kind, msg, *args, **kwargs)

    def error(self, kind: str, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.ERROR, kind, msg, *args, **kwargs)
