#!/bin/sh
# System packages the tests use beyond Python, installed with apt-get when missing and this runs
# as root on Debian; otherwise say what is missing (the tests that need it skip, saying why):
#   iproute2's `ip`   the external-device tests put devices in a network namespace (veth pair)
#   cmake, g++        the C++ SDK's CMake project, its ctest suite and the C++ example device
set -eu
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
{ command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1; } || missing="$missing g++"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing$missing (external-device and C++ SDK tests)"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends $missing; }
else
    echo "note: missing Debian packages:$missing; the tests that need them will skip"
fi
