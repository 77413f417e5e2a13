"""The ``pyobs`` command configures logging (the library does not, not even at import): slixmpp's
per-connection INFO records are shown only with ``--log-level debug``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = (
    "import logging, sys\n"
    "from pyobs.cli.main import main\n"
    "rc = main([sys.argv[1], '--log-level', sys.argv[2]])\n"  # a missing file: logging set up, rc 2
    "print(rc, logging.getLevelName(logging.getLogger('slixmpp.xmlstream').getEffectiveLevel()))\n"
)


@pytest.mark.parametrize(
    "level,expected", [("info", "WARNING"), ("warning", "WARNING"), ("error", "ERROR"), ("debug", "DEBUG")]
)
def test_the_cli_shows_slixmpps_info_records_only_when_debugging(tmp_path: Path, level: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "none.yaml"), level],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["2", expected], done.stderr
