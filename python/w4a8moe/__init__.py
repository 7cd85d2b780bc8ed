"""W4A8 Mixture-of-Experts kernels for Hopper as PyTorch ops (torch.ops.w4a8moe.*) and a small Python API.

See python/README.md for building, the API and how an inference engine swaps the layer in.
"""

import torch  # noqa: F401  (the extension links against the libtorch this import loads)

try:
    from . import _C  # noqa: F401  (loading the extension registers torch.ops.w4a8moe.*)
except ImportError as error:
    raise ImportError(
        "w4a8moe: the C++ extension is not built. Build the library (scripts/build.sh), then install the package "
        "with `pip install --no-build-isolation ./python` against the PyTorch you run with") from error

from . import _fake  # noqa: F401,E402  (registers the fake implementations torch.compile traces with)
from .api import (  # noqa: E402
    MoeRouting,
    PackedMoeWeights,
    fused_moe,
    gemm_config_names,
    grouped_gemm,
    moe_routing,
    packed_weights_bytes,
    packed_weights_shape,
    prepack_moe_weights,
    prepack_weights,
    quantize_per_token_fp8,
)

__all__ = [
    "MoeRouting",
    "PackedMoeWeights",
    "fused_moe",
    "gemm_config_names",
    "grouped_gemm",
    "moe_routing",
    "packed_weights_bytes",
    "packed_weights_shape",
    "prepack_moe_weights",
    "prepack_weights",
    "quantize_per_token_fp8",
]
