#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, with build/bin carried from the build machine: every
# GPU test, the PDL rules in the kernels' SASS, compute-sanitizer memcheck on small cases, the layer program on model
# presets and on a checkpoint made and quantised here, then the layer benchmark, the launch floor and the GEMM
# benchmark; a short summary last.
# Logs and results go to $OUT (or out/); at most 8 files come back from there, and these are the 8: tests.log,
# bench.log (layer and GEMM benchmarks), layers.json, the two benchmarks' JSON, and with the peers peers.log and
# their JSON and table.
#   [BENCH_ARGS="--models all --sweep"] [MOE_BENCH_ARGS="--models all"] [SKIP_TESTS=1] [SKIP_BENCH=1]
#   [VLLM_OPS_DIR=dir [WHEEL=w4a8moe-*.whl] [PEERS_ARGS=...]] scripts/gpu-check.sh
# VLLM_OPS_DIR (vLLM 0.24.0's _C.so.xz and _moe_C.so.xz) adds the Python side: it installs the package, runs its
# pytest suite, then the peers benchmark (bench/peers_bench.py): our layer and GEMMs beside vLLM's MoE kernels. The
# package is the wheel WHEEL names (`pip wheel --no-build-isolation --no-deps .` on the build machine, for this
# machine's Python and torch), else built here from the source tree (pip and CMake; CUTLASS_DIR must name CUTLASS,
# as nothing is downloaded here). Without build/bin carried, the C++ steps skip themselves.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
bin=build/bin
tests_log="$OUT/tests.log" layer_log="$OUT/bench.log"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader

status=0
[[ -x $bin/w4a8moe_gpu_tests ]] || { echo "no $bin: C++ tests and benchmarks skipped"; SKIP_TESTS=1 SKIP_BENCH=1; }
if [[ -z "${SKIP_TESTS:-}" ]]; then
  echo "== CPU tests" | tee "$tests_log"
  $bin/w4a8moe_cpu_tests --gtest_brief=1 >>"$tests_log" 2>&1 || status=1
  $bin/w4a8moe_checkpoint_tests --gtest_brief=1 >>"$tests_log" 2>&1 || status=1
  echo "== GPU tests" | tee -a "$tests_log"
  $bin/w4a8moe_gpu_tests >>"$tests_log" 2>&1 || status=1
  memcheck_filter='GroupedGemm.CorruptDeviceOffsets*:GroupedGemm.ZeroTotalRows*:*PrepackGpu.*E3_N48_K384'
  memcheck_filter+=':*EveryConfig.UnevenExpertsBothOutputTypes/128x16_1x1_coop'
  memcheck_filter+=':*EveryConfig.UnevenExpertsBothOutputTypes/16x*_1x1_decode:GroupedGemm.StreamingKernels*'
  memcheck_filter+=':GroupedGemm.StreamKernel*:*EveryConfig.UnevenExpertsBothOutputTypes/64x8_stream'
  memcheck_filter+=':*EveryConfig.UnevenExpertsBothOutputTypes/64x16_stream'
  memcheck_filter+=':*EveryConfig.UnevenExpertsBothOutputTypes/64x32_stream'
  memcheck_filter+=':*EveryConfig.UnevenExpertsBothOutputTypes/64x8_splitk_stream:MoeLayer.RouterWeightOnInput'
  memcheck_filter+=':GroupedGemm.SplitKConfigSlicesDealtItems:GroupedGemm.DecodeKernelBlocksLoop*'
  memcheck_filter+=':*MoeOneLaunch.*:MoeLayer.EveryStageMatchesReferenceOnThe*:*MoeRouting*:ExactStreamGemm.*'
  memcheck_filter+=':Mxfp4StreamGemm.*:GptOssLayer.SmallLayer*:GptOssLayer.ExpertParallel*:GptOssLayer.GraphReplay*'
  memcheck_filter+=':MoeLayer.ExactScale*:*PrepackGpu.*K208:*KNotAMultipleOf128/64x8_stream:*SizesOffWholeGroups*'
  # Every pattern names at least one test: a pattern that no longer matches (a suite renamed or parameterised) would
  # otherwise drop its kernels from the memcheck without a word.
  IFS=: read -ra memcheck_patterns <<<"$memcheck_filter"
  for pattern in "${memcheck_patterns[@]}"; do
    [[ $($bin/w4a8moe_gpu_tests --gtest_list_tests --gtest_filter="$pattern" | grep -c "^  ") -gt 0 ]] ||
      { echo "memcheck pattern '$pattern' names no test" | tee -a "$tests_log"; status=1; }
  done
  echo "== the PDL kernels' rules in their SASS (scripts/sass_pdl_check.py)" | tee -a "$tests_log"
  python3 scripts/sass_pdl_check.py $bin/w4a8moe_gpu_tests >>"$tests_log" 2>&1
  case $? in 0) ;; 77) echo "no cuobjdump here: the SASS check skipped" | tee -a "$tests_log" ;; *) status=1 ;; esac
  echo "== compute-sanitizer memcheck (small cases)" | tee -a "$tests_log"
  compute-sanitizer --tool memcheck --error-exitcode 3 $bin/w4a8moe_gpu_tests --gtest_brief=1 \
    --gtest_filter="$memcheck_filter" >>"$tests_log" 2>&1 || status=1
  grep -E "PASSED|FAILED|ERROR SUMMARY|sass_pdl_check" "$tests_log" | tail -9
fi

if [[ -n "${VLLM_OPS_DIR:-}" ]]; then
  echo "== peers: vLLM's MoE kernels beside ours (bench/peers_bench.py)"
  mkdir -p /tmp/vllm
  for lib in _C _moe_C; do xz -dc "$VLLM_OPS_DIR/$lib.so.xz" >/tmp/vllm/$lib.so || status=1; done
  # The image's CXX and first gcc on PATH link libstdc++ statically, which the build refuses (python/README.md).
  CXX=g++ CUDAHOSTCXX=g++ python3 -m pip install -q --no-build-isolation --no-deps "${WHEEL:-.}" \
    >"$OUT/peers.log" 2>&1 || status=1
  echo "== pytest python/tests (the extension just installed)" | tee -a "$OUT/peers.log"
  python3 -m pytest -q python/tests >>"$OUT/peers.log" 2>&1 || status=1
  grep -E "passed|failed|error" "$OUT/peers.log" | tail -3
  PYTHONUNBUFFERED=1 python3 bench/peers_bench.py --vllm-dir /tmp/vllm --out-dir "$OUT" ${PEERS_ARGS:-} \
    >>"$OUT/peers.log" 2>&1 || status=1
  sed -n '/^wrote /,$p' "$OUT/peers.log"
fi
[[ -n "${SKIP_BENCH:-}" ]] && exit $status

echo "== MoE layer: w4a8moe run on model presets" | tee "$layer_log"
for run in "qwen3-30b-a3b 16" "qwen3-30b-a3b 8192" "mixtral-8x7b 16" "deepseek-v3 16" "gpt-oss-120b 16" \
           "gpt-oss-120b 64 --ep-ranks 4 --rank 1"; do
  set -- $run
  $bin/w4a8moe run --model "$1" --tokens "$2" "${@:3}" --json "$OUT/part.json" >>"$layer_log" 2>&1 || status=1
  cat "$OUT/part.json" >>"$OUT/layers.json" 2>/dev/null; rm -f "$OUT/part.json"
done
echo "== MoE layer: checkpoints made (and quantised) and run here: int4 W4A8, gpt-oss MXFP4" | tee -a "$layer_log"
toy=$(mktemp -d)
{ python3 scripts/make_toy_checkpoint.py "$toy/bf16" &&
  $bin/w4a8moe quantize "$toy/bf16" "$toy/w4a8" --config "$toy/bf16/config.json" &&
  $bin/w4a8moe run --checkpoint "$toy/w4a8" --layer 1 --tokens 100; } >>"$layer_log" 2>&1 || status=1
{ python3 scripts/make_toy_checkpoint.py "$toy/gpt-oss" --gpt-oss --hidden 320 --inter 192 &&
  $bin/w4a8moe run --checkpoint "$toy/gpt-oss" --layer 1 --tokens 100; } >>"$layer_log" 2>&1 || status=1
rm -rf "$toy"

echo "== MoE layer benchmark" | tee -a "$layer_log"
$bin/w4a8moe_moe_bench --out "$OUT" ${MOE_BENCH_ARGS:-} >>"$layer_log" 2>&1 || status=1
# The floor under any layer graph (bench/launch_floor.cu); its table into bench.log, its files not among the 8.
echo "== launch floor" | tee -a "$layer_log"
$bin/w4a8moe_launch_floor --out "$(mktemp -d)" >>"$layer_log" 2>&1 || status=1

echo "== GEMM benchmark"
echo "== GEMM benchmark" >>"$layer_log"
$bin/w4a8moe_gemm_bench --out "$OUT" ${BENCH_ARGS:-} >>"$layer_log" 2>&1 || status=1

echo "== summary"
if [[ -z "${SKIP_TESTS:-}" ]]; then
  grep -cE "^\[       OK \]" "$tests_log" | xargs -I{} echo "tests passed: {}"
  grep -E "^\[  FAILED  \]" "$tests_log" | sort -u | head -20
  grep -E "ERROR SUMMARY" "$tests_log" | tail -1
fi
grep -E "^w4a8moe (run|quantize)|total, CUDA graph|check:|FAILED|error" "$layer_log"
sed -n '/== MoE layer benchmark/,/== GEMM benchmark/p' "$layer_log"
sed -n '/== GEMM benchmark/,$p' "$layer_log" | grep -E "^(model|qwen3|deepseek|mixtral)"
# The targets on this run's files (bench/criteria.py; printed, not kept: the 8 files above are what comes back).
layer_json=$(ls "$OUT"/*-moe-layer.json 2>/dev/null | head -1)
peers_json=$(ls "$OUT"/*-peers.json 2>/dev/null | head -1)
gemm_json=$(ls "$OUT"/*.json 2>/dev/null | grep -vE -- '-(moe-layer|peers)\.json$|/layers\.json$' | head -1)
if [[ -n $layer_json ]]; then
  python3 bench/criteria.py --layer "$layer_json" ${peers_json:+--peers "$peers_json"} \
    ${gemm_json:+--gemm "$gemm_json"} || status=1
  if grep -q '"exact"' "$layer_json"; then  # MOE_BENCH_ARGS with --layouts lookup,exact (and BENCH_ARGS --exact)
    python3 bench/criteria.py --layout exact --layer "$layer_json" ${peers_json:+--peers "$peers_json"} \
      ${gemm_json:+--gemm "$gemm_json"} || status=1
  fi
fi
exit $status
