#!/bin/sh
# The simulated observatory on XMPP, one process per module:
#
#     examples/xmpp/run.sh
#
# starts a throw-away prosody on 127.0.0.1:52222 (domain pyobs.test, an account per module, password
# "pyobs"; needs the Debian package 'prosody'), the five devices in the background and the night script
# in the foreground; when the night is over (its NIGHT SUMMARY line), everything is stopped. Images go
# to $TMPDIR/pyobs-images. To use your own XMPP server instead, edit comm: in the YAML files and set PYOBS_XMPP_SERVER=0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
pids=""
trap 'kill $pids 2>/dev/null; wait; rm -f "${serverlog:-}"' EXIT INT TERM
if [ "${PYOBS_XMPP_SERVER:-1}" != "0" ]; then
    serverlog=$(mktemp)
    python -m pyobs.testing.xmpp_server --port 52222 --users weather,telescope,focuser,camera,autofocus,night \
        >"$serverlog" 2>&1 &
    pids="$!"
    # wait (at most 15 s) until the server says where it listens
    tries=0
    until grep -q '^server=' "$serverlog"; do
        tries=$((tries + 1))
        if [ $tries -gt 150 ] || ! kill -0 "$pids" 2>/dev/null; then
            echo "run.sh: the XMPP test server did not start:" >&2
            cat "$serverlog" >&2
            exit 1
        fi
        sleep 0.1
    done
fi
for module in weather telescope focuser camera autofocus; do
    pyobs "$here/$module.yaml" "$@" &
    pids="$pids $!"
done
pyobs "$here/night.yaml" "$@"
