"""The Python API over torch.ops.w4a8moe: weight prepacking at load time, the fused MoE layer and its pieces.

Numerics (per expert e, output channel n, input k; group size 128):

    W[e, n, k] = q[e, n, k] * s[e, n, k // 128]          the checkpoint's int4 q in [-8, 7] and bf16 scale s
    out[m, n]  = st[m] * sc[e, n] * sum_k a[m, k] * e4m3(q[e, n, k] * sg[e, n, k // 128])

where a and st are the per-token fp8 activations and fp32 scale (quantize_per_token_fp8), and prepacking splits s
into an e4m3 group scale sg and an fp32 channel scale sc (see include/w4a8moe/prepack.h). That is the default
packed layout, "lookup". The layout "exact" (prepack_weights(..., layout="exact")) keeps the products unrounded,

    out[m, n]  = st[m] * sum_k a[m, k] * q[e, n, k] * s[e, n, k // 128]

with the bf16 scales applied per group in fp32; its kernels are faster at 1-128 tokens and slower beyond (the
README says where). The run-time ops tell the layouts apart by the packed buffer's size.
"""

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch

E4M3_MAX = 448.0


def packed_weights_bytes(num_experts: int, n: int, k: int, layout: str = "lookup") -> int:
    """Bytes of the packed buffer for E experts of [N, K] weights in `layout` ("lookup" or "exact"). Raises
    ValueError if the shape breaks a rule (N and K positive multiples of 16, one expert's N * padded_k(K) below 2^31;
    a K off whole 128-groups is packed with zero weights up to padded_k(K), the multiple of 128 above it) or the
    layout is unknown."""
    return torch.ops.w4a8moe.packed_weights_bytes(num_experts, n, k, layout)


def packed_weights_shape(packed: torch.Tensor) -> tuple:
    """(E, N, K) of a packed buffer, read from its header after checking magic, format version and size: the check
    to run on a packed buffer loaded back from disk. packed: uint8 [bytes] on the CPU."""
    return tuple(torch.ops.w4a8moe.packed_weights_shape(packed))


def gemm_config_names(layout: str = "lookup") -> list:
    """Names of the grouped GEMM kernel configs that read `layout`, e.g. "128x16_1x1_coop", for the optional config
    overrides."""
    return list(torch.ops.w4a8moe.gemm_config_names(layout))


def prepack_weights(weights: torch.Tensor, group_scales: torch.Tensor,
                    channel_scales: Optional[torch.Tensor] = None, layout: str = "lookup") -> torch.Tensor:
    """Packs one projection's experts, E experts of [N, K], into the private format the GEMMs read.

    Load time only: waits for the current stream and checks the scales (a non-finite scale raises ValueError).

    Args:
        weights: on the GPU, either
            int32 [E, N, K/8]: the compressed-tensors checkpoint layout; nibble i of word j holds q + 8 for
                k = 8j + i, q in [-8, 7];
            uint8 [E, N, K/2]: two's-complement int4, the low nibble holding the even k.
        group_scales: either bfloat16 [E, N, ceil(K/128)], the checkpoint's weight_scale (W = q * s), or
            float8_e4m3fn [E, N, ceil(K/128)] with |sg| <= 56, together with channel_scales (W = q * sg * sc).
        channel_scales: float32 [E, N]; only with float8_e4m3fn group_scales.
        layout: "lookup" (the default: e4m3(q * sg) through a lookup table, every kernel config) or "exact" (the
            products q * s unrounded, bf16 group scales; faster at decode, slower at prefill).

    Returns:
        uint8 [packed_weights_bytes(E, N, K, layout)] on the weights' device. Its bytes are private and versioned; a
        copy saved to disk is checked with packed_weights_shape() when loaded back.
    """
    return torch.ops.w4a8moe.prepack_weights(weights, group_scales, channel_scales, layout)


@dataclass(frozen=True)
class PackedMoeWeights:
    """The packed expert weights of one MoE layer (this rank's local experts), from prepack_moe_weights().

    gemm1: uint8, E experts of [2 * intermediate_size, hidden_size]: per expert the gate rows, then the up rows.
    gemm2: uint8, E experts of [hidden_size, intermediate_size] (down_proj).
    layout: the packed layout of both ("lookup" or "exact").
    """

    gemm1: torch.Tensor
    gemm2: torch.Tensor
    num_experts: int
    hidden_size: int
    intermediate_size: int
    layout: str = "lookup"

    def __post_init__(self):
        shapes = {
            "gemm1": (self.num_experts, 2 * self.intermediate_size, self.hidden_size),
            "gemm2": (self.num_experts, self.hidden_size, self.intermediate_size),
        }
        for name, shape in shapes.items():
            packed = getattr(self, name)
            if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.dim() != 1:
                raise TypeError(f"PackedMoeWeights.{name} must be a 1-D uint8 tensor from prepack_weights")
            expected = packed_weights_bytes(*shape, self.layout)
            if packed.numel() != expected:
                raise ValueError(f"PackedMoeWeights.{name} has {packed.numel()} bytes, but E, N, K = {shape} "
                                 f"take {expected} in layout {self.layout!r}: it was packed for another shape or "
                                 "layout")


def _unpacked_k(weights: torch.Tensor, name: str) -> int:
    if weights.dim() != 3:
        raise ValueError(f"{name} must be 3-D [E, N, K/8] (int32) or [E, N, K/2] (uint8), got {tuple(weights.shape)}")
    if weights.dtype == torch.int32:
        return weights.shape[2] * 8
    if weights.dtype == torch.uint8:
        return weights.shape[2] * 2
    raise TypeError(f"{name} must be int32 [E, N, K/8] or uint8 [E, N, K/2], got {weights.dtype}")


def prepack_moe_weights(w13_weight: torch.Tensor, w13_scale: torch.Tensor, w2_weight: torch.Tensor,
                        w2_scale: torch.Tensor, w13_channel_scale: Optional[torch.Tensor] = None,
                        w2_channel_scale: Optional[torch.Tensor] = None, layout: str = "lookup") -> PackedMoeWeights:
    """Packs a MoE layer's experts for fused_moe(). Load time only (see prepack_weights).

    Args:
        w13_weight: gate and up stacked for GEMM1, [E, 2I, H/8] int32 (checkpoint layout) or [E, 2I, H/2] uint8;
            rows [0, I) of each expert are gate_proj, rows [I, 2I) up_proj (the vLLM w13 order).
        w13_scale: [E, 2I, ceil(H/128)], bfloat16 (checkpoint weight_scale) or float8_e4m3fn with w13_channel_scale.
        w2_weight: down_proj for GEMM2, [E, H, I/8] int32 or [E, H, I/2] uint8.
        w2_scale: [E, H, ceil(I/128)], bfloat16 or float8_e4m3fn with w2_channel_scale.
        w13_channel_scale, w2_channel_scale: float32 [E, 2I] and [E, H]; only with float8_e4m3fn scales.
        layout: the packed layout, "lookup" or "exact" (see prepack_weights).

    Returns:
        PackedMoeWeights for the E experts (E is the number of local experts under expert parallelism).
    """
    hidden = _unpacked_k(w13_weight, "w13_weight")
    inter = _unpacked_k(w2_weight, "w2_weight")
    num_experts, two_inter = w13_weight.shape[0], w13_weight.shape[1]
    if two_inter != 2 * inter or tuple(w2_weight.shape[:2]) != (num_experts, hidden):
        raise ValueError(f"w13_weight {tuple(w13_weight.shape)} ([E, 2I, H/pack]) and w2_weight "
                         f"{tuple(w2_weight.shape)} ([E, H, I/pack]) disagree on E, H or I")
    return PackedMoeWeights(
        gemm1=prepack_weights(w13_weight, w13_scale, w13_channel_scale, layout),
        gemm2=prepack_weights(w2_weight, w2_scale, w2_channel_scale, layout),
        num_experts=num_experts,
        hidden_size=hidden,
        intermediate_size=inter,
        layout=layout,
    )


def quantize_per_token_fp8(x: torch.Tensor):
    """Dynamic per-row e4m3 quantisation as the layer does it: scale = amax / 448, q = e4m3(x * (448 / amax)), in
    the same fp32 operations (an all-zero row gets scale 0 and q 0).

    Args:
        x: [rows, K], any float dtype.
    Returns:
        (q float8_e4m3fn [rows, K], scale float32 [rows]), inputs for grouped_gemm.
    """
    values = x.float()
    amax = values.abs().amax(dim=-1, keepdim=True)
    e4m3_max = torch.full_like(amax, E4M3_MAX)  # a tensor divisor: true division, as the kernel computes it
    inverse = torch.where(amax > 0, e4m3_max / amax, torch.zeros_like(amax))
    return (values * inverse).to(torch.float8_e4m3fn), (amax / e4m3_max).squeeze(-1)


def grouped_gemm(act: torch.Tensor, token_scales: torch.Tensor, expert_offsets: torch.Tensor,
                 packed_weights: torch.Tensor, n: int, out_dtype: torch.dtype = torch.bfloat16,
                 config: Optional[str] = None) -> torch.Tensor:
    """The W4A8 grouped GEMM: for each expert e and row m in [expert_offsets[e], expert_offsets[e + 1]),

        out[m, :] = token_scales[m] * sc[e, :] * (act[m, :] @ e4m3(q[e] * sg[e]).T)

    Enqueued on the current stream with no host synchronisation (CUDA-graph capturable).

    Args:
        act: float8_e4m3fn [rows, padded_k(K)], rows grouped by expert, 16-byte aligned: K rounded up to a multiple
            of 128, the columns past K zero (torch.nn.functional.pad the input before quantize_per_token_fp8).
        token_scales: float32 [rows].
        expert_offsets: int64 [E + 1] on the GPU, non-decreasing, expert_offsets[E] <= rows.
        packed_weights: uint8 from prepack_weights for E experts of [n, K], either layout (told by its size).
        n: output channels of each expert.
        out_dtype: torch.bfloat16 or torch.float16.
        config: optional kernel name from gemm_config_names(layout); None picks one by heuristic.

    Returns:
        [rows, n] of out_dtype. Rows outside [expert_offsets[0], expert_offsets[E]) are not written (their values
        are whatever the allocator held).
    """
    return torch.ops.w4a8moe.grouped_gemm(act, token_scales, expert_offsets, packed_weights, n, out_dtype, config)


class MoeRouting(NamedTuple):
    """Rows grouped by local expert, each expert's rows in (token, slot) order."""

    expert_offsets: torch.Tensor  # int64 [num_local_experts + 1]
    dest_row: torch.Tensor  # int32 [T, top_k]: the row of each (token, slot), -1 if its expert is not local
    row_slot: torch.Tensor  # int32 [T * top_k]: the slot t * top_k + j each row came from; -1 past the last row


def moe_routing(topk_ids: torch.Tensor, num_experts: int, expert_map: Optional[torch.Tensor] = None,
                num_local_experts: Optional[int] = None) -> MoeRouting:
    """The routing data of the fused layer alone, for engines that run the stages themselves. Deterministic.

    Args:
        topk_ids: int32 [T, top_k] global expert ids on the GPU; ids outside [0, num_experts) are dropped.
        num_experts: experts the router scores.
        expert_map: optional int32 [num_experts]: local id or -1; required when num_local_experts < num_experts.
        num_local_experts: experts this rank holds (default num_experts).
    """
    local = num_experts if num_local_experts is None else num_local_experts
    return MoeRouting(*torch.ops.w4a8moe.moe_routing(topk_ids, expert_map, num_experts, local))


_PATHS = {"auto": 0, "staged": 1, "one_launch": 2}  # MoePath in include/w4a8moe/moe.h


def fused_moe(hidden: torch.Tensor, router_logits: Optional[torch.Tensor] = None,
              topk_ids: Optional[torch.Tensor] = None, topk_weights: Optional[torch.Tensor] = None, *,
              weights: PackedMoeWeights, top_k: int, renormalize: bool = True,
              expert_map: Optional[torch.Tensor] = None, apply_router_weight_on_input: bool = False,
              num_experts: Optional[int] = None, gemm1_config: Optional[str] = None,
              gemm2_config: Optional[str] = None, path: str = "auto") -> torch.Tensor:
    """The W4A8 MoE layer: routing, per-token fp8 quantisation, GEMM1 (gate, up), SiLU(gate) * up, fp8
    requantisation, GEMM2 (down), and the top-k weighted sum. All on the current stream, no host synchronisation:
    capturable in a CUDA graph and traceable by torch.compile.

    Routing: give either router_logits (softmax over the experts, top-k, ties to the lower id, the top-k weights
    divided by their sum if renormalize) or precomputed topk_ids and topk_weights.

    Args:
        hidden: [T, H] bfloat16 or float16, contiguous, 16-byte aligned.
        router_logits: float32 or bfloat16 [T, num_experts].
        topk_ids: int32 [T, top_k], global expert ids.
        topk_weights: float32 [T, top_k].
        weights: this rank's packed experts, from prepack_moe_weights().
        top_k: experts per token, 1..32.
        renormalize: with router_logits, divide the top-k weights by their sum.
        expert_map: int32 [num_experts]: global expert id -> local id or -1 (expert parallelism). Rows of other
            ranks' experts contribute zero; the engine sums the ranks' outputs.
        apply_router_weight_on_input: scale each row's input by its weight instead of its output.
        num_experts: global experts; default router_logits.shape[-1], else expert_map.shape[0], else
            weights.num_experts.
        gemm1_config, gemm2_config: optional kernel overrides from gemm_config_names().
        path: "staged" (one launch per stage), "one_launch" (the whole layer in one launch: 1..8 tokens, from
            router_logits at most 512 experts; the staged path's roundings) or "auto" (one launch where it
            measured faster, by the rule of MoePath::kAuto in include/w4a8moe/moe.h; kernel overrides stage it).

    Returns:
        [T, H] of hidden's dtype.
    """
    if path not in _PATHS:
        raise ValueError(f"fused_moe: path must be one of {', '.join(_PATHS)}, got {path!r}")
    if num_experts is None:
        if router_logits is not None:
            num_experts = router_logits.shape[-1]
        elif expert_map is not None:
            num_experts = expert_map.shape[0]
        else:
            num_experts = weights.num_experts
    return torch.ops.w4a8moe.moe_forward(
        hidden, weights.gemm1, weights.gemm2, router_logits, topk_ids, topk_weights, expert_map, num_experts,
        weights.num_experts, top_k, weights.intermediate_size, renormalize, apply_router_weight_on_input,
        gemm1_config, gemm2_config, _PATHS[path])
