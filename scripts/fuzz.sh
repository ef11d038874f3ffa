#!/bin/sh
# Runs the libFuzzer targets of a POPSTEER_FUZZ build (see `make fuzz` and docs/reliability.md).
#
# usage: scripts/fuzz.sh BUILD_DIR SECONDS [PARALLEL] [TARGET...]
#   BUILD_DIR  a clang build configured with -DPOPSTEER_FUZZ=ON and the fuzz_targets target built
#   SECONDS    how long each target runs (-max_total_time)
#   PARALLEL   how many targets run at once (default 2; each is one process, like -jobs=1)
#   TARGET     target names without the fuzz_ prefix (default: every fuzz_* binary in BUILD_DIR)
#
# Each target starts from the committed seeds (tests/fuzz/corpus/NAME) plus what earlier runs kept
# in BUILD_DIR/corpus/NAME, uses tests/fuzz/dict/NAME.dict, and writes its log and any crashing,
# leaking, slow or memory-hungry input to BUILD_DIR/findings/ (NAME.log, NAME/crash-*, ...).
# The summary table (runs, coverage, findings) goes to stdout and BUILD_DIR/findings/summary.txt.
# Exit status 1 when any target left a finding.
set -eu

BUILD=${1:?usage: scripts/fuzz.sh BUILD_DIR SECONDS [PARALLEL] [TARGET...]}
SECONDS_EACH=${2:?usage: scripts/fuzz.sh BUILD_DIR SECONDS [PARALLEL] [TARGET...]}
PARALLEL=${3:-2}
[ $# -ge 3 ] && shift 3 || shift $#
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
FINDINGS=$BUILD/findings
mkdir -p "$FINDINGS" "$BUILD/corpus"

if [ $# -gt 0 ]; then
    TARGETS="$*"
else
    TARGETS=$(find "$BUILD" -maxdepth 1 -type f -perm -u+x -name 'fuzz_*' ! -name fuzz_replay | sort |
              sed 's|.*/fuzz_||')
fi
[ -n "$TARGETS" ] || { echo "fuzz.sh: no fuzz_* targets in $BUILD (build the fuzz_targets target)" >&2; exit 2; }

# One target: seeds in, libFuzzer for SECONDS_EACH, artefacts out. Called through xargs -P.
run_one() {
    name=$1
    corpus=$BUILD/corpus/$name
    # The summary reports this run's findings: an earlier run's are kept in findings/earlier/NAME/
    # (replay them with ./fuzz_NAME FILE), not counted again.
    if [ -n "$(ls "$FINDINGS/$name" 2>/dev/null)" ]; then
        mkdir -p "$FINDINGS/earlier/$name"
        mv "$FINDINGS/$name/"* "$FINDINGS/earlier/$name/"
        echo "fuzz.sh: $name: earlier findings moved to $FINDINGS/earlier/$name/" >&2
    fi
    mkdir -p "$corpus" "$FINDINGS/$name"
    cp -n "$SRC/tests/fuzz/corpus/$name/"* "$corpus/" 2>/dev/null || true
    dict=""
    [ -f "$SRC/tests/fuzz/dict/$name.dict" ] && dict="-dict=$SRC/tests/fuzz/dict/$name.dict"
    echo "fuzz.sh: $name for ${SECONDS_EACH}s" >&2
    # One OpenMP/OpenBLAS thread with passive waiting: two fuzzers share 2 cores with other work.
    # -close_fd_mask=3: the CLI target prints like the real program; libFuzzer keeps its own
    # output (and the sanitizers' reports) on a duplicate of stderr.
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive KMP_BLOCKTIME=0 \
    ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 LSAN_OPTIONS="suppressions=$SRC/tests/fuzz/lsan.supp" \
        "$BUILD/fuzz_$name" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$FINDINGS/$name/" $dict \
        "$corpus" >"$FINDINGS/$name.log" 2>&1 || true
}

if [ "${FUZZ_SH_ONE:-}" ]; then
    run_one "$FUZZ_SH_ONE"
    exit 0
fi

for t in $TARGETS; do echo "$t"; done |
    xargs -P "$PARALLEL" -I{} env FUZZ_SH_ONE={} sh "$0" "$BUILD" "$SECONDS_EACH"

# Summary: libFuzzer's final status line (cov = covered edges, ft = features, corpus = inputs kept
# in memory / their total size), its run count, and the artefacts it left.
{
    printf '%-14s %8s %10s %7s %7s %11s %s\n' target seconds runs cov ft corpus findings
    status=0
    for t in $TARGETS; do
        log=$FINDINGS/$t.log
        last=$(grep -E '^#[0-9]+' "$log" 2>/dev/null | tail -1 || true)
        runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
        secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
        [ -n "$runs" ] || runs=$(printf '%s\n' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
        cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
        ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
        corp=$(printf '%s\n' "$last" | sed -n 's/.*corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
        found=$(ls "$FINDINGS/$t" 2>/dev/null | wc -l)
        [ "$found" -eq 0 ] || status=1
        printf '%-14s %8s %10s %7s %7s %11s %s\n' "$t" "${secs:--}" "${runs:--}" "${cov:--}" "${ft:--}" "$corp" \
            "$( [ "$found" -eq 0 ] && echo none || ls "$FINDINGS/$t" | tr '\n' ' ')"
    done
    echo "$status" >"$FINDINGS/.status"
} | tee "$FINDINGS/summary.txt"
exit "$(cat "$FINDINGS/.status")"
