"""A test helper (not part of the shipped package): a module in a process of its own, started with
the command line as users do (``python -m pyobs config.yaml``). Stop it with
``pyobs.testing.process.stop_process``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).parent


def start_module_process(tmp_path: Path, name: str, config: dict[str, Any], where: Path) -> subprocess.Popen[bytes]:
    """``python -m pyobs <tmp_path>/<name>.yaml`` for ``config``, with ``where`` (the folder of the
    module's class) and tests/ first on its PYTHONPATH; its stderr goes to ``<tmp_path>/<name>.log``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    pythonpath = os.pathsep.join([str(where), str(TESTS), os.environ.get("PYTHONPATH", "")])
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "pyobs", str(path), "--log-level", "WARNING"],
            env=dict(os.environ, PYTHONPATH=pythonpath),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
