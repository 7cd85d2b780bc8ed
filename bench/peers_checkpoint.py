"""peers_bench's weights and ground truth for the int4 models: one rank's experts as a compressed-tensors int4
checkpoint (random bf16 weights quantised round to nearest, symmetric, group 128), its packing and dequantisation, and
the fp32 reference layer and grouped GEMMs computed from the dequantised weights. (gpt-oss's MXFP4 experts:
peers_gpt_oss.py.)"""

from dataclasses import dataclass

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_model import DEVICE  # (beside this file)

GROUP = 128


# --- The checkpoint: compressed-tensors int4, group 128 -----------------------------------------------------------

@dataclass
class Checkpoint:
    """One rank's experts in the compressed-tensors layout (what vLLM's weight loader hands each method)."""
    w13: "torch.Tensor"  # int32 [E, 2I, H/8]: gate rows [0, I), up rows [I, 2I)
    s13: "torch.Tensor"  # bf16 [E, 2I, H/128]
    w2: "torch.Tensor"  # int32 [E, H, I/8]
    s2: "torch.Tensor"  # bf16 [E, H, I/128]


def quantize_int4(w):
    """Round to nearest, symmetric, group 128: [..., N, K] -> (q int8 [..., N, K] in [-7, 7], s bf16 [..., N, K/128]).
    q is computed from the bf16 scale, so that q * s is the checkpoint's weight."""
    groups = w.float().reshape(*w.shape[:-1], -1, GROUP)
    scales = (groups.abs().amax(-1) / 7).to(torch.bfloat16)
    s = scales.float().unsqueeze(-1)
    q = torch.where(s > 0, torch.round(groups / s), torch.zeros_like(groups)).clamp(-8, 7)
    return q.to(torch.int8).reshape(w.shape), scales


def pack_int4(q):
    """int8 [..., K] in [-8, 7] -> int32 [..., K/8], nibble i of word j = q[8j + i] + 8. Built as bytes whose low
    nibble holds the even k, which little-endian int32 words read as nibbles 0..7 in k order."""
    nibbles = (q.to(torch.int16) + 8).to(torch.uint8).reshape(*q.shape[:-1], -1, 2)
    return (nibbles[..., 0] | (nibbles[..., 1] << 4)).contiguous().view(torch.int32)


def unpack_int4(words):
    """int32 [..., K/8] checkpoint words -> int8 [..., K] in [-8, 7] (the inverse of pack_int4)."""
    data = words.contiguous().view(torch.uint8)
    nibbles = torch.stack((data & 15, data >> 4), dim=-1).reshape(*data.shape[:-1], -1)
    return nibbles.to(torch.int8) - 8


def dequantize(words, scales):
    """W = q * s in fp32: [..., N, K]. Exact: a bf16 scale times a 4-bit integer fits fp32's mantissa."""
    q = unpack_int4(words).float()
    return (q.reshape(*q.shape[:-1], -1, GROUP) * scales.float().unsqueeze(-1)).reshape(q.shape)


def make_checkpoint(spec, generator):
    """Random bf16 weights (std 0.02) quantised expert by expert, on the GPU."""
    e, h, i = spec.local_experts, spec.hidden, spec.inter
    ckpt = Checkpoint(
        w13=torch.empty(e, 2 * i, h // 8, dtype=torch.int32, device=DEVICE),
        s13=torch.empty(e, 2 * i, h // GROUP, dtype=torch.bfloat16, device=DEVICE),
        w2=torch.empty(e, h, i // 8, dtype=torch.int32, device=DEVICE),
        s2=torch.empty(e, h, i // GROUP, dtype=torch.bfloat16, device=DEVICE))
    for expert in range(e):
        for words, scales, (n, k) in ((ckpt.w13, ckpt.s13, (2 * i, h)), (ckpt.w2, ckpt.s2, (h, i))):
            w = (torch.randn(n, k, device=DEVICE, generator=generator) * 0.02).to(torch.bfloat16)
            q, s = quantize_int4(w)
            words[expert] = pack_int4(q)
            scales[expert] = s
    return ckpt


def bytes_per_expert(spec):
    """What reading one expert once costs in the w4a8moe format: int4 weights, one byte per group scale, a 4-byte
    channel scale per output channel, both GEMMs."""
    weights = 3 * spec.hidden * spec.inter  # 2I x H + H x I
    return weights // 2 + weights // GROUP + 4 * (2 * spec.inter + spec.hidden)


# --- The fp32 reference --------------------------------------------------------------------------------------------

class Reference:
    """fp32 ground truth from the dequantised checkpoint (W = q * s)."""

    def __init__(self, spec, ckpt):
        self.spec = spec
        self.w13 = dequantize(ckpt.w13, ckpt.s13)  # fp32 [E, 2I, H]
        self.w2 = dequantize(ckpt.w2, ckpt.s2)  # fp32 [E, H, I]

    @staticmethod
    def grouped(weights, x, experts):
        """Row r times weights[experts[r]]^T: fp32 [r, K] -> [r, N]."""
        out = x.new_empty(x.shape[0], weights.shape[1])
        for e in experts.unique().tolist():
            rows = (experts == e).nonzero().squeeze(1)
            out[rows] = x[rows] @ weights[e].T
        return out

    def layer(self, case, tokens):
        """The layer's output fp32 [len(tokens), H] for the given tokens: fp32 activations, SiLU(gate) * up, the
        top-k weighted sum over this rank's experts."""
        ids = case.local_ids[tokens]
        token, slot = (ids >= 0).nonzero(as_tuple=True)
        experts = ids[token, slot]
        gate_up = self.grouped(self.w13, case.hidden[tokens][token].float(), experts)
        mid = torch.nn.functional.silu(gate_up[:, :self.spec.inter]) * gate_up[:, self.spec.inter:]
        down = self.grouped(self.w2, mid, experts) * case.topk_weights[tokens][token, slot].unsqueeze(1)
        return torch.zeros(tokens.shape[0], self.spec.hidden, device=DEVICE).index_add_(0, token, down)

    def gemm_weights(self, level):
        return self.w13 if level == "gemm1" else self.w2

    def gemm(self, level, x, experts):
        """A grouped GEMM's fp32 rows: row r of x times the weights of expert experts[r]."""
        return self.grouped(self.gemm_weights(level), x, experts)


def relative_error(out, ref):
    diff = (out.float() - ref).norm().item()
    scale = ref.norm().item()
    return diff / scale if scale > 0 else diff
