#!/bin/sh
# Install the Debian packages popsteer builds and tests with.
# Run as root it installs what is missing; otherwise it prints the exact apt-get line.
# The BLAS libraries are run-time dependencies (opened with dlopen, each optional: see
# docs/performance.md, "GEMM backends"); they are installed so that the fastest can be chosen.
# Called by the Makefile before every build, so it must be quick when nothing is missing.
set -eu

PACKAGES="gcc make cmake pkg-config libopenblas0-openmp libblis4-openmp libcjson-dev libcmocka-dev gnuplot-nox"
# serve: the server, `make loadtest`, the page test
PACKAGES="$PACKAGES libmicrohttpd-dev wrk chromium"
# the Python package (python/, docs/python.md): its tests, and `pip install ./python` in a venv
PACKAGES="$PACKAGES python3 python3-numpy python3-pytest python3-pip python3-setuptools python3-venv"
# MPI data parallelism (docs/distributed.md): built when Open MPI is found
PACKAGES="$PACKAGES libopenmpi-dev openmpi-bin"
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
