#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, with build/bin carried from the build machine:
# every GPU test, compute-sanitizer memcheck on a small case, then the benchmark; a short summary table last.
# Logs and results go to $OUT (or out/ when OUT is unset).
#   [BENCH_ARGS="--models all --sweep"] scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
bin=build/bin
# At most 8 files come back from $OUT: keep it to the logs and results below.
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader

status=0
echo "== CPU tests"
$bin/w4a8moe_cpu_tests --gtest_brief=1 >"$OUT/cpu-tests.log" 2>&1 || status=1
tail -3 "$OUT/cpu-tests.log"

echo "== GPU tests"
$bin/w4a8moe_gpu_tests >"$OUT/gpu-tests.log" 2>&1 || status=1
grep -E "FAILED|PASSED|SKIPPED" "$OUT/gpu-tests.log" | tail -20

echo "== compute-sanitizer memcheck (small cases)"
compute-sanitizer --tool memcheck --error-exitcode 3 \
  $bin/w4a8moe_gpu_tests --gtest_brief=1 \
  --gtest_filter='GroupedGemm.CorruptDeviceOffsets*:GroupedGemm.ZeroTotalRows*:PrepackGpu.*E3_N48_K384:EveryConfig.UnevenExpertsBothOutputTypes/128x16_1x1_coop:MoeLayer.RouterWeightOnInput:MoeRouting.*' \
  >"$OUT/memcheck.log" 2>&1 || status=1
tail -3 "$OUT/memcheck.log"

echo "== MoE layer (w4a8moe run)"
for run in "qwen3-30b-a3b 16" "qwen3-30b-a3b 8192" "mixtral-8x7b 16" "deepseek-v3 16"; do
  set -- $run
  $bin/w4a8moe run --model "$1" --tokens "$2" --json "$OUT/layer.json.part" 2>&1 | tee -a "$OUT/layer.log" || status=1
  cat "$OUT/layer.json.part" >>"$OUT/layers.json" 2>/dev/null; rm -f "$OUT/layer.json.part"
done

echo "== GEMM benchmark"
$bin/w4a8moe_gemm_bench --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" || status=1

echo "== summary"
grep -cE "^\[       OK \]" "$OUT/gpu-tests.log" | xargs -I{} echo "GPU tests passed: {}"
grep -E "^\[  FAILED  \]" "$OUT/gpu-tests.log" | sort -u | head -20
grep -E "ERROR SUMMARY" "$OUT/memcheck.log" | tail -1
grep -E "^w4a8moe run|total, CUDA graph|check:" "$OUT/layer.log"
grep -E "^(model|qwen3|deepseek|mixtral)" "$OUT/bench.log"
exit $status
