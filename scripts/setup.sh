#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine: the build tools from Debian. Safe to re-run; does nothing that is already
# done. The pinned CUTLASS headers come from PyPI at the first CMake configure (CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(cmake ninja-build g++ ccache libgtest-dev nlohmann-json3-dev python3-pip)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || {
  echo "setup: the CUDA 13 toolkit (nvcc) is required and was not found (PATH or /usr/local/cuda/bin)" >&2; exit 1; }

echo "setup: ok"
