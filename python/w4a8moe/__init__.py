"""W4A8 Mixture-of-Experts kernels for Hopper as PyTorch ops (torch.ops.w4a8moe.*) and a small Python API.

See python/README.md for building, the API and how an inference engine swaps the layer in.
"""

import torch  # before the extension, which links against the libtorch this import loads

try:
    from ._build_info import TORCH_VERSION as _BUILT_FOR_TORCH
except ImportError as error:  # python/w4a8moe on sys.path without an install
    raise ImportError(
        "w4a8moe: the package is not built. From the repository root: `pip install --no-build-isolation .` with the "
        "PyTorch you run with installed (python/README.md)") from error
if torch.__version__ != _BUILT_FOR_TORCH:
    raise ImportError(
        f"w4a8moe: the extension was built against torch {_BUILT_FOR_TORCH}, and this is torch {torch.__version__}; "
        "its C++ ABI is tied to that build. Rebuild: `pip install --no-build-isolation .` from the repository root")
from . import _C  # noqa: F401,E402  (loading the extension registers torch.ops.w4a8moe.*)
from . import _fake  # noqa: F401,E402  (registers the fake implementations torch.compile traces with)
from .api import (  # noqa: E402
    MoeRouting,
    PackedMoeWeights,
    fused_moe,
    gate_up_rows_in_layer_order,
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
    "gate_up_rows_in_layer_order",
    "gemm_config_names",
    "grouped_gemm",
    "moe_routing",
    "packed_weights_bytes",
    "packed_weights_shape",
    "prepack_moe_weights",
    "prepack_weights",
    "quantize_per_token_fp8",
]
