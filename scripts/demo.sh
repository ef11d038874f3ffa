#!/bin/sh
# The built-in demo: generate a dataset and run the pipeline on it.
# usage: scripts/demo.sh POPSTEER_BINARY OUT_DIR
set -eu
bin=$1
out=$2
mkdir -p "$out"
data="$out/demo.inter"
[ -f "$data" ] || "$bin" data synth --out "$data"
"$bin" data stats --data "$data"
echo
echo "demo data: $data"
