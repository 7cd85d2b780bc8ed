#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine: build tools from Debian, CUTLASS headers from PyPI (pinned),
# installed into the project (third_party/, git-ignored). Safe to re-run; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

CUTLASS_VERSION=4.2.0.0   # newest nvidia-cutlass wheel on PyPI (2026-11); see README "Dependencies"
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

if [[ -z "${CUTLASS_DIR:-}" ]]; then
  dest=third_party/cutlass-$CUTLASS_VERSION
  if [[ ! -f $dest/cutlass_library/source/include/cutlass/cutlass.h ]]; then
    echo "setup: installing CUTLASS $CUTLASS_VERSION headers into $dest"
    rm -rf "$dest"
    python3 -m pip install -q --no-deps --disable-pip-version-check --target "$dest" "nvidia-cutlass==$CUTLASS_VERSION"
  fi
fi
echo "setup: ok"
