"""Log records published by every module (§13 ``LogEvent``)."""

from __future__ import annotations

from .event import Event


class LogEvent(Event):
    """One log record (INFO and above) of a module.

    ``time`` is UTC ``YYYY-MM-DDTHH:MM:SS.ffffff``, ``level`` one of ``INFO``, ``WARNING``, ``ERROR``,
    ``CRITICAL``; ``sender`` is the originating module (may be ``""``).
    """

    time: str
    level: str
    filename: str
    function: str
    line: int
    message: str
    sender: str = ""
