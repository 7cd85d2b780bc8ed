"""peers_bench's gpt-oss weights and ground truth: one layer's experts as a gpt-oss MXFP4 checkpoint (random e2m1
codes, e8m0 scales one per 32 inputs, bf16 biases, GEMM1's gate and up rows interleaved), its dequantisation, and the
fp32 reference layer (gpt-oss's clamped SwiGLU, the expert biases) and grouped GEMMs computed from the dequantised
weights."""

from dataclasses import dataclass

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_model import DEVICE  # (beside this file)

MXFP4_BLOCK = 32  # inputs sharing one e8m0 scale
E8M0_BIAS = 127
SWIGLU_ALPHA = 1.702
SWIGLU_LIMIT = 7.0
# e2m1 magnitudes by code (bits 0-2); bit 3 is the sign.
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Scale bytes drawn uniform in [118, 123): scales 2^-9 .. 2^-5. With uniform codes (rms 2.9) and unit hidden states
# that keeps GEMM1's outputs near rms 2.5, so gpt-oss's clamp at 7 bites rarely (under 1 % of gate and up values) and
# the biases (BIAS_STD) stay visible in the outputs, as in the real model; 2^-7 .. 2^-3 would clamp half the up
# values and drown the biases.
SCALE_BYTES = (118, 123)
BIAS_STD = 0.1  # as the library's own MXFP4 tests and random gpt-oss layers draw them


# --- The checkpoint: gpt-oss's MXFP4 tensors ----------------------------------------------------------------------

@dataclass
class Mxfp4Checkpoint:
    """One layer's experts as gpt-oss ships them (what each method's loader starts from). Codes: two e2m1 a byte,
    the low nibble holding the even k; W = e2m1 * 2^(scale - 127)."""
    w13_blocks: "torch.Tensor"  # uint8 [E, 2I, H/32, 16]: gate_up_proj_blocks, rows interleaved (gate 2i, up 2i + 1)
    w13_scales: "torch.Tensor"  # uint8 [E, 2I, H/32]: gate_up_proj_scales
    w13_bias: "torch.Tensor"  # bf16 [E, 2I]: gate_up_proj_bias, rows interleaved
    w2_blocks: "torch.Tensor"  # uint8 [E, H, I/32, 16]: down_proj_blocks
    w2_scales: "torch.Tensor"  # uint8 [E, H, I/32]
    w2_bias: "torch.Tensor"  # bf16 [E, H]


def make_mxfp4_checkpoint(spec, generator):
    """Uniform random codes (every e2m1 value and sign equally likely), scale bytes in SCALE_BYTES and small bf16
    biases, on the GPU."""
    e, h, i = spec.local_experts, spec.hidden, spec.inter

    def codes(n, k):
        return torch.randint(0, 256, (e, n, k // MXFP4_BLOCK, MXFP4_BLOCK // 2), dtype=torch.uint8, device=DEVICE,
                             generator=generator)

    def scales(n, k):
        return torch.randint(*SCALE_BYTES, (e, n, k // MXFP4_BLOCK), dtype=torch.uint8, device=DEVICE,
                             generator=generator)

    def bias(n):
        return (torch.randn(e, n, device=DEVICE, generator=generator) * BIAS_STD).to(torch.bfloat16)

    return Mxfp4Checkpoint(w13_blocks=codes(2 * i, h), w13_scales=scales(2 * i, h), w13_bias=bias(2 * i),
                           w2_blocks=codes(h, i), w2_scales=scales(h, i), w2_bias=bias(h))


def gate_up_in_layer_order(t):
    """dim 1's 2I interleaved rows (gate 2i, up 2i + 1) as gate rows [0, I), then up rows [I, 2I): the order the
    reference keeps (and the one w4a8moe packs). Works for blocks, scales, biases and [rows, 2I] GEMM outputs."""
    pairs = t.unflatten(1, (t.shape[1] // 2, 2))
    return pairs.transpose(1, 2).flatten(1, 2)


def e2m1_values(device):
    """fp32 [16]: the value of each e2m1 code."""
    magnitudes = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32, device=device)
    return torch.cat((magnitudes, -magnitudes))


def dequantize_mxfp4(blocks, scales):
    """W = e2m1 * 2^(s - 127) in fp32: blocks uint8 [E, N, K/32, 16], scales uint8 [E, N, K/32] -> [E, N, K]. Exact:
    an e2m1 value times a power of two fits fp32. Expert by expert, to keep the index temporaries small."""
    e, n, groups, _ = blocks.shape
    values = e2m1_values(blocks.device)
    out = torch.empty(e, n, groups * MXFP4_BLOCK, dtype=torch.float32, device=blocks.device)
    for expert in range(e):
        data = blocks[expert]
        codes = torch.stack((data & 15, data >> 4), dim=-1).reshape(n, groups, MXFP4_BLOCK)  # low nibble: even k
        scale = torch.exp2(scales[expert].float() - E8M0_BIAS).unsqueeze(-1)
        out[expert] = (values[codes.long()] * scale).reshape(n, -1)
    return out


def mxfp4_bytes_per_expert(spec):
    """What reading one expert once costs in the checkpoint's format: 0.5 byte per e2m1 weight, one e8m0 byte per 32
    weights, the bf16 biases (2I + H), both GEMMs."""
    weights = 3 * spec.hidden * spec.inter  # 2I x H + H x I
    return weights // 2 + weights // MXFP4_BLOCK + 2 * (2 * spec.inter + spec.hidden)


def gpt_oss_swiglu(gate, up):
    """gpt-oss's activation: g' = min(g, 7), u' = clamp(u, -7, 7), g' * sigmoid(1.702 g') * (u' + 1)."""
    gate = gate.clamp(max=SWIGLU_LIMIT)
    up = up.clamp(-SWIGLU_LIMIT, SWIGLU_LIMIT)
    return gate * torch.sigmoid(SWIGLU_ALPHA * gate) * (up + 1)


# --- The fp32 reference --------------------------------------------------------------------------------------------

class GptOssReference:
    """fp32 ground truth from the dequantised checkpoint (W = e2m1 * 2^(s - 127), the biases in fp32), GEMM1's rows in
    layer order: gate rows, then up rows."""

    def __init__(self, spec, ckpt):
        self.spec = spec
        self.w13 = dequantize_mxfp4(gate_up_in_layer_order(ckpt.w13_blocks), gate_up_in_layer_order(ckpt.w13_scales))
        self.b13 = gate_up_in_layer_order(ckpt.w13_bias).float()  # [E, 2I]
        self.w2 = dequantize_mxfp4(ckpt.w2_blocks, ckpt.w2_scales)  # fp32 [E, H, I]
        self.b2 = ckpt.w2_bias.float()  # [E, H]

    @staticmethod
    def grouped(weights, bias, x, experts):
        """Row r times weights[experts[r]]^T plus bias[experts[r]]: fp32 [r, K] -> [r, N]."""
        out = x.new_empty(x.shape[0], weights.shape[1])
        for e in experts.unique().tolist():
            rows = (experts == e).nonzero().squeeze(1)
            out[rows] = x[rows] @ weights[e].T + bias[e]
        return out

    def gemm(self, level, x, experts):
        """A grouped GEMM's fp32 rows (GEMM1's columns: gate, then up) with the bias."""
        weights, bias = (self.w13, self.b13) if level == "gemm1" else (self.w2, self.b2)
        return self.grouped(weights, bias, x, experts)

    def layer(self, case, tokens):
        """The layer's output fp32 [len(tokens), H] for the given tokens: fp32 activations, gpt-oss's SwiGLU, the
        top-k weighted sum of (down + bias) over this rank's experts."""
        ids = case.local_ids[tokens]
        token, slot = (ids >= 0).nonzero(as_tuple=True)
        experts = ids[token, slot]
        gate_up = self.gemm("gemm1", case.hidden[tokens][token].float(), experts)
        mid = gpt_oss_swiglu(gate_up[:, :self.spec.inter], gate_up[:, self.spec.inter:])
        down = self.gemm("gemm2", mid, experts) * case.topk_weights[tokens][token, slot].unsqueeze(1)
        return torch.zeros(tokens.shape[0], self.spec.hidden, device=DEVICE).index_add_(0, token, down)
