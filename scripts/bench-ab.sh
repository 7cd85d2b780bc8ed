#!/usr/bin/env bash
# On the lent GPU machine, from the repository root: two builds of the layer benchmark (layer) or the GEMM benchmark
# (gemm) timed alternately, ROUNDS rounds each, in one call, so their difference is free of the card-to-card and
# process-to-process spread (two H100s timed the same build 8 us apart, bench/NOTES.md §61). Each build is an xz
# tarball of build/bin made on the build machine (`tar -C build -cf - bin | xz -T2 > base.tar.xz`); the arguments
# after the two are w4a8moe_moe_bench's or w4a8moe_gemm_bench's, and BASE_ARGS / NEW_ARGS add to one build's only: one
# build passed twice, with NEW_ARGS="--gemm1-config 64x8_splitk_stream", A/Bs a choice of kernel without a build.
#   [ROUNDS=3] [OUT=out] scripts/bench-ab.sh layer BASE.tar.xz NEW.tar.xz --models deepseek-v3-ep8 --tokens 1,4
#   [ROUNDS=3] [OUT=out] scripts/bench-ab.sh gemm BASE.tar.xz NEW.tar.xz --models mixtral-8x7b --tokens 4,16
# Writes $OUT/<date>-<card>-{layer,gemm}-ab.{json,md} (bench/ab_report.py, bench/gemm_ab_report.py: medians,
# differences, every round's rows) and prints the table; the runs' own files stay outside $OUT, of which at most 8
# files come back.
set -uo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,12p' "$0"; exit 2; }
[[ $# -ge 3 && -f $2 && -f $3 ]] || usage
case $1 in
  layer) bench=w4a8moe_moe_bench report=bench/ab_report.py title="Layer A/B" ;;
  gemm) bench=w4a8moe_gemm_bench report=bench/gemm_ab_report.py title="GEMM A/B" ;;
  *) usage ;;
esac
base=$2 new=$3
shift 3
OUT=${OUT:-out}
work=$(mktemp -d)
for build in base new; do
  mkdir -p "$work/$build"
  archive=$base
  [[ $build == new ]] && archive=$new
  tar -C "$work/$build" -xJf "$archive" || { echo "bench-ab: cannot unpack $archive"; exit 1; }
done
status=0
for round in $(seq 1 "${ROUNDS:-3}"); do
  for build in base new; do
    mkdir -p "$work/runs/$build-$round"
    extra=${BASE_ARGS:-}
    [[ $build == new ]] && extra=${NEW_ARGS:-}
    # shellcheck disable=SC2086  # the extra arguments split on spaces
    "$work/$build/bin/$bench" "$@" $extra --out "$work/runs/$build-$round" >"$work/runs/$build-$round.log" 2>&1 ||
      { echo "bench-ab: $build round $round failed:"; tail -3 "$work/runs/$build-$round.log"; status=1; }
  done
done
python3 "$report" "$work/runs" --title "$title" --out-dir "$OUT" || status=1
rm -rf "$work"
exit $status
