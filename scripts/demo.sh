#!/bin/sh
# The built-in demo: generate a dataset and run the whole pipeline on it (popsteer run:
# stats, SASRec, SAE, probe, sweep against the re-ranking baselines, report).
# usage: scripts/demo.sh POPSTEER_BINARY OUT_DIR
#
# To finish in a few minutes on 2 cores the demo caps the stages that dominate the time.
# Measured on the default generated dataset (2,000 users, 80,000 rows) on a shared 2-core
# machine: one SASRec epoch takes 2-3.5 s, and validation NDCG@10 is 0.144 after 10 epochs,
# 0.211 after 25, 0.228 after 40 and 0.243 after 60 (60 epochs: 2m12s), still rising; the
# default options (at least 50 epochs, then early stopping with patience 10, up to 300) would
# train well past 60 epochs, several minutes for SASRec alone.
# 40 epochs keep most of the accuracy; the SAE gets 20 epochs (validation FVU 0.03-0.05) and
# the probe 16,384 synthetic users per group. Override with DEMO_EPOCHS, DEMO_SAE_EPOCHS,
# DEMO_PROBE_CAP; a second `make demo` reuses every artefact and only redoes the sweep.
set -eu
bin=$1
out=$2
mkdir -p "$out"
data="$out/demo.inter"
[ -f "$data" ] || "$bin" data synth --out "$data"
"$bin" run --data "$data" --out "$out/run" --epochs "${DEMO_EPOCHS:-40}" \
    --sae-epochs "${DEMO_SAE_EPOCHS:-20}" --probe-cap "${DEMO_PROBE_CAP:-16384}"
echo
echo "demo data:   $data"
echo "demo report: $out/run/report/report.md (and report.html, with the plots beside it)"
