#!/bin/sh
# Downloads the public datasets popsteer was validated on, for users with internet access.
# They are licensed for research use and are NOT part of this repository.
# usage: scripts/fetch-datasets.sh [DIR]   (default: ./datasets)
set -eu
dir=${1:-datasets}
mkdir -p "$dir"
cd "$dir"
fetch() { # url file
    if command -v curl >/dev/null 2>&1; then curl -fL -o "$2" "$1"; else wget -O "$2" "$1"; fi
}
echo "MovieLens 100K and 1M (GroupLens; see their README for the terms of use)"
fetch https://files.grouplens.org/datasets/movielens/ml-100k.zip ml-100k.zip
fetch https://files.grouplens.org/datasets/movielens/ml-1m.zip ml-1m.zip
echo "HetRec 2011 Last.fm 2K (non-commercial use)"
fetch https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip hetrec2011-lastfm-2k.zip
for z in *.zip; do unzip -oq "$z"; done
echo
echo "Done. Try:"
echo "  popsteer data stats --data $dir/ml-100k/u.data --kcore 5"
echo "  popsteer data stats --data $dir/ml-1m/ratings.dat --kcore 5"
