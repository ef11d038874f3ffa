#!/bin/sh
# make reproduce: the PopSteer study on the four datasets of ../shared/data, then docs/results.md.
# usage: scripts/reproduce.sh POPSTEER_BINARY [OUT_DIR [RESULTS_MD]]
#
# Runs `popsteer run` (statistics, SASRec, SAE, probe, sweep against every baseline, report) on
#   lastfm   PopSteer's Last.fm with the authors' trained SASRec (../shared/models)
#   ml-100k  MovieLens 100K, 5-core, SASRec trained here; ILAD on the u.item genre flags too
#   beauty   Amazon Beauty (S3-Rec 5-core), SASRec trained here
#   yelp     Yelp (S3-Rec 5-core), SASRec trained here
# each into OUT_DIR/NAME (default reproduce-out/), reusing every artefact a previous run made from
# the same inputs (`popsteer run` decides), and writes RESULTS_MD (default docs/results.md) with
# the Pareto plots beside it (docs/results/), and concepts.md beside it (scripts/concepts.py:
# concept steering on ML-100K). A dataset whose files are absent is skipped, saying
# so. The licensed data stays in ../shared: nothing from it is copied.
# Time on 2 cores, from nothing: about 1.5 hours, most of it training SASRec on Beauty and Yelp;
# with every model reused, the sweeps alone take minutes. POPSTEER_SHARED overrides ../shared.
set -eu
bin=$1
out=${2:-reproduce-out}
md=${3:-docs/results.md}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${POPSTEER_SHARED:-$here/../shared}
if [ ! -d "$shared/data" ]; then
    echo "reproduce: $shared/data not found: the study needs the shared datasets (set POPSTEER_SHARED)" >&2
    exit 1
fi
# absolute paths: `popsteer run` records them with each artefact, so a rerun from elsewhere reuses them
shared=$(cd "$shared" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
# the commit the numbers are measured with (a later commit may change the tree while this runs)
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$here" status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+changes"
done_list=""

# run_one NAME FILE [popsteer run options...]: skips (saying so) when FILE is absent
run_one() {
    name=$1
    file=$2
    shift 2
    if [ ! -f "$file" ]; then
        echo "reproduce: skipping $name: $file not found" >&2
        return 0
    fi
    echo "reproduce: $name ($(date +%H:%M:%S))" >&2
    start=$(date +%s)
    "$bin" run --data "$file" --out "$out/$name" "$@"
    echo "reproduce: $name done in $(( $(date +%s) - start )) s" >&2
    done_list="$done_list $name"
}

run_one lastfm "$shared/data/lastfm/popsteer/lastfm.inter" --model "$shared/models/sasrec-lastfm.safetensors"
features=""
[ -f "$shared/data/ml-100k/u.item" ] && features="--item-features $shared/data/ml-100k/u.item"
# shellcheck disable=SC2086 # $features is one option and its value, or nothing
run_one ml-100k "$shared/data/ml-100k/u.data" --kcore 5 $features
run_one beauty "$shared/data/amazon-beauty-s3rec/Beauty.txt"
run_one yelp "$shared/data/yelp-s3rec/Yelp.txt"

if [ -z "$done_list" ]; then
    echo "reproduce: no dataset was found under $shared/data" >&2
    exit 1
fi
# shellcheck disable=SC2086
python3 "$here/scripts/results_md.py" --out "$md" --runs "$out" --commit "$commit" $done_list
echo "reproduce: wrote $md" >&2
# concept steering (issue 14 §3) with the ML-100K models: docs/concepts.md beside the results
case " $done_list " in
*" ml-100k "*) python3 "$here/scripts/concepts.py" "$bin" "$out/ml-100k" "$shared/data/ml-100k" \
                   "$(dirname "$md")/concepts.md" ;;
esac
