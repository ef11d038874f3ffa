#!/bin/sh
# make loadtest: wrk against `popsteer serve` on 127.0.0.1 (a free port), for a bounded time, at
# alpha = 0 (the SAE-reconstructed recommender) and alpha = 2 (steered, every latent), k = 10,
# cycling over every user of the dataset. Prints requests/s and p50/p99 latency per run and fails
# on any non-2xx answer or socket error. Everything runs on this machine: the figures include
# wrk's own CPU use.
#
# Defaults: Last.fm from ../shared with the authors' SASRec, and the SAE and latents table of
# `make reproduce` (reproduce-out/lastfm/). Override with LOADTEST_DATA, LOADTEST_MODEL,
# LOADTEST_SAE, LOADTEST_LATENTS; LOADTEST_SECONDS (10), LOADTEST_CONNECTIONS (16),
# LOADTEST_WRK_THREADS (1), LOADTEST_SERVER_THREADS (number of cores).
set -eu
BIN=${1:-build/popsteer}
DATA=${LOADTEST_DATA:-../shared/data/lastfm/popsteer/lastfm.inter}
MODEL=${LOADTEST_MODEL:-../shared/models/sasrec-lastfm.safetensors}
SAE=${LOADTEST_SAE:-reproduce-out/lastfm/sae.safetensors}
LATENTS=${LOADTEST_LATENTS:-reproduce-out/lastfm/latents.csv}
SECONDS_=${LOADTEST_SECONDS:-10}
CONNS=${LOADTEST_CONNECTIONS:-16}
WRK_THREADS=${LOADTEST_WRK_THREADS:-1}
SERVER_THREADS=${LOADTEST_SERVER_THREADS:-$(nproc)}
LUA=$(dirname "$0")/loadtest.lua

for f in "$BIN" "$DATA" "$MODEL" "$SAE" "$LATENTS"; do
    if [ ! -e "$f" ]; then
        echo "loadtest: $f is missing (the SAE and latents come from 'make reproduce', or set LOADTEST_SAE" \
             "and LOADTEST_LATENTS to the output of 'popsteer sae train' and 'popsteer probe')" >&2
        exit 1
    fi
done
command -v wrk >/dev/null || { echo "loadtest: wrk is not installed (scripts/install-deps.sh)" >&2; exit 1; }

TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$BIN" serve --quiet --data "$DATA" --model "$MODEL" --sae "$SAE" --latents "$LATENTS" --host 127.0.0.1 --port 0 \
    --port-file "$TMP/port" --threads "$SERVER_THREADS" &
PID=$!
i=0
while [ ! -s "$TMP/port" ]; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "loadtest: the server did not start" >&2
        exit 1
    fi
    sleep 0.1
done
URL="http://127.0.0.1:$(cat "$TMP/port")"
: > "$TMP/users"
off=0
while :; do # every user, 1,000 per page
    curl -sf "$URL/v1/users?limit=1000&offset=$off" | grep -o '"user":"[^"]*"' | sed 's/"user":"//; s/"$//' \
        > "$TMP/page" || true
    [ -s "$TMP/page" ] || break
    cat "$TMP/page" >> "$TMP/users"
    off=$((off + 1000))
done
echo "loadtest: $(wc -l < "$TMP/users") users, $SECONDS_ s per run, $CONNS connections, $WRK_THREADS wrk thread(s)," \
     "$SERVER_THREADS server threads; CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# jiffies: busy and total over all CPUs, and the server's own (utime + stime)
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
server_cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
status=0
for alpha in 0 2; do
    set -- $(busy) $(server_cpu)
    b0=$1 t0=$2 s0=$3
    LOADTEST_USERS="$TMP/users" LOADTEST_K=10 LOADTEST_ALPHA=$alpha \
        wrk -t"$WRK_THREADS" -c"$CONNS" -d"${SECONDS_}s" --timeout 5s --latency -s "$LUA" "$URL" > "$TMP/wrk" 2>&1 || status=1
    set -- $(busy) $(server_cpu)
    cpu=$(awk -v b="$(($1 - b0))" -v t="$(($2 - t0))" -v s="$(($3 - s0))" -v n="$(nproc)" \
        'BEGIN { if (t > 0) printf "CPU busy %.0f%% of %d cores, the server %.0f%%, wrk and everything else %.0f%%", 100 * b / t, n, 100 * s / t, 100 * (b - s) / t }')
    rps=$(sed -n 's/^Requests\/sec: *//p' "$TMP/wrk")
    p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk")
    bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$TMP/wrk")
    sock=$(sed -n 's/^ *Socket errors: *//p' "$TMP/wrk")
    echo "alpha=$alpha k=10: ${rps:-?} requests/s, p50 ${p50:-?}, p99 ${p99:-?}${bad:+, non-2xx $bad}${sock:+, socket errors: $sock} ($cpu)"
    if [ -z "$rps" ] || [ -n "$bad" ] || [ -n "$sock" ]; then
        cat "$TMP/wrk" >&2
        status=1
    fi
done
exit $status
