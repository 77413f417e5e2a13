"""The ``pyobs`` command. Kept light: a SIGINT/SIGTERM that arrives while the (heavier) rest is
still being imported is remembered, so the module then starts and closes cleanly instead of dying."""

from __future__ import annotations

import signal
import sys

#: SIGINT/SIGTERM received before the event loop's own handlers were installed
early_signals: list[int] = []


def _remember(signum: int, frame: object) -> None:
    early_signals.append(signum)


def remember_signals() -> None:
    """Remember SIGINT/SIGTERM from now on, until ``run()`` installs the event loop's handlers."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _remember)


def entry() -> None:
    """The console script: remember signals first, then import and run the command."""
    remember_signals()
    from pyobs.cli.main import main

    sys.exit(main())
