#!/bin/sh
# A small end-to-end PopSteer pipeline, for running the whole program under a checker:
# data synth -> train --epochs 1 -> sae train --epochs 1 --scale 4 -> probe --cap 300 ->
# eval --sae --latents --alpha 1. `make check-asan` runs it on the sanitized build; prefixing a
# wrapper runs it under valgrind (docs/reliability.md):
#
# usage: scripts/pipeline-check.sh POPSTEER_BINARY WORK_DIR [WRAPPER...]
#   e.g. scripts/pipeline-check.sh build-vg/popsteer /tmp/vg valgrind --error-exitcode=99 --leak-check=full
#
# Every step must exit 0 (a sanitizer or valgrind error makes it fail); the work directory is
# created (and emptied first), and left behind for inspection.
set -eu

BIN=${1:?usage: scripts/pipeline-check.sh POPSTEER_BINARY WORK_DIR [WRAPPER...]}
DIR=${2:?usage: scripts/pipeline-check.sh POPSTEER_BINARY WORK_DIR [WRAPPER...]}
shift 2
rm -rf "$DIR"
mkdir -p "$DIR"

run() {
    name=$1
    shift
    echo "pipeline-check: popsteer $name" >&2
    "$@" >"$DIR/step.out" 2>"$DIR/step.err" || {
        status=$?
        echo "pipeline-check: FAILED (status $status): $*" >&2
        tail -n 40 "$DIR/step.err" >&2
        exit 1
    }
}

# "$@" is the wrapper (possibly empty), then the program and its arguments.
run "data synth" "$@" "$BIN" data synth --quiet --users 300 --items 150 --interactions 9000 --out "$DIR/data.inter"
run "train" "$@" "$BIN" train --quiet --threads 2 --epochs 1 --data "$DIR/data.inter" --out "$DIR/model.safetensors"
run "sae train" "$@" "$BIN" sae train --quiet --threads 2 --epochs 1 --scale 4 --data "$DIR/data.inter" \
    --model "$DIR/model.safetensors" --out "$DIR/sae.safetensors"
run "probe" "$@" "$BIN" probe --quiet --threads 2 --cap 300 --data "$DIR/data.inter" --model "$DIR/model.safetensors" \
    --sae "$DIR/sae.safetensors" --out "$DIR/latents.csv"
run "eval" "$@" "$BIN" eval --json --quiet --threads 2 --data "$DIR/data.inter" --model "$DIR/model.safetensors" \
    --sae "$DIR/sae.safetensors" --latents "$DIR/latents.csv" --alpha 1
grep -q '"ndcg@10"' "$DIR/step.out" || { echo "pipeline-check: eval printed no metrics" >&2; exit 1; }
echo "pipeline-check: all steps passed" >&2
