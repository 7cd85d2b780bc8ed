#!/usr/bin/env bash
# Sets up a fresh machine, builds every kernel and runs all tests. Without a GPU the GPU tests report themselves
# skipped; on a Hopper GPU they run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)"
