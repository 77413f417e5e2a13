#!/usr/bin/env bash
# Make sure a venv with pyobs-core 2.19.1 exists (the interop peer; its import name is also `pyobs`,
# so it lives in its own interpreter) and print its python. Idempotent, needs only PyPI.
# Reuses bench/setup_pyobs_core.sh (bench/.venvs/pyobs-core) when the repository has it, otherwise
# installs into tests/interop/.venv-pyobs-core (gitignored). PYOBS_CORE_VENV overrides the location.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VERSION="2.19.1"

if [ -z "${PYOBS_CORE_VENV:-}" ] && [ -x "$ROOT/bench/setup_pyobs_core.sh" ]; then
    exec "$ROOT/bench/setup_pyobs_core.sh"
fi

VENV="${PYOBS_CORE_VENV:-$HERE/.venv-pyobs-core}"
PY="${PYTHON:-python3}"

have_version() {
    [ -x "$VENV/bin/python" ] || return 1
    (cd / && "$VENV/bin/python" -P -c \
        "import sys; from importlib.metadata import version; sys.exit(version('pyobs-core') != sys.argv[1])" \
        "$VERSION") >/dev/null 2>&1
}

if ! have_version; then
    echo "setting up pyobs-core==$VERSION in $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pyobs-core==$VERSION" >&2
    have_version || { echo "pyobs-core==$VERSION is not importable in $VENV" >&2; exit 1; }
fi
echo "$VENV/bin/python"
