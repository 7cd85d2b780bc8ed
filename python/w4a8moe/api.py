"""The Python API over torch.ops.w4a8moe: weight prepacking at load time, the fused MoE layer and its pieces.

Numerics (per expert e, output channel n, input k; group size 128):

    W[e, n, k] = q[e, n, k] * s[e, n, k // 128]          the checkpoint's int4 q in [-8, 7] and bf16 scale s
    out[m, n]  = st[m] * sc[e, n] * sum_k a[m, k] * e4m3(q[e, n, k] * sg[e, n, k // 128])

where a and st are the per-token fp8 activations and fp32 scale (quantize_per_token_fp8), and prepacking splits s
into an e4m3 group scale sg and an fp32 channel scale sc (see include/w4a8moe/prepack.h). That is the default
packed layout, "lookup". The layout "exact" (prepack_weights(..., layout="exact")) keeps the products unrounded,

    out[m, n]  = st[m] * sum_k a[m, k] * q[e, n, k] * s[e, n, k // 128]

with the bf16 scales applied per group in fp32; its kernels are faster at 1-128 tokens and slower beyond (the
README says where). The layout "mxfp4" takes MXFP4 experts (gpt-oss: e2m1 codes c with one e8m0 scale e per 32 k),

    out[m, n]  = st[m] * sum_k a[m, k] * e2m1(c[e, n, k]) * 2^(e[e, n, k // 32] - 127)  (+ bias[e, n])

exact in the products (blocks more than 2^11 below their channel's largest are rounded at prepack), and with it the
layer's gpt-oss activation and expert biases. The run-time ops tell the
layouts apart by the packed buffer's size, or by the layout they are given (PackedMoeWeights passes its own).
"""

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch

E4M3_MAX = 448.0


def packed_weights_bytes(num_experts: int, n: int, k: int, layout: str = "lookup") -> int:
    """Bytes of the packed buffer for E experts of [N, K] weights in `layout` ("lookup", "exact" or "mxfp4").
    Raises ValueError if the shape breaks a rule (N and K positive multiples of 16, for "mxfp4" K a multiple of 32,
    one expert's N * padded_k(K) below 2^31; a K off whole 128-groups is packed with zero weights up to padded_k(K),
    the multiple of 128 above it) or the layout is unknown."""
    return torch.ops.w4a8moe.packed_weights_bytes(num_experts, n, k, layout)


def packed_weights_shape(packed: torch.Tensor) -> tuple:
    """(E, N, K, layout) of a packed buffer, read from its header after checking magic, format version and size:
    the check to run on a packed buffer loaded back from disk. layout is the name it was packed in ("lookup",
    "exact" or "mxfp4"), to pass on as PackedMoeWeights.layout or grouped_gemm's layout. packed: uint8 [bytes] on
    the CPU."""
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
        weights: on the GPU, for the int4 layouts either
            int32 [E, N, K/8]: the compressed-tensors checkpoint layout; nibble i of word j holds q + 8 for
                k = 8j + i, q in [-8, 7];
            uint8 [E, N, K/2]: two's-complement int4, the low nibble holding the even k;
            for layout "mxfp4", MXFP4 codes: uint8 [E, N, K/32, 16] (gpt-oss's *_blocks) or the same bytes as
                [E, N, K/2]; two e2m1 codes a byte (sign bit 3), the low nibble holding the even k.
        group_scales: for the int4 layouts either bfloat16 [E, N, ceil(K/128)], the checkpoint's weight_scale
            (W = q * s), or float8_e4m3fn [E, N, ceil(K/128)] with |sg| <= 56, together with channel_scales
            (W = q * sg * sc); for "mxfp4" the e8m0 block scales, uint8 or float8_e8m0fnu [E, N, K/32]
            (W = e2m1 * 2^(e - 127); 255 is refused, 0 taken as zero).
        channel_scales: float32 [E, N]; with float8_e4m3fn group_scales only (the library refuses them otherwise).
        layout: "lookup" (the default: e4m3(q * s / sc) through a lookup table, every kernel config), "exact" (the
            products q * s unrounded, bf16 group scales; faster at decode, slower at prefill) or "mxfp4".

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
    layout: the packed layout of both ("lookup", "exact" or "mxfp4").
    gemm1_bias, gemm2_bias: optional float32 [E, 2 * intermediate_size] and [E, hidden_size], the experts' biases
        in the rows' order (layout "mxfp4" only).

    A plain container: fused_moe() passes its fields to the op, which checks the tensors, and the library checks
    the buffers' sizes against the shapes and the layout (buffers swapped or packed for another shape) and the
    biases against the layout.
    """

    gemm1: torch.Tensor
    gemm2: torch.Tensor
    num_experts: int
    hidden_size: int
    intermediate_size: int
    layout: str = "lookup"
    gemm1_bias: Optional[torch.Tensor] = None
    gemm2_bias: Optional[torch.Tensor] = None


def _unpacked_k(weights: torch.Tensor, name: str) -> int:
    if weights.dim() == 4 and weights.dtype == torch.uint8:  # MXFP4 blocks [E, N, K/32, 16]
        return weights.shape[2] * 32
    if weights.dim() != 3:
        raise ValueError(f"{name} must be 3-D [E, N, K/8] (int32) or [E, N, K/2] (uint8), or MXFP4 blocks "
                         f"[E, N, K/32, 16] (uint8), got {tuple(weights.shape)}")
    if weights.dtype == torch.int32:
        return weights.shape[2] * 8
    if weights.dtype == torch.uint8:
        return weights.shape[2] * 2
    raise TypeError(f"{name} must be int32 [E, N, K/8] or uint8 [E, N, K/2], got {weights.dtype}")


def gate_up_rows_in_layer_order(t: torch.Tensor) -> torch.Tensor:
    """gpt-oss's GEMM1 rows (blocks, scales or biases; dim 1 holds 2I rows interleaved, gate 2i and up 2i + 1) in
    the order prepack_moe_weights takes: the gate rows [0, I), then the up rows [I, 2I). Returns a new tensor."""
    if t.dim() < 2 or t.shape[1] % 2 != 0:
        raise ValueError(f"gate_up_rows_in_layer_order: dim 1 must hold 2I interleaved rows, got {tuple(t.shape)}")
    return torch.cat([t[:, 0::2], t[:, 1::2]], dim=1).contiguous()


def _bias(bias: Optional[torch.Tensor], weights: torch.Tensor) -> Optional[torch.Tensor]:
    # float32 on the weights' device, as the op reads it; which layouts take biases is the library's rule, checked
    # when the layer runs.
    if bias is None:
        return None
    return bias.to(device=weights.device, dtype=torch.float32).contiguous()


def prepack_moe_weights(w13_weight: torch.Tensor, w13_scale: torch.Tensor, w2_weight: torch.Tensor,
                        w2_scale: torch.Tensor, w13_channel_scale: Optional[torch.Tensor] = None,
                        w2_channel_scale: Optional[torch.Tensor] = None, layout: str = "lookup",
                        w13_bias: Optional[torch.Tensor] = None,
                        w2_bias: Optional[torch.Tensor] = None) -> PackedMoeWeights:
    """Packs a MoE layer's experts for fused_moe(). Load time only (see prepack_weights).

    Args:
        w13_weight: gate and up stacked for GEMM1, [E, 2I, H/8] int32 (checkpoint layout) or [E, 2I, H/2] uint8;
            rows [0, I) of each expert are gate_proj, rows [I, 2I) up_proj (the vLLM w13 order). Layout "mxfp4":
            MXFP4 codes [E, 2I, H/32, 16] or [E, 2I, H/2] uint8 in the same row order (gpt-oss interleaves gate
            and up: gate_up_rows_in_layer_order() reorders its blocks, scales and bias).
        w13_scale: [E, 2I, ceil(H/128)], bfloat16 (checkpoint weight_scale) or float8_e4m3fn with
            w13_channel_scale; layout "mxfp4": e8m0 [E, 2I, H/32], uint8 or float8_e8m0fnu.
        w2_weight: down_proj for GEMM2, [E, H, I/8] int32 or [E, H, I/2] uint8 ("mxfp4": [E, H, I/32, 16] or
            [E, H, I/2]).
        w2_scale: [E, H, ceil(I/128)], bfloat16 or float8_e4m3fn with w2_channel_scale ("mxfp4": [E, H, I/32]).
        w13_channel_scale, w2_channel_scale: float32 [E, 2I] and [E, H]; only with float8_e4m3fn scales.
        layout: the packed layout, "lookup", "exact" or "mxfp4" (see prepack_weights).
        w13_bias, w2_bias: optional expert biases [E, 2I] and [E, H], float32 or bfloat16 (kept as float32 on the
            weights' device), with layout "mxfp4" only (fused_moe raises ValueError otherwise); w13_bias in
            w13_weight's row order.

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
        gemm1_bias=_bias(w13_bias, w13_weight),
        gemm2_bias=_bias(w2_bias, w2_weight),
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
                 config: Optional[str] = None, bias: Optional[torch.Tensor] = None,
                 layout: Optional[str] = None) -> torch.Tensor:
    """The W4A8 grouped GEMM: for each expert e and row m in [expert_offsets[e], expert_offsets[e + 1]),

        out[m, :] = token_scales[m] * sc[e, :] * (act[m, :] @ e4m3(q[e] * sg[e]).T)

    (in layout "exact" and "mxfp4" with the module docstring's products, plus bias[e, :] if given).

    Enqueued on the current stream with no host synchronisation (CUDA-graph capturable).

    Args:
        act: float8_e4m3fn [rows, padded_k(K)], rows grouped by expert, 16-byte aligned: K rounded up to a multiple
            of 128, the columns past K zero (torch.nn.functional.pad the input before quantize_per_token_fp8).
        token_scales: float32 [rows].
        expert_offsets: int64 [E + 1] on the GPU, non-decreasing, expert_offsets[E] <= rows.
        packed_weights: uint8 from prepack_weights for E experts of [n, K], any layout.
        n: output channels of each expert.
        out_dtype: torch.bfloat16 or torch.float16.
        config: optional kernel name from gemm_config_names(layout); None picks one by heuristic.
        bias: optional float32 [E, n], each expert's bias added to its rows (layout "mxfp4" only).
        layout: the layout packed_weights was packed in; None tells it by the buffer's size (an error names the
            layouts where two of them give the same size, which happens for some small shapes).

    Returns:
        [rows, n] of out_dtype. Rows outside [expert_offsets[0], expert_offsets[E]) are not written (their values
        are whatever the allocator held).
    """
    return torch.ops.w4a8moe.grouped_gemm(act, token_scales, expert_offsets, packed_weights, n, out_dtype, config,
                                          bias, layout)


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


def fused_moe(hidden: torch.Tensor, router_logits: Optional[torch.Tensor] = None,
              topk_ids: Optional[torch.Tensor] = None, topk_weights: Optional[torch.Tensor] = None, *,
              weights: PackedMoeWeights, top_k: int, renormalize: bool = True,
              expert_map: Optional[torch.Tensor] = None, apply_router_weight_on_input: bool = False,
              num_experts: Optional[int] = None, gemm1_config: Optional[str] = None,
              gemm2_config: Optional[str] = None, path: str = "auto", activation: str = "silu",
              swiglu_limit: float = 7.0) -> torch.Tensor:
    """The W4A8 MoE layer: routing, per-token fp8 quantisation, GEMM1 (gate, up; + bias), SiLU(gate) * up or
    gpt-oss's SwiGLU, fp8 requantisation, GEMM2 (down; + bias), and the top-k weighted sum. All on the current
    stream, no host synchronisation: capturable in a CUDA graph and traceable by torch.compile.

    Routing: give either router_logits (softmax over the experts, top-k, ties to the lower id, the top-k weights
    divided by their sum if renormalize) or precomputed topk_ids and topk_weights.

    Args:
        hidden: [T, H] bfloat16 or float16, contiguous, 16-byte aligned.
        router_logits: float32, bfloat16 or float16 [T, num_experts]. The layer reads float32 and bfloat16;
            float16 logits are converted with .float() first (one more op on the stream, capturable like the rest).
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
            router_logits at most 512 experts; the staged path's roundings) or "auto" (one launch only on an
            expert-parallel rank likely to get no token, where it is faster on average, by the rule of
            MoePath::kAuto in include/w4a8moe/moe.h; kernel overrides stage it).
            Layout "mxfp4" runs staged.
        activation: "silu" (SiLU(gate) * up) or "gpt_oss_swiglu" (gpt-oss's: gate clamped above at swiglu_limit,
            up to [-swiglu_limit, swiglu_limit], gate * sigmoid(1.702 gate) * (up + 1); layout "mxfp4").
        swiglu_limit: the clamp of "gpt_oss_swiglu" (gpt-oss: 7).

    Returns:
        [T, H] of hidden's dtype.
    """
    if router_logits is not None and router_logits.dtype == torch.float16:
        router_logits = router_logits.float()
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
        gemm1_config, gemm2_config, path, activation, swiglu_limit, weights.gemm1_bias,
        weights.gemm2_bias, weights.layout)
