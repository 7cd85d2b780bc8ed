#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs the main job: the W4A8 grouped GEMM benchmark (Qwen3-30B-A3B GEMM1 and
# GEMM2 at 16, 128, 1024 and 8192 tokens against W8A8, W4A16 and BF16). Needs a Hopper GPU; says so otherwise.
# Arguments go to the benchmark (see build/bin/w4a8moe_gemm_bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
exec build/bin/w4a8moe_gemm_bench "$@"
