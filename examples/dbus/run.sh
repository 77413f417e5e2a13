#!/bin/sh
# The simulated observatory on D-Bus, one process per module:
#
#     examples/dbus/run.sh
#
# starts a private session bus (dbus-run-session) unless one is given in DBUS_SESSION_BUS_ADDRESS, the
# five devices in the background and the night script in the foreground; when the night is over (its
# NIGHT SUMMARY line), the devices are stopped. Images go to $TMPDIR/pyobs-images.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ] || [ "${PYOBS_PRIVATE_BUS:-}" = "" ]; then
    exec env PYOBS_PRIVATE_BUS=1 dbus-run-session -- "$0" "$@"
fi
pids=""
trap 'kill $pids 2>/dev/null; wait' EXIT INT TERM
for module in weather telescope focuser camera autofocus; do
    pyobs "$here/$module.yaml" "$@" &
    pids="$pids $!"
done
pyobs "$here/night.yaml" "$@"
