"""The fake implementations torch.compile traces with, on meta tensors, and the host-only helpers. No GPU needed."""

import struct

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import w4a8moe


def meta(*shape, dtype):
    return torch.empty(*shape, dtype=dtype, device="meta")


def small_weights():
    return w4a8moe.PackedMoeWeights(
        gemm1=meta(w4a8moe.packed_weights_bytes(16, 768, 256), dtype=torch.uint8),
        gemm2=meta(w4a8moe.packed_weights_bytes(16, 256, 384), dtype=torch.uint8),
        num_experts=16, hidden_size=256, intermediate_size=384)


def test_prepack_weights_fake_has_the_packed_size():
    for weights in (meta(4, 96, 48, dtype=torch.int32), meta(4, 96, 192, dtype=torch.uint8)):
        packed = w4a8moe.prepack_weights(weights, meta(4, 96, 3, dtype=torch.bfloat16))
        assert packed.shape == (w4a8moe.packed_weights_bytes(4, 96, 384),) and packed.dtype == torch.uint8


def test_prepack_weights_fake_mxfp4_blocks_and_codes():
    scales = meta(4, 96, 12, dtype=torch.uint8)  # K = 384, one e8m0 byte per 32
    for weights in (meta(4, 96, 12, 16, dtype=torch.uint8), meta(4, 96, 192, dtype=torch.uint8)):
        packed = w4a8moe.prepack_weights(weights, scales, layout="mxfp4")
        assert packed.shape == (w4a8moe.packed_weights_bytes(4, 96, 384, "mxfp4"),)


def test_grouped_gemm_fake():
    out = w4a8moe.grouped_gemm(meta(30, 256, dtype=torch.float8_e4m3fn), meta(30, dtype=torch.float32),
                               meta(17, dtype=torch.int64), meta(1, dtype=torch.uint8), 768, torch.float16)
    assert out.shape == (30, 768) and out.dtype == torch.float16


def test_moe_routing_fake():
    routing = w4a8moe.moe_routing(meta(5, 4, dtype=torch.int32), 16, meta(16, dtype=torch.int32), 8)
    assert routing.expert_offsets.shape == (9,) and routing.expert_offsets.dtype == torch.int64
    assert routing.dest_row.shape == (5, 4) and routing.row_slot.shape == (20,)


def test_fused_moe_fake_traces_the_gpt_oss_layer():
    e, h, i = 8, 320, 192

    def block(hidden, router_logits, gemm1, gemm2, gemm1_bias, gemm2_bias):
        weights = w4a8moe.PackedMoeWeights(gemm1, gemm2, num_experts=e, hidden_size=h, intermediate_size=i,
                                           layout="mxfp4", gemm1_bias=gemm1_bias, gemm2_bias=gemm2_bias)
        return w4a8moe.fused_moe(hidden, router_logits, weights=weights, top_k=4, activation="gpt_oss_swiglu")

    inputs = (meta(3, h, dtype=torch.bfloat16), meta(3, e, dtype=torch.float32),
              meta(w4a8moe.packed_weights_bytes(e, 2 * i, h, "mxfp4"), dtype=torch.uint8),
              meta(w4a8moe.packed_weights_bytes(e, h, i, "mxfp4"), dtype=torch.uint8),
              meta(e, 2 * i, dtype=torch.float32), meta(e, h, dtype=torch.float32))
    assert "w4a8moe.moe_forward" in str(make_fx(block, tracing_mode="fake")(*inputs).code)
    assert block(*inputs).shape == (3, h)


def test_prepack_moe_weights_keeps_biases_as_float32_on_the_weights_device():
    e, h, i = 8, 320, 192
    packed = w4a8moe.prepack_moe_weights(meta(e, 2 * i, h // 2, dtype=torch.uint8), meta(e, 2 * i, h // 32,
                                                                                     dtype=torch.uint8),
                                         meta(e, h, i // 2, dtype=torch.uint8), meta(e, h, i // 32, dtype=torch.uint8),
                                         layout="mxfp4", w13_bias=torch.zeros(e, 2 * i, dtype=torch.bfloat16),
                                         w2_bias=torch.zeros(e, h))
    for bias, shape in ((packed.gemm1_bias, (e, 2 * i)), (packed.gemm2_bias, (e, h))):
        assert bias.device.type == "meta" and bias.dtype == torch.float32 and bias.shape == shape
    assert packed.gemm1.shape == (w4a8moe.packed_weights_bytes(e, 2 * i, h, "mxfp4"),)


def test_gate_up_rows_in_layer_order():
    with pytest.raises(ValueError, match="dim 1 must hold 2I interleaved rows"):
        w4a8moe.gate_up_rows_in_layer_order(torch.zeros(2, 5))
    rows = torch.arange(2 * 6).view(2, 6)  # per expert: gate 0, up 0, gate 1, up 1, gate 2, up 2
    assert w4a8moe.gate_up_rows_in_layer_order(rows)[0].tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_moe_fake_traces(dtype):
    def block(hidden, router_logits, gemm1, gemm2):
        weights = w4a8moe.PackedMoeWeights(gemm1, gemm2, num_experts=16, hidden_size=256, intermediate_size=384)
        return hidden + w4a8moe.fused_moe(hidden, router_logits, weights=weights, top_k=4)

    packed = small_weights()
    inputs = (meta(5, 256, dtype=dtype), meta(5, 16, dtype=torch.float32), packed.gemm1, packed.gemm2)
    graph = make_fx(block, tracing_mode="fake")(*inputs)
    assert "w4a8moe.moe_forward" in str(graph.code)
    out = block(*inputs)
    assert out.shape == (5, 256) and out.dtype == dtype


def test_fused_moe_converts_float16_router_logits():
    def block(hidden, router_logits, gemm1, gemm2):
        weights = w4a8moe.PackedMoeWeights(gemm1, gemm2, num_experts=16, hidden_size=256, intermediate_size=384)
        return w4a8moe.fused_moe(hidden, router_logits, weights=weights, top_k=4)

    packed = small_weights()
    inputs = (meta(5, 256, dtype=torch.float16), meta(5, 16, dtype=torch.float16), packed.gemm1, packed.gemm2)
    graph = make_fx(block, tracing_mode="fake")(*inputs)
    (call,) = [node for node in graph.graph.nodes if node.target == torch.ops.w4a8moe.moe_forward.default]
    assert call.args[3].meta["val"].dtype == torch.float32  # the op reads float32 or bfloat16 logits only
    assert block(*inputs).dtype == torch.float16


def packed_header(num_experts, n, k, layout):
    """A packed buffer of the right size whose header says (E, N, K) in `layout`; the rest zero."""
    versions = {"lookup": 5, "exact": 2, "mxfp4": 4}  # kPackedFormatVersion and the other layouts' versions
    total = w4a8moe.packed_weights_bytes(num_experts, n, k, layout)
    header = struct.pack("<8sIIiiiiQII", b"W4A8MOE\0", versions[layout], 256, num_experts, n, k, 128, total, 0, 0)
    packed = torch.zeros(total, dtype=torch.uint8)
    packed[:len(header)] = torch.frombuffer(bytearray(header), dtype=torch.uint8)
    return packed


@pytest.mark.parametrize("layout", ["lookup", "exact", "mxfp4"])
def test_packed_weights_shape_reads_the_layout(layout):
    assert w4a8moe.packed_weights_shape(packed_header(4, 96, 384, layout)) == (4, 96, 384, layout)


def test_host_helpers():
    assert w4a8moe.packed_weights_bytes(128, 1536, 2048) > 128 * 1536 * 2048 // 2
    assert "128x16_1x1_coop" in w4a8moe.gemm_config_names()
    with pytest.raises(ValueError, match="N must be a positive multiple of 16"):
        w4a8moe.packed_weights_bytes(8, 100, 128)
    with pytest.raises(ValueError, match="packed must be on the CPU|bad magic"):
        w4a8moe.packed_weights_shape(torch.zeros(300, dtype=torch.uint8))
    on_cpu = w4a8moe.PackedMoeWeights(
        gemm1=torch.zeros(w4a8moe.packed_weights_bytes(16, 768, 256), dtype=torch.uint8),
        gemm2=torch.zeros(w4a8moe.packed_weights_bytes(16, 256, 384), dtype=torch.uint8),
        num_experts=16, hidden_size=256, intermediate_size=384)
    with pytest.raises(ValueError, match="hidden must be a CUDA tensor"):
        w4a8moe.fused_moe(torch.zeros(4, 256, dtype=torch.bfloat16), torch.zeros(4, 16), weights=on_cpu, top_k=4)
