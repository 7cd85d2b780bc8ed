"""PyTorch references for the MXFP4 layout (gpt-oss's experts), independent of the library: MXFP4 weights drawn and
dequantised here, the grouped GEMM in float64, and gpt-oss's layer in the staged path's roundings.

MXFP4: two e2m1 codes a byte (sign bit 3, magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}), the low nibble holding the even
k, and one e8m0 scale e per 32 k: W = e2m1 * 2^(e - 127).
"""

import torch

import w4a8_reference as ref

E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
BLOCK = 32


class Mxfp4Experts:
    """E experts of [N, K] MXFP4 weights: codes uint8 [E, N, K/2], e8m0 scales uint8 [E, N, K/32], and optional
    float32 biases [E, N]."""

    def __init__(self, codes, scales, bias=None):
        self.codes, self.scales, self.bias = codes, scales, bias
        self.shape = (codes.shape[0], codes.shape[1], codes.shape[2] * 2)

    def weights(self):
        """float32 [E, N, K], the dequantised values."""
        return dequantize(self.codes, self.scales)


def random_experts(num_experts, n, k, generator, scale_exponents=(118, 124), with_bias=True):
    """Random codes (every byte equally likely), scales 2^-9..2^-3 by default, biases N(0, 0.1^2)."""
    codes = torch.randint(0, 256, (num_experts, n, k // 2), dtype=torch.uint8, device="cuda", generator=generator)
    low, high = scale_exponents
    scales = torch.randint(low, high + 1, (num_experts, n, k // BLOCK), dtype=torch.uint8, device="cuda",
                           generator=generator)
    bias = torch.randn(num_experts, n, device="cuda", generator=generator) * 0.1 if with_bias else None
    return Mxfp4Experts(codes, scales, bias)


def dequantize(codes, scales):
    """codes uint8 [E, N, K/2], e8m0 scales uint8 [E, N, K/32] -> float32 [E, N, K]."""
    table = torch.tensor(E2M1_MAGNITUDES + tuple(-m for m in E2M1_MAGNITUDES), device=codes.device)
    nibbles = torch.stack([codes & 0xF, codes >> 4], dim=-1).flatten(-2).long()  # low nibble first: even k
    values = table[nibbles]
    # e8m0 0 stands for 2^-127, which the library takes as zero (its weights are below 6 * 2^-127).
    block_scale = torch.where(scales == 0, torch.zeros_like(scales, dtype=torch.float64),
                              torch.exp2(scales.double() - 127)).float()
    return values * block_scale.repeat_interleave(BLOCK, dim=-1)


def padded_activations(x):
    """Per-row fp8 activations with K padded with zero columns to a multiple of 128, as grouped_gemm takes them."""
    k = x.shape[1]
    padded = torch.nn.functional.pad(x.float(), (0, -k % 128))
    return ref.quantize_rows(padded)


def grouped_gemm(experts: Mxfp4Experts, act, token_scales, offsets, bias=None):
    """float64 out [rows, N] (+ bias) and the bound's magnitude st * sum_k |a w|; rows of no expert are NaN."""
    rows, n = act.shape[0], experts.shape[1]
    k = experts.shape[2]
    out = torch.full((rows, n), float("nan"), dtype=torch.float64, device=act.device)
    magnitude = torch.zeros_like(out)
    weights = experts.weights()
    for e, (begin, end) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        if begin == end:
            continue
        a = act[begin:end, :k].double()
        w = weights[e].double()
        scale = token_scales[begin:end].double()[:, None]
        out[begin:end] = (a @ w.T) * scale + (0 if bias is None else bias[e].double()[None, :])
        magnitude[begin:end] = (a.abs() @ w.abs().T) * scale.abs()
    return out, magnitude


def gpt_oss_swiglu(gate_up, inter, limit):
    """gpt-oss's clamped SwiGLU on GEMM1's rows (gate [0, I), up [I, 2I)), in fp32."""
    gate = gate_up[:, :inter].clamp(max=limit)
    up = gate_up[:, inter:].clamp(-limit, limit)
    return gate * torch.sigmoid(1.702 * gate) * (up + 1)


def gpt_oss_layer(hidden, topk_ids, topk_weights, gemm1: Mxfp4Experts, gemm2: Mxfp4Experts, num_experts,
                  expert_map=None, swiglu_limit=7.0):
    """The layer's output [T, H] in hidden's dtype, in the staged path's roundings: per-token fp8 activations,
    GEMM1 + bias rounded to the activation type, gpt-oss's SwiGLU in fp32, per-row fp8 requantisation, GEMM2 + bias
    rounded, weighted sum over the slots in fp32."""
    tokens, top_k = topk_ids.shape
    inter = gemm2.shape[2]
    act1, token_scale = padded_activations(hidden)
    w1, w2 = gemm1.weights(), gemm2.weights()
    local = ref.local_expert_ids(topk_ids, num_experts, gemm1.shape[0], expert_map)
    slot_out = torch.zeros(tokens, top_k, hidden.shape[1], device=hidden.device)

    def expert_rows(w, bias, act, scales):
        product = act[:, :w.shape[1]].double() @ w.double().T
        return (product * scales.double()[:, None] + bias.double()[None, :]).float().to(hidden.dtype).float()

    for e in torch.unique(local[local >= 0]).tolist():
        token, slot = torch.nonzero(local == e, as_tuple=True)
        gate_up = expert_rows(w1[e], gemm1.bias[e], act1[token], token_scale[token])
        act2, scale2 = padded_activations(gpt_oss_swiglu(gate_up, inter, swiglu_limit))
        down = expert_rows(w2[e], gemm2.bias[e], act2, scale2)
        slot_out[token, slot] = down * topk_weights[token, slot].float()[:, None]
    total = torch.zeros(tokens, hidden.shape[1], device=hidden.device)
    for j in range(top_k):  # the slots in order, as the unpermute sums them
        total += slot_out[:, j]
    return total.to(hidden.dtype)
