"""Fake (meta) implementations of the run-time ops, so torch.compile and FakeTensor tracing see their output shapes.

They mirror the output allocation of python/csrc/w4a8moe_ops.cpp; the argument checks stay in the CUDA kernels.
"""

import torch

from .api import _unpacked_k


@torch.library.register_fake("w4a8moe::prepack_weights")
def _prepack_weights_fake(weights, group_scales, channel_scales=None, layout="lookup"):
    num_experts, n = int(weights.shape[0]), int(weights.shape[1])
    k = int(_unpacked_k(weights, "weights"))
    num_bytes = torch.ops.w4a8moe.packed_weights_bytes(num_experts, n, k, layout)
    return weights.new_empty((num_bytes,), dtype=torch.uint8)


@torch.library.register_fake("w4a8moe::grouped_gemm")
def _grouped_gemm_fake(act, token_scales, expert_offsets, packed_weights, n, out_dtype=None, config=None, bias=None,
                       layout=None):
    return act.new_empty((act.shape[0], n), dtype=out_dtype or torch.bfloat16)


@torch.library.register_fake("w4a8moe::moe_routing")
def _moe_routing_fake(topk_ids, expert_map, num_experts, num_local_experts):
    return (
        topk_ids.new_empty((num_local_experts + 1,), dtype=torch.int64),
        topk_ids.new_empty(topk_ids.shape, dtype=torch.int32),
        topk_ids.new_empty((topk_ids.numel(),), dtype=torch.int32),
    )


@torch.library.register_fake("w4a8moe::moe_forward")
def _moe_forward_fake(hidden, gemm1_weights, gemm2_weights, router_logits, topk_ids, topk_weights, expert_map,
                      num_experts, num_local_experts, top_k, inter_size, renormalize, apply_router_weight_on_input,
                      gemm1_config=None, gemm2_config=None, path="auto", activation="silu", swiglu_limit=7.0,
                      gemm1_bias=None, gemm2_bias=None, layout=None):
    return torch.empty_like(hidden, memory_format=torch.contiguous_format)
