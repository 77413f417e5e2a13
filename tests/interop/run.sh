#!/usr/bin/env bash
# Interop tests with the real pyobs-core 2.19.1 as the peer (see docs/interop.md): creates its venv
# if needed (PyPI only), then runs tests/interop with PYOBS_INTEROP=1, so that a missing venv,
# prosody or XMPP transport fails instead of skipping. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYOBS_CORE_PYTHON="$(bash tests/interop/setup_pyobs_core.sh | tail -n 1)"
export PYOBS_CORE_PYTHON PYOBS_INTEROP=1
exec python3 -m pytest tests/interop -q -p no:cacheprovider "$@"
