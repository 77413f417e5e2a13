#!/usr/bin/env bash
# Install what the tests talk to: Debian's prosody, ejabberd and dbus (real servers the fixtures
# start privately on loopback) and chromium + chromium-driver (the dashboard's browser test).
# As root: installs what is missing with apt-get. Otherwise: says loudly what is missing and how
# to install it (tests of those parts are then skipped, and tests/run prints which).
set -euo pipefail
PACKAGES=(prosody ejabberd dbus chromium chromium-driver)
COMMANDS=(prosody ejabberdctl dbus-daemon chromium chromedriver)

missing=()
for i in "${!PACKAGES[@]}"; do
    command -v "${COMMANDS[$i]}" >/dev/null 2>&1 || missing+=("${PACKAGES[$i]}")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # the packages' own services are not needed: tests start private instances on free loopback ports
    for svc in prosody ejabberd; do (service "$svc" stop || true) >/dev/null 2>&1; done
else
    echo "WARNING: missing Debian packages: ${missing[*]}" >&2
    echo "WARNING: install them with: sudo apt-get install ${missing[*]}" >&2
fi
