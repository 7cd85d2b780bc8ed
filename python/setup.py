"""Builds the w4a8moe PyTorch extension (w4a8moe._C) against the prebuilt static library of this repository.

    scripts/build.sh                                  # once, from the repository root: builds build/libw4a8moe.a
    pip install --no-build-isolation ./python         # builds against the PyTorch installed in this environment

Environment:
    W4A8MOE_BUILD_DIR    folder holding libw4a8moe.a (default: ../build next to this file)
    W4A8MOE_INCLUDE_DIR  folder holding w4a8moe/*.h (default: ../include)

The static library holds the CUDA kernels (sm_90a) and was compiled with -fPIC; the extension links it together with
the shared CUDA runtime that PyTorch loads (not a second, static copy of the runtime).
"""

import os
from pathlib import Path

from setuptools import find_packages, setup

try:
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension
except ImportError as error:
    raise SystemExit(
        "w4a8moe: building needs PyTorch importable at build time, the PyTorch the extension will run with. "
        "Install with `pip install --no-build-isolation .` (build isolation hides the installed torch).") from error

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def folder_from_env(variable: str, default: Path) -> Path:
    return Path(os.environ.get(variable, default)).expanduser().resolve()


build_dir = folder_from_env("W4A8MOE_BUILD_DIR", REPO / "build")
include_dir = folder_from_env("W4A8MOE_INCLUDE_DIR", REPO / "include")
library = build_dir / "libw4a8moe.a"
if not library.is_file():
    raise SystemExit(
        f"w4a8moe: {library} not found. Build the C++ library first (run scripts/build.sh from the repository root), "
        "or set W4A8MOE_BUILD_DIR to the folder that holds libw4a8moe.a.")
if not (include_dir / "w4a8moe" / "moe.h").is_file():
    raise SystemExit(f"w4a8moe: {include_dir}/w4a8moe/moe.h not found; set W4A8MOE_INCLUDE_DIR to the repository's "
                     "include/ folder.")

extension = CUDAExtension(
    name="w4a8moe._C",
    sources=["csrc/w4a8moe_ops.cpp"],
    include_dirs=[str(include_dir)],
    extra_objects=[str(library)],
    extra_compile_args={"cxx": ["-O2", "-Wall"]},
    # Keeps the static library's symbols private to the extension, so another copy elsewhere cannot clash.
    extra_link_args=["-Wl,--exclude-libs,libw4a8moe.a"],
)

setup(
    name="w4a8moe",
    version="0.1.0",
    description="W4A8 Mixture-of-Experts kernels for Hopper as PyTorch ops",
    packages=find_packages(include=["w4a8moe"]),
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.9",
)
