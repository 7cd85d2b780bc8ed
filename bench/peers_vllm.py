"""vLLM 0.24.0's MoE methods for peers_bench: CUTLASS W4A8 (fp8 activations) and Marlin (bf16 or int8 activations),
each converting the checkpoint as vLLM's loader does and running the layer and the grouped GEMMs with vLLM's compiled
ops (torch.ops._C and torch.ops._moe_C, loaded by peers_bench.main())."""

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

from peers_checkpoint import GROUP  # (beside this file)
from peers_methods import GemmCall
from peers_model import DEVICE, gather_rows
from peers_vllm_ops import UINT4B8_ID

FP8 = torch.float8_e4m3fn if torch is not None else None


class VllmCutlassW4A8:
    """vLLM's CUTLASS W4A8 MoE (fused_moe/experts/cutlass_moe.py, run_cutlass_moe_w4a8_fp8), weights converted as
    fused_moe/oracle/w4a8.py does."""
    name = "vllm_cutlass_w4a8"

    def __init__(self, spec, ckpt):
        self.spec, self.ops, self.moe_ops = spec, torch.ops._C, torch.ops._moe_C
        self.w1, self.b_strides1 = self._weights(ckpt.w13)
        self.w2, self.b_strides2 = self._weights(ckpt.w2)
        self.group_scales1, self.channel_scales1 = self._scales(ckpt.s13)
        self.group_scales2, self.channel_scales2 = self._scales(ckpt.s2)
        e, h, i = spec.local_experts, spec.hidden, spec.inter
        self.strides1 = self._strides(e, k=h, n=2 * i, b_strides=self.b_strides1)
        self.strides2 = self._strides(e, k=i, n=h, b_strides=self.b_strides2)

    def _weights(self, words):
        # Offset-binary nibbles to two's complement: q + 8 XOR 8 is q mod 16, nibble by nibble (0x88888888).
        signed = torch.bitwise_xor(words, -0x77777778)
        return self.ops.cutlass_encode_and_reorder_int4b_grouped(signed)

    def _scales(self, scales):
        """bf16 [E, N, G] -> (packed fp8 group scales, fp32 channel scales [E, N, 1]), as
        convert_bf16_scales_to_fp8: each output channel's G group scales quantised per row to fp8 (row scale
        max|s| / 448, vLLM's own quant op), then group scale / 8 and channel scale * 8 (so that q * group scale,
        |q| <= 8, stays within e4m3), and the group scales packed from their [E, G, N] transpose."""
        e, n, g = scales.shape
        flat = scales.reshape(e * n, g).contiguous()
        fp8 = torch.empty(flat.shape, dtype=FP8, device=DEVICE)
        channel = torch.empty(e * n, 1, dtype=torch.float32, device=DEVICE)
        self.ops.dynamic_per_token_scaled_fp8_quant(fp8, flat, channel, None)
        fp8 = (fp8.float() / 8.0).to(FP8)
        packed = self.ops.cutlass_pack_scale_fp8(fp8.reshape(e, n, g).permute(0, 2, 1).contiguous())
        return packed, (channel * 8.0).reshape(e, n, 1)

    @staticmethod
    def _strides(experts, k, n, b_strides):
        """(a, b, c, group-scale) strides of one GEMM, as CutlassExpertsW4A8Fp8.__init__ builds them: A (activation)
        rows K apart, C (output) rows N apart, group scales N apart in column 0 of a 16-byte StrideS; B's from the
        weight encoding."""
        a = torch.full((experts,), k, dtype=torch.int64, device=DEVICE)
        c = torch.full((experts,), n, dtype=torch.int64, device=DEVICE)
        s = torch.zeros(experts, 2, dtype=torch.int64, device=DEVICE)
        s[:, 0] = n
        return a, b_strides, c, s

    def _mm(self, out, act, act_scales, gemm, offsets, problem_sizes):
        """cutlass_w4a8_moe_mm for GEMM 1 or 2; offsets: each expert's first row, int64 [E]."""
        w, group, channel = ((self.w1, self.group_scales1, self.channel_scales1) if gemm == 1
                             else (self.w2, self.group_scales2, self.channel_scales2))
        a_strides, b_strides, c_strides, s_strides = self.strides1 if gemm == 1 else self.strides2
        self.ops.cutlass_w4a8_moe_mm(out, act, w, act_scales, channel, group, GROUP, offsets, problem_sizes,
                                     a_strides, b_strides, c_strides, s_strides, None)

    def _problem_sizes(self, first_row):
        """(GEMM1's, GEMM2's) int32 [E, 3] problem sizes; swap_ab as vLLM's W4A8 path always runs it."""
        e = self.spec.local_experts
        ps1 = torch.empty(e, 3, dtype=torch.int32, device=DEVICE)
        ps2 = torch.empty(e, 3, dtype=torch.int32, device=DEVICE)
        return ps1, ps2, lambda: self.ops.get_cutlass_moe_mm_problem_sizes_from_expert_offsets(
            first_row, ps1, ps2, self.spec.inter, self.spec.hidden, True)

    def _fp8_rows(self, rows, cols):
        return (torch.empty(rows, cols, dtype=FP8, device=DEVICE),
                torch.empty(rows, 1, dtype=torch.float32, device=DEVICE))

    def layer(self, case):
        spec, t = self.spec, case.tokens
        k, e, h, i = spec.top_k, spec.local_experts, spec.hidden, spec.inter
        slots = t * k
        topk_weights = torch.empty(t, k, dtype=torch.float32, device=DEVICE)
        topk_ids = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        softmax_indices = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        # moe_permute's token_expert_indices: vLLM passes arange(T * k), not topk_softmax's output.
        slot_ids = torch.arange(slots, dtype=torch.int32, device=DEVICE).reshape(t, k)
        act, act_scales = self._fp8_rows(t, h)
        permuted = torch.empty(slots, h, dtype=FP8, device=DEVICE)
        first_row = torch.empty(e + 1, dtype=torch.int64, device=DEVICE)
        inverse = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        permuted_idx = torch.empty(slots, dtype=torch.int32, device=DEVICE)
        ps1, ps2, fill_problem_sizes = self._problem_sizes(first_row)
        gate_up = torch.empty(slots, 2 * i, dtype=torch.bfloat16, device=DEVICE)
        mid = torch.empty(slots, i, dtype=torch.bfloat16, device=DEVICE)
        mid_q, mid_scales = self._fp8_rows(slots, i)
        down = torch.empty(slots, h, dtype=torch.bfloat16, device=DEVICE)
        out = torch.empty(t, h, dtype=torch.bfloat16, device=DEVICE)

        def run():
            self.moe_ops.topk_softmax(topk_weights, topk_ids, softmax_indices, case.logits, True, None)
            self.ops.dynamic_per_token_scaled_fp8_quant(act, case.hidden, act_scales, None)
            permuted_idx.fill_(slots)
            self.moe_ops.moe_permute(act, topk_ids, slot_ids, case.expert_map, spec.experts, e, k, permuted,
                                     first_row, inverse, permuted_idx)
            # The token scales follow their rows (moe_permute's Python wrapper does this gather).
            permuted_scales = act_scales[permuted_idx.clamp(max=slots - 1) // k]
            fill_problem_sizes()
            offsets = first_row[:-1]
            self._mm(gate_up, permuted, permuted_scales, 1, offsets, ps1)
            self.ops.silu_and_mul(mid, gate_up)
            self.ops.dynamic_per_token_scaled_fp8_quant(mid_q, mid, mid_scales, None)
            self._mm(down, mid_q, mid_scales, 2, offsets, ps2)
            self.moe_ops.moe_unpermute(down, topk_weights, inverse.reshape(-1), first_row, k, out)
            return out

        return run

    def gemm(self, level, case):
        gemm = 1 if level == "gemm1" else 2
        x = case.x1 if gemm == 1 else case.x2
        n = 2 * self.spec.inter if gemm == 1 else self.spec.hidden
        act, scales = self._fp8_rows(*x.shape)
        self.ops.dynamic_per_token_scaled_fp8_quant(act, x, scales, None)
        ps1, ps2, fill_problem_sizes = self._problem_sizes(case.offsets)
        fill_problem_sizes()
        out = torch.empty(x.shape[0], n, dtype=torch.bfloat16, device=DEVICE)
        offsets = case.offsets[:-1]

        def run():
            self._mm(out, act, scales, gemm, offsets, ps1 if gemm == 1 else ps2)
            return out

        return GemmCall(run=run, rows_in=lambda rows: gather_rows(act, rows).float() * scales[rows],
                        rows_out=lambda out_, rows: out_[rows].float())


def sm_count():
    return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def marlin_scale_perm(single):
    """Marlin's scale permutation within each row of 64 scales (or 32, the single-row one that 8-bit activations
    use): get_scale_perms in vLLM's quantization/utils/marlin_utils.py."""
    if single:
        return [2 * i + j for i in range(4) for j in (0, 1, 8, 9, 16, 17, 24, 25)]
    return [i + 8 * j for i in range(8) for j in range(8)]


def permute_marlin_scales(scales, single):
    """[E, K/128, N] scales permuted as marlin_moe_permute_scales does expert by expert: each expert's K/128 * N
    scales are whole rows of 64 (or 32), so one reshape of the whole tensor permutes the same rows."""
    perm = torch.tensor(marlin_scale_perm(single), device=scales.device)
    return scales.reshape(-1, perm.numel())[:, perm].reshape(scales.shape).contiguous()


def marlin_int8_scales(scales):
    """marlin_act_int8_process_scales: the whole GEMM's scales as int16 multiples of max / 4096, stored in the bf16
    tensor's bits (in bf16 arithmetic, as vLLM computes them), and that max / 4096 as the fp32 input global scale."""
    top = scales.max()
    global_scale = top.float() / 4096
    relative = (scales / top * 4096).round().to(torch.int16).view(scales.dtype)
    return relative, global_scale


def marlin_block_size(tokens, top_k, local_experts, int8):
    """fused_marlin_moe's M block: the smallest of 8..64 with under 0.9 blocks of rows per expert; at least 16 for
    8-bit activations."""
    for block in (8, 16, 32, 48, 64):
        if tokens * top_k / local_experts / block < 0.9:
            break
    return max(block, 16) if int8 else block


class VllmMarlin:
    """vLLM's Marlin MoE (fused_moe/experts/marlin_moe.py, fused_marlin_moe), weights converted as
    fused_moe/oracle/int_wna16.py does for compressed-tensors: bf16 activations, or int8 ones (int8=True)."""

    def __init__(self, spec, ckpt, int8):
        self.spec, self.int8 = spec, int8
        self.name = "vllm_marlin_w4a8_int8" if int8 else "vllm_marlin_w4a16"
        self.ops, self.moe_ops = torch.ops._C, torch.ops._moe_C
        self.w1, self.s1, self.global_scale1 = self._convert(ckpt.w13, ckpt.s13)
        self.w2, self.s2, self.global_scale2 = self._convert(ckpt.w2, ckpt.s2)
        # Marlin's locks, one per thread block it may launch (marlin_make_workspace_new(device, 4)); zero between
        # calls, the kernel leaves them so.
        self.workspace = torch.zeros(sm_count() * 4, dtype=torch.int32, device=DEVICE)

    def _convert(self, words, scales):
        """Checkpoint [E, N, K/8] words and [E, N, K/128] scales -> Marlin's tile layout, permuted scales and, for
        int8 activations, the input global scale."""
        e, n, k = words.shape[0], words.shape[1], words.shape[2] * 8
        # vLLM's loader stores compressed-tensors MoE weights transposed: [E, K/8, N], GPTQ's layout (8 k per word).
        gptq = words.transpose(1, 2).contiguous()
        no_act_order = torch.empty(0, dtype=torch.int32, device=DEVICE)
        repacked = torch.empty(e, k // 16, 2 * n, dtype=torch.int32, device=DEVICE)
        for expert in range(e):
            repacked[expert] = self.ops.gptq_marlin_repack(gptq[expert], no_act_order, k, n, 4, self.int8)
        marlin_scales = permute_marlin_scales(scales.transpose(1, 2).contiguous(), single=self.int8)
        global_scale = None
        if self.int8:
            marlin_scales, global_scale = marlin_int8_scales(marlin_scales)
        return repacked, marlin_scales, global_scale

    def block_size(self, tokens):
        return marlin_block_size(tokens, self.spec.top_k, self.spec.local_experts, self.int8)

    def _routing_buffers(self, slots, block):
        """moe_align_block_size's outputs, sized as its Python wrapper sizes them (global experts)."""
        experts = self.spec.experts
        padded = slots + experts * (block - 1)
        if slots < experts:
            padded = min(slots * block, padded)
        return (torch.empty(padded, dtype=torch.int32, device=DEVICE),
                torch.empty(-(-padded // block), dtype=torch.int32, device=DEVICE),
                torch.empty(1, dtype=torch.int32, device=DEVICE))

    def _align(self, topk_ids, expert_map, block, routing):
        # ignore_invalid_experts=True in fused_marlin_moe: the expert map goes to the op, other ranks' slots drop out.
        self.moe_ops.moe_align_block_size(topk_ids, self.spec.experts, block, *routing, expert_map)

    def _int8_buffers(self, rows, cols):
        return (torch.empty(rows, cols, dtype=torch.int8, device=DEVICE),
                torch.empty(rows, 1, dtype=torch.float32, device=DEVICE))

    def _quantize(self, x, buffers, global_scale):
        """Per-token int8 activations; the kernel takes the token scales times the weights' global scale."""
        q, scales = buffers
        self.ops.dynamic_scaled_int8_quant(q, x, scales, None)
        return q, scales * global_scale

    def _marlin_gemm(self, a, c, w, bias, s, a_scales, type_id, routing, topk_weights, block, top_k,
                     mul_topk_weights, m, n, k):
        """vLLM's Marlin MoE GEMM as its fused_marlin_moe calls it, for weights of scalar type `type_id`."""
        sorted_ids, expert_ids, padded_rows = routing
        return self.moe_ops.moe_wna16_marlin_gemm(
            a, c, w, bias, s, a_scales, None, None, None, None, self.workspace, sorted_ids, expert_ids, padded_rows,
            topk_weights, block, top_k, mul_topk_weights, type_id, m, n, k,
            True, False, True, False, -1, -1, -1)  # is_full_k, use_atomic_add, use_fp32_reduce, is_zp_float, auto

    def _mm(self, a, c, gemm, a_scales, routing, topk_weights, block, top_k, mul_topk_weights, m):
        w, s = (self.w1, self.s1) if gemm == 1 else (self.w2, self.s2)
        n, k = (2 * self.spec.inter, self.spec.hidden) if gemm == 1 else (self.spec.hidden, self.spec.inter)
        return self._marlin_gemm(a, c, w, None, s, a_scales, UINT4B8_ID, routing, topk_weights, block, top_k,
                                 mul_topk_weights, m, n, k)

    def layer(self, case):
        spec, t = self.spec, case.tokens
        k, h, i = spec.top_k, spec.hidden, spec.inter
        block = self.block_size(t)
        routing = self._routing_buffers(t * k, block)
        topk_weights = torch.empty(t, k, dtype=torch.float32, device=DEVICE)
        topk_ids = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        softmax_indices = torch.empty(t, k, dtype=torch.int32, device=DEVICE)
        gate_up = torch.empty(t * k, 2 * i, dtype=torch.bfloat16, device=DEVICE)
        mid = torch.empty(t * k, i, dtype=torch.bfloat16, device=DEVICE)
        down = torch.empty(t * k, h, dtype=torch.bfloat16, device=DEVICE)
        out = torch.empty(t, h, dtype=torch.bfloat16, device=DEVICE)
        if self.int8:
            hidden_q, mid_q = self._int8_buffers(t, h), self._int8_buffers(t * k, i)

        def run():
            self.moe_ops.topk_softmax(topk_weights, topk_ids, softmax_indices, case.logits, True, None)
            self._align(topk_ids, case.expert_map, block, routing)
            a1, a1_scales = (self._quantize(case.hidden, hidden_q, self.global_scale1) if self.int8
                             else (case.hidden, None))
            self._mm(a1, gate_up, 1, a1_scales, routing, topk_weights, block, k, False, t)
            self.ops.silu_and_mul(mid, gate_up)
            if case.expert_map is not None:
                down.zero_()  # other ranks' slots are not written, and moe_sum adds every slot
            a2, a2_scales = self._quantize(mid, mid_q, self.global_scale2) if self.int8 else (mid, None)
            self._mm(a2, down, 2, a2_scales, routing, topk_weights, block, 1, True, t * k)
            self.moe_ops.moe_sum(down.view(t, k, h), out)
            return out

        return run

    def _gemm_input(self, source, source_rows, global_scale):
        """A GEMM's activations in Marlin's format (int8 ones quantised here, outside the timed call), and a function
        from sampled row ids to their dequantised source rows."""
        if not self.int8:
            return source, None, lambda rows: source[source_rows[rows]].float()
        buffers = self._int8_buffers(*source.shape)
        a, a_scales = self._quantize(source, buffers, global_scale)
        q, token_scales = buffers
        return a, a_scales, lambda rows: q[source_rows[rows]].float() * token_scales[source_rows[rows]]

    def gemm(self, level, case):
        """Marlin's own input: GEMM1 reads the token's row of hidden for each slot (sorted_token_ids // top_k);
        GEMM2 reads row `slot` of a [T * top_k, I] tensor. Outputs are in slot order."""
        spec, t = self.spec, case.tokens
        k = spec.top_k
        block = self.block_size(t)
        routing = self._routing_buffers(t * k, block)
        self._align(case.topk_ids, case.expert_map, block, routing)
        if level == "gemm1":
            gemm, source, m, top_k, n, source_rows = 1, case.hidden, t, k, 2 * spec.inter, case.row_token(k)
        else:
            source = torch.zeros(t * k, spec.inter, dtype=torch.bfloat16, device=DEVICE)
            source[case.row_slot] = case.x2
            gemm, m, top_k, n, source_rows = 2, t * k, 1, spec.hidden, case.row_slot
        a, a_scales, rows_in = self._gemm_input(source, source_rows,
                                                self.global_scale1 if gemm == 1 else self.global_scale2)
        out = torch.empty(m * top_k, n, dtype=torch.bfloat16, device=DEVICE)

        def run():
            self._mm(a, out, gemm, a_scales, routing, case.topk_weights, block, top_k, False, m)
            return out

        return GemmCall(run=run, rows_in=rows_in, rows_out=lambda out_, rows: out_[case.row_slot[rows]].float())
