#!/usr/bin/env bash
# Configures and builds everything (library, every kernel, tests, benchmarks, tools) into build/.
# Binaries land in build/bin, the folder to carry to a GPU machine. Extra arguments go to CMake's configure step,
# e.g. -DW4A8_GEMM_CONFIGS="128x16_1x1_coop" for a quick local build of one kernel config.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
jobs=${W4A8_BUILD_JOBS:-$(nproc)}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
