#!/usr/bin/env bash
# On the lent GPU machine, from the repository root: two builds of the layer benchmark timed alternately, ROUNDS
# rounds each, in one call, so their difference is free of the card-to-card and process-to-process spread (two H100s
# timed the same build 8 us apart, bench/NOTES.md §61). Each build is an xz tarball of build/bin made on the build
# machine (`tar -C build -cf - bin | xz -T2 > base.tar.xz`); the arguments after the two are w4a8moe_moe_bench's.
#   [ROUNDS=3] [OUT=out] scripts/layer-ab.sh BASE.tar.xz NEW.tar.xz --models deepseek-v3-ep8 --tokens 1,4
# Writes $OUT/<date>-<card>-layer-ab.{json,md} (bench/ab_report.py: medians, differences, every round's rows) and
# prints the table; the runs' own files stay outside $OUT, of which at most 8 files come back.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 && -f $1 && -f $2 ]] || { sed -n '2,8p' "$0"; exit 2; }
base=$1 new=$2
shift 2
OUT=${OUT:-out}
work=$(mktemp -d)
for build in base new; do
  mkdir -p "$work/$build"
  archive=$base
  [[ $build == new ]] && archive=$new
  tar -C "$work/$build" -xJf "$archive" || { echo "layer-ab: cannot unpack $archive"; exit 1; }
done
status=0
for round in $(seq 1 "${ROUNDS:-3}"); do
  for build in base new; do
    mkdir -p "$work/runs/$build-$round"
    "$work/$build/bin/w4a8moe_moe_bench" "$@" --out "$work/runs/$build-$round" >"$work/runs/$build-$round.log" 2>&1 ||
      { echo "layer-ab: $build round $round failed:"; tail -3 "$work/runs/$build-$round.log"; status=1; }
  done
done
python3 bench/ab_report.py "$work/runs" --title "Layer A/B" --out-dir "$OUT" || status=1
rm -rf "$work"
exit $status
