#!/usr/bin/env bash
# Sets up a fresh machine, builds, and runs the main job: a W4A8 MoE layer on the GPU with `w4a8moe run` (per-stage
# times, total, tokens/s, a check against the CPU reference). Needs a Hopper GPU; says so otherwise.
# Arguments go to `w4a8moe run` (default: --model qwen3-30b-a3b --tokens 8192; see build/bin/w4a8moe run --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
if (($# == 0)); then set -- --model qwen3-30b-a3b --tokens 8192; fi
exec build/bin/w4a8moe run "$@"
