#!/usr/bin/env bash
# The transport suites against the LOWEST supported slixmpp and dbus-fast (pyproject.toml's lower
# bounds), in a venv of their own (.venv-lowest, gitignored). The main run (scripts/test) uses the
# highest versions the ranges allow, so both ends of each range are tested.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PYOBS_LOWEST_VENV:-.venv-lowest}"
# keep in step with the lower bounds in pyproject.toml (a test checks that)
SLIXMPP_LOWEST="1.10.0"
DBUS_FAST_LOWEST="2.11.1"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "slixmpp==$SLIXMPP_LOWEST" "dbus-fast==$DBUS_FAST_LOWEST" \
    PyYAML numpy astropy pytest pytest-asyncio pytest-timeout hypothesis 2>&1 | grep -v -e '^WARNING' -e stringprep || true
"$VENV/bin/python" -c "
import importlib.metadata as m, sys
got = {n: m.version(n) for n in ('slixmpp', 'dbus-fast')}
want = {'slixmpp': '$SLIXMPP_LOWEST', 'dbus-fast': '$DBUS_FAST_LOWEST'}
sys.exit(0 if got == want else f'lowest versions not installed: {got} != {want}')"
echo "transport suites with slixmpp $SLIXMPP_LOWEST and dbus-fast $DBUS_FAST_LOWEST"
# the client library's lowest versions against one XMPP server (the main run covers both servers)
export PYOBS_XMPP_SERVERS="${PYOBS_XMPP_SERVERS:-prosody}"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/behaviour tests/xmpp tests/dbus "$@"
