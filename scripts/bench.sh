#!/bin/sh
# `make bench`: generate the ML-1M-sized dataset once, run the benchmark suite on it (1 and 2
# threads), and on Last.fm when ../shared is present. Results: bench/results.json + a table.
set -eu
build=$1
mkdir -p "$build/bench-data"
data="$build/bench-data/ml1m-synth.inter"
[ -f "$data" ] || "$build/popsteer" data synth --preset ml1m --out "$data"
echo "== ML-1M-sized generated data ($data)"
"$build/bench_main" "$data" --json bench/results.json
lastfm=../shared/data/lastfm/popsteer/lastfm.inter
if [ -r "$lastfm" ]; then
    echo
    echo "== Last.fm ($lastfm)"
    "$build/bench_main" "$lastfm" --json bench/results-lastfm.json
fi
