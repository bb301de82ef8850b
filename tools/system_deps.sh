#!/bin/sh
# System packages the tests use beyond Python: iproute2's `ip` (the external-device tests put
# emulated devices in a network namespace behind a veth pair). Installed with apt-get when
# missing and this runs as root on Debian; otherwise say what is missing (those tests skip).
set -eu
if command -v ip >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing iproute2 (the external-device tests need the ip command)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends iproute2; }
else
    echo "note: no ip command (Debian package iproute2): the external-device tests will skip"
fi
