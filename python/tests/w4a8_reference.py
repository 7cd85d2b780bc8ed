"""Ground truth for the tests in plain PyTorch, written from include/w4a8moe/*.h and src/prepack/packed_format.h
rather than from the extension: the weight formats, the packed buffer, routing, the grouped GEMM and the MoE layer
with the pipeline's own roundings (the same steps as src/reference/moe_reference.cpp).
"""

import math
import struct

import pytest
import torch

GROUP = 128
E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
MIN_TABLE_STEP = 2.0 ** -6  # prepack::kMinTableStep: e4m3's smallest normal number
PACKED_FORMAT_VERSION = 5


def hopper_available() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


requires_hopper = pytest.mark.skipif(not hopper_available(), reason="needs a Hopper GPU (sm_90)")


def true_div(numerator: float, tensor: torch.Tensor) -> torch.Tensor:
    # PyTorch divides by a Python scalar as a multiplication by its reciprocal; the kernels divide. A tensor
    # operand gives the correctly rounded quotient, so the reference rounds exactly as the kernels do.
    return torch.full_like(tensor, numerator) / tensor


# --- Weights --------------------------------------------------------------------------------------------------------

def random_experts(num_experts, n, k, generator, device="cuda"):
    """int4 values q int8 [E, N, K] in [-8, 7] and bf16 checkpoint scales [E, N, K/128]: a lognormal spread over
    channels, a uniform one over groups (as tests/common/test_data.cpp draws them)."""
    q = torch.randint(-8, 8, (num_experts, n, k), dtype=torch.int8, device=device, generator=generator)
    channel = torch.exp(torch.randn(num_experts, n, 1, device=device, generator=generator) * 0.8 + math.log(0.01))
    group = torch.rand(num_experts, n, k // GROUP, device=device, generator=generator) * 0.75 + 0.25
    return q, (channel * group).to(torch.bfloat16)


def pack_offset_binary(q):
    """The checkpoint layout: int32 [E, N, K/8], nibble i of word j holds q + 8 for k = 8j + i."""
    nibbles = q.reshape(*q.shape[:-1], -1, 8)
    words = torch.zeros(nibbles.shape[:-1], dtype=torch.int32, device=q.device)
    for i in range(8):  # nibble 7 lands in the sign bit: int32 shifts wrap, which is the bit pattern wanted
        words |= (nibbles[..., i].to(torch.int32) + 8) << (4 * i)
    return words


def pack_signed_int4(q):
    """Two's-complement int4, two per byte, the low nibble holding the even k: uint8 [E, N, K/2]."""
    pairs = (q.to(torch.int16) & 0xF).reshape(*q.shape[:-1], -1, 2)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).to(torch.uint8)


def split_bf16_scales(scales):
    """Per output channel: c = max|s| / 448, the tables' step s / c / 8 (each table entry e4m3(q * step), rounded
    once), sg = e4m3(step), sc = 8c (an all-zero row gives zeros). Returns sg, sc and the step."""
    s = scales.float()
    c = s.abs().amax(-1, keepdim=True) / torch.full_like(s[..., :1], E4M3_MAX)
    step = torch.where(c > 0, s / c / 8, torch.zeros_like(s))
    return step.to(E4M3), (8 * c).squeeze(-1), step


def bounded_table_step(step):
    """The step a table is built from: at least e4m3's smallest normal number in magnitude (zero steps too), so
    every entry is normal and the tables' odd entries rebuild them (prepack::bounded_table_step)."""
    step = step.float()
    return torch.where(step.abs() < MIN_TABLE_STEP, torch.copysign(torch.full_like(step, MIN_TABLE_STEP), step), step)


def dequantized_weights(q, step):
    """The values the kernel multiplies, e4m3(q * step) as float32 [E, N, K] (channel scale not applied); step
    [E, N, K/128] float32: the split's unrounded step, or the caller's e4m3 group scales as floats, bounded as the
    tables are built."""
    return (q.float() * bounded_table_step(step).repeat_interleave(GROUP, dim=-1)).to(E4M3).float()


class QuantizedExperts:
    """One projection's experts: q, the checkpoint's bf16 scales and their split (e4m3 group scales, fp32 channel
    scales, the tables' unrounded steps)."""

    def __init__(self, num_experts, n, k, generator):
        self.shape = (num_experts, n, k)
        self.q, self.bf16_scales = random_experts(num_experts, n, k, generator)
        self.group_scale, self.channel_scale, self.table_step = split_bf16_scales(self.bf16_scales)
        self._weights = None

    def weights(self, layout="lookup"):
        """The values the kernels multiply, float32 [E, N, K], computed once per layout: e4m3(q * step) for "lookup"
        (the channel scale applied after), q * s with the checkpoint's bf16 s for "exact" (channel_scales() 1)."""
        if self._weights is None:
            self._weights = {}
        if layout not in self._weights:
            self._weights[layout] = (dequantized_weights(self.q, self.table_step) if layout == "lookup" else
                                     self.q.float() * self.bf16_scales.float().repeat_interleave(GROUP, dim=-1))
        return self._weights[layout]

    def channel_scales(self, layout="lookup"):
        return self.channel_scale if layout == "lookup" else torch.ones_like(self.channel_scale)


# --- The packed buffer (format version 5) ---------------------------------------------------------------------------

def _align(value, alignment=256):
    return (value + alignment - 1) // alignment * alignment


def packed_sections(num_experts, n, k):
    header = 256
    group_scales = _align(header + num_experts * n * k // 2)
    odd_tables = _align(group_scales + num_experts * (k // GROUP) * n * 8)
    channel_scales = _align(odd_tables + num_experts * (k // GROUP) * n * 4)
    layouts = _align(channel_scales + num_experts * n * 4)
    total = _align(layouts + num_experts * 12)
    return {"weights": header, "group_scales": group_scales, "odd_tables": odd_tables,
            "channel_scales": channel_scales, "layouts": layouts, "total": total}


def reorder_nibble_offsets(n, k, device):
    """Nibble offset of (n, k) within one expert's reordered weights (reorder_atom_offset), int64 [N, K]."""
    rows = torch.arange(n, device=device)[:, None]
    cols = torch.arange(k, device=device)[None, :]
    rn, rk = rows % 16, cols % 32
    tile = rows // 16 + (cols // 32) * (n // 16)
    in_atom = (rn % 8) * 64 + (rn // 8) * 4 + (rk % 4) + ((rk // 4) % 4) * 16 + (rk // 16) * 8
    return tile * 512 + in_atom


def prepack(experts: QuantizedExperts, steps=None):
    """The packed buffer, byte for byte, except the layouts section (CuTe objects), left zero. steps [E, N, K/128]:
    what the tables multiply q by, the experts' table_step (prepacked from the bf16 scales) unless given (the e4m3
    group scales as floats, prepacked from those)."""
    num_experts, n, k = experts.shape
    device = experts.q.device
    sections = packed_sections(num_experts, n, k)
    packed = torch.zeros(sections["total"], dtype=torch.uint8, device=device)

    header = struct.pack("<8sIIiiiiQII", b"W4A8MOE\0", PACKED_FORMAT_VERSION, 256, num_experts, n, k, GROUP,
                         sections["total"], 0, 0)
    packed[:len(header)] = torch.frombuffer(bytearray(header), dtype=torch.uint8).to(device)

    q = experts.q.to(torch.int64)
    codes = torch.where(q > 0, 8 - q, q & 0xF).reshape(num_experts, -1)  # LUT encoding: +p -> 8 - p
    nibbles = torch.empty_like(codes)
    nibbles[:, reorder_nibble_offsets(n, k, device).flatten()] = codes
    weight_bytes = (nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).to(torch.uint8).flatten()
    start = sections["weights"]
    packed[start:start + weight_bytes.numel()] = weight_bytes

    # Per (expert, group, channel) the table {e4m3(-8 step), ..., e4m3(-1 step)}, and its odd entries
    # {e4m3(-1 step), e4m3(-3 step), e4m3(-5 step), e4m3(-7 step)}, from the bounded step.
    step = bounded_table_step(experts.table_step if steps is None else steps).permute(0, 2, 1)  # [E, K/128, N]
    for section, multiples in (("group_scales", torch.arange(-8, 0)), ("odd_tables", torch.tensor([-1, -3, -5, -7]))):
        entries = (step[..., None] * multiples.to(device, torch.float32)).to(E4M3).view(torch.uint8).flatten()
        start = sections[section]
        packed[start:start + entries.numel()] = entries

    channel = experts.channel_scale.contiguous().view(torch.uint8).flatten()
    start = sections["channel_scales"]
    packed[start:start + channel.numel()] = channel
    return packed


# --- Activations, GEMM, routing, layer -----------------------------------------------------------------------------

def quantize_rows(x):
    """Per-row e4m3 quantisation: scale = amax / 448, q = e4m3(x * (448 / amax)); zero rows give 0 and 0."""
    values = x.float()
    amax = values.abs().amax(-1, keepdim=True)
    inverse = torch.where(amax > 0, true_div(E4M3_MAX, amax), torch.zeros_like(amax))
    return (values * inverse).to(E4M3), (amax / torch.full_like(amax, E4M3_MAX)).squeeze(-1)


def random_activations(rows, k, generator, device="cuda"):
    """fp8 activations with a few outlier channels, and their per-row scales."""
    x = torch.randn(rows, k, device=device, generator=generator)
    x[:, ::97] *= 8
    return quantize_rows(x)


def grouped_gemm(experts: QuantizedExperts, act, token_scales, offsets, layout="lookup"):
    """float64 out [rows, N] and the bound's magnitude st * sc * sum_k |a w| for the rows of each expert; rows of
    no expert are NaN."""
    rows, n = act.shape[0], experts.shape[1]
    out = torch.full((rows, n), float("nan"), dtype=torch.float64, device=act.device)
    magnitude = torch.zeros_like(out)
    weights, channel_scales = experts.weights(layout), experts.channel_scales(layout)
    for e, (begin, end) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        if begin == end:
            continue
        a = act[begin:end].double()
        w = weights[e].double()
        scale = token_scales[begin:end].double()[:, None] * channel_scales[e].double()[None, :]
        out[begin:end] = (a @ w.T) * scale
        magnitude[begin:end] = (a.abs() @ w.abs().T) * scale.abs()
    return out, magnitude


def local_expert_ids(topk_ids, num_experts, num_local_experts, expert_map=None):
    """Local expert of each slot, or -1 (id out of range, or the expert is not on this rank)."""
    ids = topk_ids.long()
    valid = (ids >= 0) & (ids < num_experts)
    local = torch.where(valid, ids, torch.zeros_like(ids))
    if expert_map is not None:
        local = expert_map.long()[local]
    keep = valid & (local >= 0) & (local < num_local_experts)
    return torch.where(keep, local, torch.full_like(local, -1))


def routing_data(topk_ids, num_experts, num_local_experts, expert_map=None):
    """(offsets int64 [E_local + 1], dest_row int32 [T, k], row_slot int32 [T*k] with -1 past the last row)."""
    local = local_expert_ids(topk_ids, num_experts, num_local_experts, expert_map).flatten()
    counts = torch.bincount(local[local >= 0], minlength=num_local_experts)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    rows = int(offsets[-1])
    order = torch.argsort(torch.where(local >= 0, local, num_local_experts), stable=True)
    row_slot = torch.full_like(local, -1)
    row_slot[:rows] = order[:rows]
    dest_row = torch.full_like(local, -1)
    dest_row[order[:rows]] = torch.arange(rows, device=local.device)
    return offsets, dest_row.to(torch.int32).view(topk_ids.shape), row_slot.to(torch.int32)


def topk_softmax(router_logits, top_k, renormalize):
    """Softmax, then the top_k largest in descending order, ties to the lower expert id (a stable sort)."""
    probabilities = torch.softmax(router_logits.float(), dim=-1)
    weights, ids = torch.sort(probabilities, dim=-1, descending=True, stable=True)
    weights, ids = weights[:, :top_k], ids[:, :top_k]
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    return ids.to(torch.int32), weights


def _expert_rows(experts: QuantizedExperts, e, act, scales, out_dtype, layout):
    """One expert's GEMM on the given rows, summed in float64 and rounded like the kernel's output."""
    product = act.double() @ experts.weights(layout)[e].double().T
    channel = experts.channel_scales(layout)[e].double()
    return (product * (scales.double()[:, None] * channel[None, :])).float().to(out_dtype)


def moe_layer(hidden, topk_ids, topk_weights, gemm1: QuantizedExperts, gemm2: QuantizedExperts, num_experts,
              expert_map=None, apply_router_weight_on_input=False, layout="lookup"):
    """The layer's output [T, H] in hidden's dtype: per-token fp8 activations, GEMM1 rounded to the activation
    type, SiLU(gate) * up in fp32, per-row fp8 requantisation, GEMM2 rounded, weighted sum over the slots in fp32."""
    tokens, top_k = topk_ids.shape
    inter = gemm2.shape[2]
    act1, token_scale = quantize_rows(hidden)
    local = local_expert_ids(topk_ids, num_experts, gemm1.shape[0], expert_map)
    slot_out = torch.zeros(tokens, top_k, hidden.shape[1], device=hidden.device)
    for e in torch.unique(local[local >= 0]).tolist():
        token, slot = torch.nonzero(local == e, as_tuple=True)
        weight = topk_weights[token, slot].float()
        scale1 = token_scale[token] * weight if apply_router_weight_on_input else token_scale[token]
        g1 = _expert_rows(gemm1, e, act1[token], scale1, hidden.dtype, layout).float()
        gate, up = g1[:, :inter], g1[:, inter:]
        act2, scale2 = quantize_rows(gate / (1 + torch.exp(-gate)) * up)
        g2 = _expert_rows(gemm2, e, act2, scale2, hidden.dtype, layout).float()
        slot_out[token, slot] = g2 if apply_router_weight_on_input else g2 * weight[:, None]
    total = torch.zeros(tokens, hidden.shape[1], device=hidden.device)
    for j in range(top_k):  # the slots in order, as the unpermute sums them
        total += slot_out[:, j]
    return total.to(hidden.dtype)


def assert_tokens_close(out, ref, tolerance=6e-2):
    """Per token: relative L2 error <= tolerance and every element within 2.5 * tolerance of the token's largest
    reference value; a token with an all-zero reference (no local expert) must be exactly zero."""
    out, ref = out.double(), ref.double()
    assert torch.isfinite(out).all(), "non-finite outputs"
    error = (out - ref).norm(dim=-1)
    norm = ref.norm(dim=-1)
    zero = norm == 0
    assert (out[zero] == 0).all(), "tokens without a local expert must come out as exact zeros"
    relative = error[~zero] / norm[~zero]
    worst = relative.max().item() if relative.numel() else 0.0
    assert worst <= tolerance, f"worst per-token relative L2 error {worst:.3e} > {tolerance}"
    max_error = (out - ref).abs().amax(-1)[~zero]
    max_ref = ref.abs().amax(-1)[~zero]
    assert (max_error <= 2.5 * tolerance * max_ref).all(), "an element is off by more than 15% of its token's max"
