#!/bin/sh
# `make bench`: generate the ML-1M-sized dataset once, run the benchmark suite on it and on
# Last.fm (when ../shared is present), each with 1 and 2 threads, print the tables and the
# issue's targets (met / missed), and write everything to bench/results.json.
#
# The machine may be shared: the load average is printed with every row. Numbers taken under
# load understate the code (see docs/performance.md); rerun when `uptime` shows a load < 1.
# Environment: BENCH_ONLY=train,eval,... runs a subset of the stages (load train eval rerank sae
# probe); OMP_WAIT_POLICY etc. pass through to the stages.
set -eu
build=$1
out=bench/results.json
mkdir -p "$build/bench-data" bench
data="$build/bench-data/ml1m-synth.inter"
[ -f "$data" ] || "$build/popsteer" data synth --preset ml1m --out "$data"
only=${BENCH_ONLY:+--only $BENCH_ONLY}
# Threads that wait sleep instead of spinning (docs/performance.md, "Threads"):
# on a shared 2-core machine a spinning thread takes the core the other one needs.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== ML-1M-sized generated data ($data); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')); $(uptime)"
# shellcheck disable=SC2086
"$build/bench_main" "$data" --label ml1m --json "$tmp/ml1m.json" --targets 1 $only
parts="$tmp/ml1m.json"

lastfm=../shared/data/lastfm/popsteer/lastfm.inter
if [ -r "$lastfm" ]; then
    echo
    echo "== Last.fm ($lastfm); $(uptime)"
    # shellcheck disable=SC2086
    "$build/bench_main" "$lastfm" --label lastfm --json "$tmp/lastfm.json" --targets 2 $only
    parts="$parts $tmp/lastfm.json"
fi

{
    printf '{\n"date": "%s",\n"cpu": "%s",\n"cpus": %s,\n"datasets": [\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" "$(nproc)"
    sep=""
    for p in $parts; do
        printf '%s' "$sep"
        cat "$p"
        sep=","
    done
    printf ']\n}\n'
} > "$out"
echo
echo "results: $out"
