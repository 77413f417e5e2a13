#!/usr/bin/env bash
# Create (once) a venv with pyobs-core 2.19.1, the peer we benchmark and test interop against.
# Its import name is also `pyobs`, so it must live in its own interpreter.
# Idempotent: does nothing if the venv already has the right version. Prints the venv's python.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PYOBS_CORE_VENV:-$HERE/.venvs/pyobs-core}"
VERSION="2.19.1"
PY="${PYTHON:-python3}"

have_version() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$VERSION" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if version("pyobs-core") == sys.argv[1] else 1)
PYEOF
}

if ! have_version; then
    echo "setting up pyobs-core==$VERSION in $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2 || true
    "$VENV/bin/python" -m pip install --quiet "pyobs-core==$VERSION" >&2
    have_version || { echo "pyobs-core==$VERSION is not importable in $VENV" >&2; exit 1; }
fi
echo "$VENV/bin/python"
