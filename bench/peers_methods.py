"""The shape every peers_bench method has (a layer call, a GemmCall per grouped GEMM, or Unavailable with its reason)
and this library's methods: w4a8moe.fused_moe and w4a8moe.grouped_gemm on int4 checkpoints, and the same on gpt-oss's
MXFP4 experts."""

from dataclasses import dataclass
from typing import Callable

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_gpt_oss import SWIGLU_LIMIT  # (beside this file)
from peers_model import gather_rows

# The library's GEMMs read activation rows of K rounded up to whole 128-groups (padded_k), zero past K.
K_GROUP = 128


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
    default, as method "w4a8moe"; "exact" as "w4a8moe_exact"); the layer on fused_moe's `path` ("auto": its own
    choice, "staged" or "one_launch")."""

    def __init__(self, spec, ckpt, layout="lookup", path="auto"):
        import w4a8moe  # imported by peers_bench.main() before any method is built; here to keep the module importable
        self.lib, self.spec, self.path = w4a8moe, spec, path
        self.name = "w4a8moe" if layout == "lookup" else f"w4a8moe_{layout}"
        self.weights = w4a8moe.prepack_moe_weights(ckpt.w13, ckpt.s13, ckpt.w2, ckpt.s2, layout=layout)

    def layer(self, case):
        return lambda: self.lib.fused_moe(case.hidden, router_logits=case.logits, weights=self.weights,
                                          top_k=self.spec.top_k, renormalize=True, expert_map=case.expert_map,
                                          path=self.path)

    def gemm(self, level, case):
        x, packed, n = ((case.x1, self.weights.gemm1, 2 * self.spec.inter) if level == "gemm1"
                        else (case.x2, self.weights.gemm2, self.spec.hidden))
        act, scales = self.lib.quantize_per_token_fp8(x)
        return GemmCall(
            run=lambda: self.lib.grouped_gemm(act, scales, case.offsets, packed, n),
            rows_in=lambda rows: gather_rows(act, rows).float() * scales[rows].unsqueeze(1),
            rows_out=lambda out, rows: out[rows].float())


class W4A8MoeMxfp4:
    """This library on gpt-oss's MXFP4 experts (layout "mxfp4"), as method "w4a8moe": its loader reorders GEMM1's
    interleaved rows (blocks, scales, bias) to gate rows then up rows (w4a8moe.gate_up_rows_in_layer_order) and packs
    the codes, e8m0 scales and biases; the layer runs gpt-oss's clamped SwiGLU, the GEMMs add the biases."""
    name = "w4a8moe"

    def __init__(self, spec, ckpt):
        import w4a8moe  # imported by peers_bench.main() before any method is built; here to keep the module importable
        self.lib, self.spec = w4a8moe, spec
        e, h, i = spec.local_experts, spec.hidden, spec.inter
        in_layer_order = w4a8moe.gate_up_rows_in_layer_order
        w13_bias = in_layer_order(ckpt.w13_bias)
        self.weights = w4a8moe.prepack_moe_weights(
            in_layer_order(ckpt.w13_blocks).reshape(e, 2 * i, h // 2), in_layer_order(ckpt.w13_scales),
            ckpt.w2_blocks.reshape(e, h, i // 2), ckpt.w2_scales, layout="mxfp4", w13_bias=w13_bias,
            w2_bias=ckpt.w2_bias)
        # grouped_gemm takes each GEMM's bias as float32 [E, n], in the packed rows' order.
        self.bias1 = w13_bias.float().contiguous()
        self.bias2 = ckpt.w2_bias.float().contiguous()

    def layer(self, case):
        return lambda: self.lib.fused_moe(case.hidden, router_logits=case.logits, weights=self.weights,
                                          top_k=self.spec.top_k, renormalize=True, expert_map=case.expert_map,
                                          activation="gpt_oss_swiglu", swiglu_limit=SWIGLU_LIMIT)

    def gemm(self, level, case):
        """gpt-oss's K = 2880 is not whole 128-groups: the input rows are padded with zero columns to padded_k(K)
        before the per-token quantisation, as the layer does; the check reads back the first K columns."""
        x, packed, n, bias = ((case.x1, self.weights.gemm1, 2 * self.spec.inter, self.bias1) if level == "gemm1"
                              else (case.x2, self.weights.gemm2, self.spec.hidden, self.bias2))
        k = x.shape[1]
        padded = torch.nn.functional.pad(x, (0, -(-k // K_GROUP) * K_GROUP - k))
        act, scales = self.lib.quantize_per_token_fp8(padded)
        return GemmCall(
            run=lambda: self.lib.grouped_gemm(act, scales, case.offsets, packed, n, bias=bias),
            rows_in=lambda rows: gather_rows(act, rows)[:, :k].float() * scales[rows].unsqueeze(1),
            rows_out=lambda out, rows: out[rows].float())
