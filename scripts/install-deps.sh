#!/bin/sh
# Install the Debian packages popsteer builds and tests with.
# Run as root it installs what is missing; otherwise it prints the exact apt-get line.
# Called by the Makefile before every build, so it must be quick when nothing is missing.
set -eu

PACKAGES="gcc make cmake pkg-config libopenblas-openmp-dev libcjson-dev libcmocka-dev gnuplot-nox libopenmpi-dev openmpi-bin"
if [ "${1:-}" = "--asan" ]; then
    PACKAGES="$PACKAGES libclang-rt-dev"
fi
if [ "${1:-}" = "--reproduce" ]; then # scripts/results_md.py writes docs/results.md
    PACKAGES="$PACKAGES python3"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "install-deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >&2
else
    echo "install-deps: missing Debian packages:$missing" >&2
    echo "install-deps: run:  sudo apt-get install -y$missing" >&2
    exit 1
fi
