"""The shape every peers_bench method has (a layer call, a GemmCall per grouped GEMM, or Unavailable with its reason)
and this library's method: w4a8moe.fused_moe and w4a8moe.grouped_gemm."""

from dataclasses import dataclass
from typing import Callable

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_model import gather_rows  # (beside this file)


# --- The methods ---------------------------------------------------------------------------------------------------

@dataclass
class GemmCall:
    """One grouped GEMM as a method runs it, and how to read back the rows a check samples (row ids index
    Case.row_slot's order)."""
    run: Callable[[], "torch.Tensor"]  # the timed call; returns its output tensor
    rows_in: Callable[["torch.Tensor"], "torch.Tensor"]  # row ids -> the method's input rows, dequantised, fp32
    rows_out: Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]  # (output, row ids) -> those output rows


class Unavailable:
    """A method that cannot run on this machine; every call says why."""

    def __init__(self, name, reason):
        self.name, self.reason = name, reason

    def layer(self, case):
        raise RuntimeError(self.reason)

    def gemm(self, level, case):
        raise RuntimeError(self.reason)


class W4A8Moe:
    """This library: the fused layer and its grouped GEMM, on the weights packed in one layout ("lookup", the
    default, as method "w4a8moe"; "exact" as "w4a8moe_exact")."""

    def __init__(self, spec, ckpt, layout="lookup"):
        import w4a8moe  # imported by peers_bench.main() before any method is built; here to keep the module importable
        self.lib, self.spec = w4a8moe, spec
        self.name = "w4a8moe" if layout == "lookup" else f"w4a8moe_{layout}"
        self.weights = w4a8moe.prepack_moe_weights(ckpt.w13, ckpt.s13, ckpt.w2, ckpt.s2, layout=layout)

    def layer(self, case):
        return lambda: self.lib.fused_moe(case.hidden, router_logits=case.logits, weights=self.weights,
                                          top_k=self.spec.top_k, renormalize=True, expert_map=case.expert_map)

    def gemm(self, level, case):
        x, packed, n = ((case.x1, self.weights.gemm1, 2 * self.spec.inter) if level == "gemm1"
                        else (case.x2, self.weights.gemm2, self.spec.hidden))
        act, scales = self.lib.quantize_per_token_fp8(x)
        return GemmCall(
            run=lambda: self.lib.grouped_gemm(act, scales, case.offsets, packed, n),
            rows_in=lambda rows: gather_rows(act, rows).float() * scales[rows].unsqueeze(1),
            rows_out=lambda out, rows: out[rows].float())
