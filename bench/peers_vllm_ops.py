"""vLLM 0.24.0's compiled ops as peers_bench calls them: the schemas its libraries register, which method calls
which, where the libraries are, a check that disables only the methods whose ops differ, and the scalar-type ids
Marlin's kernels take (GPTQ's uint4b8, MXFP4's float4_e2m1f)."""

import os

try:
    import torch
except ImportError:  # reported by peers_bench.main(), which exits 0 as for a machine without a GPU
    torch = None

# --- vLLM 0.24.0's ops: the schemas this benchmark calls, as its libraries register them ----------------------------

VLLM_SCHEMAS = {
    "_C::cutlass_w4a8_moe_mm": "(Tensor! out_tensors, Tensor a_tensors, Tensor b_tensors, Tensor a_scales, "
    "Tensor b_scales, Tensor b_group_scales, int b_group_size, Tensor expert_offsets, Tensor problem_sizes, "
    "Tensor a_strides, Tensor b_strides, Tensor c_strides, Tensor group_scale_strides, str? maybe_schedule) -> ()",
    "_C::cutlass_encode_and_reorder_int4b_grouped": "(Tensor b_tensors) -> (Tensor, Tensor)",
    "_C::cutlass_pack_scale_fp8": "(Tensor scales) -> Tensor",
    "_C::dynamic_per_token_scaled_fp8_quant": "(Tensor! result, Tensor input, Tensor! scale, Tensor? scale_ub) -> ()",
    "_C::get_cutlass_moe_mm_problem_sizes_from_expert_offsets": "(Tensor expert_first_token_offset, "
    "Tensor! problem_sizes1, Tensor! problem_sizes2, int n, int k, bool swap_ab) -> ()",
    "_C::silu_and_mul": "(Tensor! result, Tensor input) -> ()",
    "_C::gptq_marlin_repack": "(Tensor b_q_weight, Tensor perm, SymInt size_k, SymInt size_n, int num_bits, "
    "bool is_a_8bit) -> Tensor",
    "_C::dynamic_scaled_int8_quant": "(Tensor! result, Tensor input, Tensor! scale, Tensor!? azp) -> ()",
    "_moe_C::topk_softmax": "(Tensor! topk_weights, Tensor! topk_indices, Tensor! token_expert_indices, "
    "Tensor gating_output, bool renormalize, Tensor? bias) -> ()",
    "_moe_C::moe_permute": "(Tensor input, Tensor topk_ids, Tensor token_expert_indices, Tensor? expert_map, "
    "int n_expert, int n_local_expert, int topk, Tensor! permuted_input, Tensor! expert_first_token_offset, "
    "Tensor! inv_permuted_idx, Tensor! permuted_idx) -> ()",
    "_moe_C::moe_unpermute": "(Tensor permuted_hidden_states, Tensor topk_weights, Tensor inv_permuted_idx, "
    "Tensor? expert_first_token_offset, int topk, Tensor! hidden_states) -> ()",
    "_moe_C::moe_align_block_size": "(Tensor topk_ids, int num_experts, int block_size, Tensor! sorted_token_ids, "
    "Tensor! experts_ids, Tensor! num_tokens_post_pad, Tensor? maybe_expert_map) -> ()",
    "_moe_C::moe_wna16_marlin_gemm": "(Tensor! a, Tensor? c_or_none, Tensor! b_q_weight, Tensor? b_bias_or_none, "
    "Tensor! b_scales, Tensor? a_scales, Tensor? global_scale, Tensor? b_zeros_or_none, Tensor? g_idx_or_none, "
    "Tensor? perm_or_none, Tensor! workspace, Tensor sorted_token_ids, Tensor! expert_ids, "
    "Tensor! num_tokens_past_padded, Tensor! topk_weights, int moe_block_size, int top_k, bool mul_topk_weights, "
    "int b_type_id, int size_m, int size_n, int size_k, bool is_full_k, bool use_atomic_add, bool use_fp32_reduce, "
    "bool is_zp_float, int thread_k, int thread_n, int blocks_per_sm) -> Tensor",
    "_moe_C::moe_sum": "(Tensor input, Tensor! output) -> ()",
    "_C::swigluoai_and_mul": "(Tensor! out, Tensor input, float alpha=1.702, float limit=7.0) -> ()",
}

_MARLIN_OPS = ["_moe_C::topk_softmax", "_moe_C::moe_align_block_size", "_moe_C::moe_wna16_marlin_gemm",
               "_C::silu_and_mul", "_moe_C::moe_sum", "_C::gptq_marlin_repack"]
METHOD_OPS = {
    "w4a8moe": [],
    "w4a8moe_exact": [],
    "vllm_cutlass_w4a8": ["_moe_C::topk_softmax", "_C::dynamic_per_token_scaled_fp8_quant", "_moe_C::moe_permute",
                          "_C::get_cutlass_moe_mm_problem_sizes_from_expert_offsets", "_C::cutlass_w4a8_moe_mm",
                          "_C::silu_and_mul", "_moe_C::moe_unpermute", "_C::cutlass_encode_and_reorder_int4b_grouped",
                          "_C::cutlass_pack_scale_fp8"],
    "vllm_marlin_w4a16": _MARLIN_OPS,
    "vllm_marlin_w4a8_int8": _MARLIN_OPS + ["_C::dynamic_scaled_int8_quant"],
    # gpt-oss: Marlin on MXFP4 weights with biases, gpt-oss's activation in place of SiLU * up.
    "vllm_marlin_mxfp4": [op for op in _MARLIN_OPS if op != "_C::silu_and_mul"] + ["_C::swigluoai_and_mul"],
}

VLLM_LIBRARIES = (("_C.so", "_C_stable_libtorch.abi3.so"), ("_moe_C.so", "_moe_C_stable_libtorch.abi3.so"))


def scalar_type_id(exponent, mantissa, signed, bias, finite_values_only=False, nan_repr=1):
    """vLLM's ScalarType.id (vllm/scalar_type.py): the fields packed into one int64, as its kernels decode it.
    nan_repr 1 is IEEE 754, the default vLLM gives integer types too."""
    value, offset = 0, 0
    for field, bits in ((exponent, 8), (mantissa, 8), (int(signed), 1), (bias, 32), (int(finite_values_only), 1),
                        (nan_repr, 8)):
        value |= (field & ((1 << bits) - 1)) << offset
        offset += bits
    return value


UINT4B8_ID = scalar_type_id(exponent=0, mantissa=4, signed=False, bias=8)  # GPTQ's int4 (stored q + 8)
# scalar_types.float4_e2m1f = ScalarType.float_(2, 1, True, NanRepr.NONE): signed, finite values only, no NaN (0).
FLOAT4_E2M1F_ID = scalar_type_id(exponent=2, mantissa=1, signed=True, bias=0, finite_values_only=True, nan_repr=0)


def find_vllm_libraries(vllm_dir):
    """Paths of the two op libraries in vllm_dir, or None if either is missing."""
    if not vllm_dir:
        return None
    paths = []
    for names in VLLM_LIBRARIES:
        found = [os.path.join(vllm_dir, name) for name in names if os.path.isfile(os.path.join(vllm_dir, name))]
        if not found:
            return None
        paths.append(found[0])
    return paths


def schema_problem(qualified_name):
    """None if vLLM's op has the schema VLLM_SCHEMAS expects (argument names and types, returns), else why not."""
    namespace, name = qualified_name.split("::")
    try:
        have = getattr(getattr(torch.ops, namespace), name).default._schema
    except (AttributeError, RuntimeError):
        return f"{qualified_name} is not in the vLLM libraries"
    want = torch._C.parse_schema(qualified_name + VLLM_SCHEMAS[qualified_name])

    def signature(schema):
        return ([(a.name, str(a.type)) for a in schema.arguments], [str(r.type) for r in schema.returns])

    if signature(have) != signature(want):
        return f"{qualified_name} is {have}, but this benchmark calls {qualified_name}{VLLM_SCHEMAS[qualified_name]}"
    return None


def unavailable_methods():
    """{method: reason} for the vLLM methods whose ops are missing or differ from vLLM 0.24.0's."""
    problems = {}
    for method, ops in METHOD_OPS.items():
        reasons = [p for p in map(schema_problem, ops) if p]
        if reasons:
            problems[method] = "; ".join(reasons)
    return problems
