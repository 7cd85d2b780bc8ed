"""vLLM 0.24.0's Marlin MoE on gpt-oss's MXFP4 experts for peers_bench: the checkpoint converted the way vLLM's
MXFP4 Marlin backend loads it (padded sizes, gptq_marlin_repack, the scale permutation and e8m0 processing of
prepare_moe_fp4_layer_for_marlin, the permuted biases), and the layer and grouped GEMMs as fused_marlin_moe runs them
for gpt-oss: bf16 activations, float4_e2m1f weights with e8m0 group-32 scales, the biases in Marlin's b_bias
argument, and vLLM's swigluoai_and_mul on GEMM1's interleaved gate/up columns. Every step is a vLLM op
(torch.ops._C and torch.ops._moe_C, loaded by peers_bench.main()) except the zero padding of the hidden states and the
load-time reshapes, which are torch in vLLM too."""

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_gpt_oss import MXFP4_BLOCK, SWIGLU_ALPHA, SWIGLU_LIMIT, gate_up_in_layer_order  # (beside this file)
from peers_methods import GemmCall
from peers_model import DEVICE
from peers_vllm import VllmMarlin, permute_marlin_scales, sm_count
from peers_vllm_ops import FLOAT4_E2M1F_ID

# The MXFP4 Marlin backend's sizes (mxfp4_round_up_hidden_size_and_intermediate_size): Marlin's MoE GEMMs want
# n % 256 == 0 and k % 128 == 0, so vLLM allocates the layer's weights with H rounded up to 256 and I to 128 (gpt-oss:
# 2880 -> 3072 and 2944), loads the checkpoint into their first rows and columns (zeros elsewhere) and pads the hidden
# states to the rounded H before the layer.
HIDDEN_ALIGN = 256
INTER_ALIGN = 128
# mxfp4_marlin_process_scales for 16-bit activations: each run of 4 permuted scales reordered 0, 2, 1, 3 to fit
# Marlin's dequantisation of two fp4 pairs at a time.
MXFP4_SCALE_ORDER = [0, 2, 1, 3]


def round_up(value, multiple):
    return -(-value // multiple) * multiple


def zero_padded(t, shape):
    """t copied into the leading corner of a zero tensor of `shape`, as vLLM's MXFP4 weight loader fills its padded
    parameters (param[:, :rows, :cols].copy_(loaded))."""
    out = torch.zeros(shape, dtype=t.dtype, device=t.device)
    out[tuple(slice(0, size) for size in t.shape)] = t
    return out


def marlin_mxfp4_scales(scales):
    """e8m0 bytes [E, N, K/32] -> Marlin's float8_e8m0fnu [E, K/32, N], as prepare_moe_fp4_layer_for_marlin's MXFP4
    branch does expert by expert: the bytes viewed as e8m0 and converted to the activations' bf16 (exact: powers of
    two), transposed to [K/32, N], permuted by marlin_permute_scales with group 32 (the 64-wide grouped permutation;
    each expert is whole rows of 64, so one reshape permutes them all), then mxfp4_marlin_process_scales: the 0, 2,
    1, 3 order within each 4 and the conversion back to e8m0."""
    s = scales.view(torch.float8_e8m0fnu).to(torch.bfloat16).transpose(1, 2).contiguous()
    s = permute_marlin_scales(s, single=False)
    order = torch.tensor(MXFP4_SCALE_ORDER, device=s.device)
    s = s.reshape(-1, len(MXFP4_SCALE_ORDER))[:, order].reshape(s.shape)
    return s.to(torch.float8_e8m0fnu).contiguous()


def marlin_bias(bias):
    """bf16 [E, N] -> marlin_permute_bias of each expert: the single-row scale permutation over runs of 32 (each
    expert's N is whole runs of 32, so one reshape permutes them all)."""
    return permute_marlin_scales(bias.to(torch.bfloat16), single=True)


class VllmMarlinMxfp4(VllmMarlin):
    """vLLM's Marlin MoE on gpt-oss's MXFP4 experts (fused_marlin_moe with quant_type float4_e2m1f and
    activation swigluoai), weights converted as the MXFP4 Marlin backend does (prepare_moe_fp4_layer_for_marlin /
    prepare_moe_mxfp4_layer_for_marlin). Routing, block size and routing buffers as VllmMarlin's (bf16 activations).
    GEMM1's columns stay gpt-oss's interleaved order (gate 2i, up 2i + 1), which swigluoai_and_mul reads."""
    name = "vllm_marlin_mxfp4"

    def __init__(self, spec, ckpt):
        self.spec, self.int8 = spec, False
        self.ops, self.moe_ops = torch.ops._C, torch.ops._moe_C
        e, h, i = spec.local_experts, spec.hidden, spec.inter
        self.hidden_padded, self.inter_padded = round_up(h, HIDDEN_ALIGN), round_up(i, INTER_ALIGN)
        hp, ip = self.hidden_padded, self.inter_padded
        w13 = zero_padded(ckpt.w13_blocks.reshape(e, 2 * i, h // 2), (e, 2 * ip, hp // 2))
        s13 = zero_padded(ckpt.w13_scales, (e, 2 * ip, hp // MXFP4_BLOCK))
        w2 = zero_padded(ckpt.w2_blocks.reshape(e, h, i // 2), (e, hp, ip // 2))
        s2 = zero_padded(ckpt.w2_scales, (e, hp, ip // MXFP4_BLOCK))
        self.w1, self.s1 = self._repack(w13, k=hp, n=2 * ip), marlin_mxfp4_scales(s13)
        self.w2, self.s2 = self._repack(w2, k=ip, n=hp), marlin_mxfp4_scales(s2)
        self.b1 = marlin_bias(zero_padded(ckpt.w13_bias, (e, 2 * ip)))
        self.b2 = marlin_bias(zero_padded(ckpt.w2_bias, (e, hp)))
        # Marlin's locks, as VllmMarlin's (marlin_make_workspace_new(device, 4)).
        self.workspace = torch.zeros(sm_count() * 4, dtype=torch.int32, device=DEVICE)

    def _repack(self, codes, k, n):
        """uint8 [E, N, K/2] codes -> Marlin's tiles, expert by expert: the bytes read as int32 words (8 codes, k in
        order from the low nibble) and transposed to GPTQ's [K/8, N], then gptq_marlin_repack with 4 bits."""
        e = codes.shape[0]
        gptq = codes.view(torch.int32).transpose(1, 2).contiguous()
        no_act_order = torch.empty(0, dtype=torch.int32, device=DEVICE)
        repacked = torch.empty(e, k // 16, 2 * n, dtype=torch.int32, device=DEVICE)
        for expert in range(e):
            repacked[expert] = self.ops.gptq_marlin_repack(gptq[expert], no_act_order, k, n, 4, False)
        return repacked

    def _mm(self, a, c, gemm, routing, topk_weights, block, top_k, mul_topk_weights, m):
        w, s, bias = (self.w1, self.s1, self.b1) if gemm == 1 else (self.w2, self.s2, self.b2)
        n, k = ((2 * self.inter_padded, self.hidden_padded) if gemm == 1
                else (self.hidden_padded, self.inter_padded))
        return self._marlin_gemm(a, c, w, bias, s, None, FLOAT4_E2M1F_ID, routing, topk_weights, block, top_k,
                                 mul_topk_weights, m, n, k)

    def _pad_hidden(self, hidden):
        return torch.nn.functional.pad(hidden, (0, self.hidden_padded - self.spec.hidden))

    def layer(self, case):
        spec, t = self.spec, case.tokens
        k, hp, ip = spec.top_k, self.hidden_padded, self.inter_padded
        block = self.block_size(t)
        routing = self._routing_buffers(t * k, block)
        topk_weights = torch.empty(t, k, dtype=torch.float32, device=DEVICE)
        topk_ids = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        softmax_indices = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        gate_up = torch.empty(t * k, 2 * ip, dtype=torch.bfloat16, device=DEVICE)
        mid = torch.empty(t * k, ip, dtype=torch.bfloat16, device=DEVICE)
        down = torch.empty(t * k, hp, dtype=torch.bfloat16, device=DEVICE)
        out = torch.empty(t, hp, dtype=torch.bfloat16, device=DEVICE)

        def run():
            self.moe_ops.topk_softmax(topk_weights, topk_ids, softmax_indices, case.logits, True, None)
            self._align(topk_ids, case.expert_map, block, routing)
            hidden = self._pad_hidden(case.hidden)  # FusedMoE's forward pads to the backend's hidden size
            self._mm(hidden, gate_up, 1, routing, topk_weights, block, k, False, t)
            self.ops.swigluoai_and_mul(mid, gate_up, SWIGLU_ALPHA, SWIGLU_LIMIT)
            if case.expert_map is not None:
                down.zero_()  # other ranks' slots are not written, and moe_sum adds every slot
            # The routing weight multiplies each row's output with its bias, as gpt-oss's layer weights them.
            self._mm(mid, down, 2, routing, topk_weights, block, 1, True, t * k)
            self.moe_ops.moe_sum(down.view(t, k, hp), out)
            return out[:, :spec.hidden]  # and FusedMoE slices the padding off

        return run

    def gemm(self, level, case):
        """Marlin's own input, zero-padded as in the layer: GEMM1 reads the token's padded hidden row for each slot;
        GEMM2 reads row `slot` of a [T * top_k, I padded] tensor. Outputs are in slot order; the check reads GEMM1's
        first 2I columns in layer order (gate, then up) and GEMM2's first H."""
        spec, t = self.spec, case.tokens
        k, h, i = spec.top_k, spec.hidden, spec.inter
        block = self.block_size(t)
        routing = self._routing_buffers(t * k, block)
        self._align(case.topk_ids, case.expert_map, block, routing)
        if level == "gemm1":
            gemm, source, m, top_k, n = 1, self._pad_hidden(case.hidden), t, k, 2 * self.inter_padded
            source_rows, source_cols = case.row_token(k), h

            def rows_out(out_, rows):
                return gate_up_in_layer_order(out_[case.row_slot[rows], :2 * i]).float()
        else:
            source = torch.zeros(t * k, self.inter_padded, dtype=torch.bfloat16, device=DEVICE)
            source[case.row_slot, :i] = case.x2
            gemm, m, top_k, n = 2, t * k, 1, self.hidden_padded
            source_rows, source_cols = case.row_slot, i

            def rows_out(out_, rows):
                return out_[case.row_slot[rows], :h].float()
        out = torch.empty(m * top_k, n, dtype=torch.bfloat16, device=DEVICE)

        def run():
            self._mm(source, out, gemm, routing, case.topk_weights, block, top_k, False, m)
            return out

        return GemmCall(run=run, rows_in=lambda rows: source[source_rows[rows], :source_cols].float(),
                        rows_out=rows_out)
