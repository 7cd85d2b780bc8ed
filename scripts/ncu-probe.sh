#!/usr/bin/env bash
# Runs on the lent GPU machine, with build/bin carried: Nsight Compute on the kernels the decode analysis
# cites (the decode kernel at 1 and 16 tokens, CUTLASS's picks at 16, 128 and 8192 tokens, and every kernel of the
# Qwen3-30B-A3B layer at 1 token). Prints a few lines per kernel: duration, throughput, scheduler state and the
# stall reasons above 0.05 cycles per issued instruction; the full reports go to $OUT (or out/). With SOURCE=1 each
# probe also samples warp stalls at every instruction (SourceCounters, the shortest sampling interval) and prints the
# SASS instructions its warps waited at most, and the samples by opcode (scripts/ncu_stalls.py).
#   [PROBES=regex] [SOURCE=1] scripts/ncu-probe.sh   (only the probes whose names match, e.g. PROBES=exact)
set -uo pipefail
cd "$(dirname "$0")/.."
bin=build/bin OUT=${OUT:-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
stalls=long_scoreboard,barrier,wait,math_pipe_throttle,short_scoreboard,mio_throttle,lg_throttle,not_selected,selected
stalls+=,no_instruction,dispatch_stall,membar
metrics=$(for s in ${stalls//,/ }; do printf "smsp__average_warps_issue_stalled_%s_per_issue_active.ratio," "$s"; done)
metrics+=sm__cycles_active.avg,gpc__cycles_elapsed.max,dram__bytes_read.sum,lts__t_sector_hit_rate.pct
sections="--section SpeedOfLight --section SchedulerStats --section WarpStateStats --section Occupancy --section LaunchStats"
probe() {  # name kernel-regex gemm-bench-args...
  local name=$1 kernel=$2
  shift 2
  [[ $name =~ ${PROBES:-.} ]] || return 0
  local report="$OUT/ncu-$name" source_args=() log="$OUT/ncu-$name.txt"
  # SOURCE=1: a report file, then its details as text and its source page as CSV.
  [[ -n ${SOURCE:-} ]] && source_args=(--section SourceCounters --warp-sampling-interval 0 -f -o "$report") &&
    log="$report.log"
  ncu --clock-control none -k "regex:$kernel" --launch-skip 2 -c 1 $sections --metrics "$metrics" \
    "${source_args[@]}" $bin/w4a8moe_gemm_bench --no-baselines --replays 3 "$@" >"$log" 2>&1
  if [[ -n ${SOURCE:-} ]]; then
    ncu -i "$report.ncu-rep" >"$report.txt" 2>&1
    ncu -i "$report.ncu-rep" --page source --csv --print-source sass >"$report-sass.csv" 2>&1
  fi
  echo "## $name"
  grep -E "^\s+(Duration|DRAM Throughput|Compute \(SM\) Throughput|No Eligible|Active Warps Per Scheduler|Eligible Warps Per Scheduler|Achieved Occupancy|Warp Cycles Per Issued Instruction|Registers Per Thread|Grid Size|smsp__average_warps_issue_stalled_[a-z_]+|dram__bytes_read.sum|lts__t_sector_hit_rate.pct|sm__cycles_active.avg|gpc__cycles_elapsed.max)\b" \
    "$OUT/ncu-$name.txt" | sed -E 's/smsp__average_warps_issue_stalled_([a-z_]+)_per_issue_active.ratio/stall_\1/' |
    awk '$NF + 0 >= 0.05 || $0 !~ /stall_/' | tr -s ' '
  if [[ -n ${SOURCE:-} ]]; then python3 scripts/ncu_stalls.py --top 15 "$report-sass.csv"; fi
}
probe qwen3-g1-1tok-decode decode_gemm --models qwen3-30b-a3b --gemm 1 --tokens 1 --configs 16x8_1x1_decode
probe qwen3-g2-1tok-decode decode_gemm --models qwen3-30b-a3b --gemm 2 --tokens 1 --configs 16x8_1x1_decode
probe qwen3-g1-16tok-decode decode_gemm --models qwen3-30b-a3b --gemm 1 --tokens 16 --configs 16x8_1x1_decode
probe qwen3-g1-16tok-cutlass device_kernel --models qwen3-30b-a3b --gemm 1 --tokens 16 --configs 128x16_1x1_pp
probe qwen3-g1-128tok-cutlass device_kernel --models qwen3-30b-a3b --gemm 1 --tokens 128
probe deepseek-g1-8192tok-cutlass device_kernel --models deepseek-v3-ep8 --gemm 1 --tokens 8192
# The exact-scale layout's decode chunks where its GEMM reads at ~56 % of HBM: DeepSeek-V3 EP8 GEMM1 at 16 tokens, 64
# tiles of 56 groups for each of ~13 active experts, ~1.6 waves of 528 block slots (is the last wave the loss?).
probe deepseek-g1-16tok-exact block_stream_gemm_kernel --models deepseek-v3-ep8 --gemm 1 --tokens 16 \
  --configs 64x8_exact
probe qwen3-g1-16tok-exact block_stream_gemm_kernel --models qwen3-30b-a3b --gemm 1 --tokens 16 --configs 64x8_exact
# Few long items an SM (Mixtral-8x7B GEMM1, 32 groups an item, 896 items at 1 token and ~2700 at 4 over 528 workers):
# the lookup-table and exact-scale 8-row kernels read at 58-65 % and 63-77 % of HBM while issuing at 27-40 % of the
# slots (bench/NOTES.md §50). With SOURCE=1: do the consumers wait on a stage's data (SYNCS.PHASECHK), on their
# wgmmas (WARPGROUP.DEPBAR) or on their own conversion?
probe mixtral-g1-1tok-stream '^stream_gemm_kernel' --models mixtral-8x7b --gemm 1 --tokens 1 \
  --configs 64x8_stream
probe mixtral-g1-4tok-stream '^stream_gemm_kernel' --models mixtral-8x7b --gemm 1 --tokens 4 \
  --configs 64x8_stream
probe mixtral-g1-4tok-exact block_stream_gemm_kernel --models mixtral-8x7b --gemm 1 --tokens 4 --configs 64x8_exact
# Short K (Qwen3-30B-A3B GEMM2, 6 groups an item) against longer (GEMM1, 16) on the 16-row chunks at 64 tokens, ~4 rows
# an expert: GEMM2 reads at 66-74 % of HBM where GEMM1 reads at 75-85 % (bench/NOTES.md §86). With SOURCE=1: where do
# the consumers of short items wait that those of longer ones do not?
probe qwen3-g2-64tok-stream '^stream_gemm_kernel' --models qwen3-30b-a3b --gemm 2 --tokens 64 --configs 64x16_stream
probe qwen3-g1-64tok-stream '^stream_gemm_kernel' --models qwen3-30b-a3b --gemm 1 --tokens 64 --configs 64x16_stream
# Long K at ~4 and ~16 rows an expert (Mixtral-8x7B GEMM1, 8 experts, 3584 items of 32 groups): the 16-row chunks
# read at ~89 % of HBM at 16 tokens, the 32-row chunks and CUTLASS's 256x64 pick at ~78-81 % at 64 tokens
# (bench/NOTES.md §108). With SOURCE=1: what do the 32-row consumers wait on that the 16-row ones do not?
probe mixtral-g1-16tok-stream16 '^stream_gemm_kernel' --models mixtral-8x7b --gemm 1 --tokens 16 \
  --configs 64x16_stream
probe mixtral-g1-64tok-stream32 '^stream_gemm_kernel' --models mixtral-8x7b --gemm 1 --tokens 64 \
  --configs 64x32_stream
probe mixtral-g1-64tok-cutlass device_kernel --models mixtral-8x7b --gemm 1 --tokens 64 --configs 256x64_1x1_coop
[[ layer =~ ${PROBES:-.} ]] || exit 0
ncu --clock-control none --section SpeedOfLight $bin/w4a8moe run --model qwen3-30b-a3b --tokens 1 --iters 2 \
  --no-check >"$OUT/ncu-layer.txt" 2>&1
echo "## the Qwen3-30B-A3B layer at 1 token, one forward (kernel, duration)"
grep -E "^  [a-zA-Z_].*\(|Duration" "$OUT/ncu-layer.txt" | tail -12 | sed -E 's/\(.*//' | paste - - | tr -s ' '
