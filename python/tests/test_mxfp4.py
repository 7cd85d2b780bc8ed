"""The MXFP4 layout (gpt-oss's experts) through the ops: grouped_gemm with expert biases against a float64
reference of the dequantised weights, fused_moe with gpt-oss's SwiGLU and biases against the staged path's
roundings, a gpt-oss-layout toy checkpoint loaded and run, and the errors of bad MXFP4 inputs.

Tolerances. GEMM (as test_grouped_gemm.py): e2m1 values times e8m0 scales are exact in the kernel (each 32-K block
summed by the fp8 tensor cores, then scaled in fp32), so kernel and reference differ only in the accumulation
(about 2^-10 of st * sum_k |a w|) and the output rounding (2^-8 relative for bf16; we allow 2^-7). Layer (as
test_fused_moe.py): both quantise the same values the same way; the GEMMs' summation order moves some outputs by
one bf16 step, which the requantisation compounds to a few percent per token: 6 % per token, 15 % of the token's
largest output for any element.
"""

import json
import os
import struct
import subprocess
import sys

import pytest
import torch

import mxfp4_reference as mx
import w4a8_reference as ref
import w4a8moe

pytestmark = ref.requires_hopper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_gemm(out, expected, magnitude, offsets):
    begin, end = int(offsets[0]), int(offsets[-1])
    got, want, mag = out[begin:end].double(), expected[begin:end], magnitude[begin:end]
    assert torch.isfinite(got).all()
    excess = (got - want).abs() - (want.abs() * 2**-7 + mag * 2**-10)
    assert (excess <= 0).all(), f"{int((excess > 0).sum())} outputs out of bound, worst excess {excess.max():.3e}"


@pytest.mark.parametrize("num_experts, n, k, counts", [
    (8, 256, 512, [5, 0, 64, 1, 130, 0, 17, 3]),  # empty experts, uneven rows
    (4, 96, 320, [33, 7, 0, 200]),               # K off whole 128-groups (padded to 384 inside)
    (3, 64, 2880, [1, 9, 40]),                    # gpt-oss's K
])
@pytest.mark.parametrize("with_bias", [True, False])
def test_grouped_gemm_matches_reference(num_experts, n, k, counts, with_bias):
    generator = torch.Generator(device="cuda").manual_seed(n + k)
    experts = mx.random_experts(num_experts, n, k, generator)
    packed = w4a8moe.prepack_weights(experts.codes, experts.scales, layout="mxfp4")
    offsets = torch.tensor([0] + counts, dtype=torch.int64, device="cuda").cumsum(0)
    act, token_scales = mx.padded_activations(torch.randn(int(offsets[-1]), k, device="cuda", generator=generator))
    bias = experts.bias if with_bias else None
    for out_dtype in (torch.bfloat16, torch.float16):
        out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, n, out_dtype, bias=bias, layout="mxfp4")
        assert out.shape == (act.shape[0], n) and out.dtype == out_dtype
        check_gemm(out, *mx.grouped_gemm(experts, act, token_scales, offsets, bias), offsets)


def test_checkpoint_blocks_and_e8m0_dtype_pack_the_same_bytes():
    generator = torch.Generator(device="cuda").manual_seed(5)
    experts = mx.random_experts(2, 32, 256, generator)
    flat = w4a8moe.prepack_weights(experts.codes, experts.scales, layout="mxfp4")
    blocks = experts.codes.view(2, 32, 256 // 32, 16)
    as_blocks = w4a8moe.prepack_weights(blocks, experts.scales.view(torch.float8_e8m0fnu), layout="mxfp4")
    assert torch.equal(flat, as_blocks)


class GptOssLayer:
    """A small gpt-oss-like layer: MXFP4 experts with biases, gate rows then up rows."""

    def __init__(self, num_experts, top_k, hidden, inter, seed, num_local_experts=None):
        self.generator = torch.Generator(device="cuda").manual_seed(seed)
        local = num_local_experts or num_experts
        self.num_experts, self.top_k, self.hidden = num_experts, top_k, hidden
        self.gemm1 = mx.random_experts(local, 2 * inter, hidden, self.generator)
        self.gemm2 = mx.random_experts(local, hidden, inter, self.generator)
        self.weights = w4a8moe.prepack_moe_weights(self.gemm1.codes, self.gemm1.scales, self.gemm2.codes,
                                                   self.gemm2.scales, layout="mxfp4", w13_bias=self.gemm1.bias,
                                                   w2_bias=self.gemm2.bias)

    def hidden_states(self, tokens, dtype=torch.bfloat16):
        return (torch.randn(tokens, self.hidden, device="cuda", generator=self.generator) * 4).to(dtype)

    def router_logits(self, tokens):
        return torch.randn(tokens, self.num_experts, device="cuda", generator=self.generator)

    def reference(self, hidden, logits, expert_map=None, swiglu_limit=7.0):
        ids, weights = ref.topk_softmax(logits, self.top_k, renormalize=True)
        return mx.gpt_oss_layer(hidden, ids, weights, self.gemm1, self.gemm2, self.num_experts, expert_map,
                                swiglu_limit)


@pytest.mark.parametrize("tokens", [1, 5, 40])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gpt_oss_layer_matches_reference(tokens, dtype):
    m = GptOssLayer(16, 4, hidden=320, inter=192, seed=tokens)
    hidden, logits = m.hidden_states(tokens, dtype), m.router_logits(tokens)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, activation="gpt_oss_swiglu")
    assert out.dtype == dtype
    ref.assert_tokens_close(out, m.reference(hidden, logits))


def test_gpt_oss_layer_swiglu_limit_and_expert_parallel_rank():
    m = GptOssLayer(16, 4, hidden=256, inter=128, seed=7, num_local_experts=8)
    expert_map = torch.full((16,), -1, dtype=torch.int32, device="cuda")
    expert_map[8:] = torch.arange(8, dtype=torch.int32, device="cuda")
    hidden, logits = m.hidden_states(33), m.router_logits(33)
    out = w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, expert_map=expert_map,
                            activation="gpt_oss_swiglu", swiglu_limit=1.5)
    ref.assert_tokens_close(out, m.reference(hidden, logits, expert_map, swiglu_limit=1.5))


def test_gpt_oss_layer_in_a_cuda_graph_replays_with_new_inputs():
    m = GptOssLayer(16, 4, hidden=320, inter=192, seed=3)
    hidden, logits = m.hidden_states(6), m.router_logits(6)

    def forward():
        return w4a8moe.fused_moe(hidden, logits, weights=m.weights, top_k=m.top_k, activation="gpt_oss_swiglu")

    forward()  # allocations outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = forward()
    for _ in range(2):
        hidden.copy_(m.hidden_states(6))
        logits.copy_(m.router_logits(6))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ref.assert_tokens_close(out, m.reference(hidden, logits))


# --- A checkpoint in gpt-oss's published layout --------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"U8": torch.uint8, "BF16": torch.bfloat16, "F32": torch.float32}


def read_safetensors(path):
    """{name: CPU tensor} of a .safetensors file (8-byte header length, JSON header, then the raw tensors)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_bytes,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_bytes])
    body = bytearray(data[8 + header_bytes:])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = torch.frombuffer(body[begin:end], dtype=torch.uint8) if end > begin else torch.empty(0, dtype=torch.uint8)
        tensors[name] = raw.view(_SAFETENSORS_DTYPES[info["dtype"]]).reshape(info["shape"]).clone()
    return tensors


def test_gpt_oss_toy_checkpoint_runs_through_the_ops(tmp_path):
    pytest.importorskip("numpy", reason="scripts/make_toy_checkpoint.py writes the checkpoint with numpy")
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make_toy_checkpoint.py"), str(tmp_path),
                    "--gpt-oss", "--layers", "1", "--hidden", "320", "--inter", "192"], check=True,
                   capture_output=True)
    config = json.loads((tmp_path / "config.json").read_text())
    tensors = read_safetensors(tmp_path / "model.safetensors")
    prefix = "model.layers.0.mlp"

    def expert_tensor(name, gate_up):
        t = tensors[f"{prefix}.experts.{name}"].cuda()
        return w4a8moe.gate_up_rows_in_layer_order(t) if gate_up else t

    w13, w13_scale, w13_bias = (expert_tensor(f"gate_up_proj_{part}", True) for part in ("blocks", "scales", "bias"))
    w2, w2_scale, w2_bias = (expert_tensor(f"down_proj_{part}", False) for part in ("blocks", "scales", "bias"))
    weights = w4a8moe.prepack_moe_weights(w13, w13_scale, w2, w2_scale, layout="mxfp4", w13_bias=w13_bias,
                                          w2_bias=w2_bias)
    num_experts, top_k = config["num_local_experts"], config["experts_per_token"]
    hidden = torch.randn(24, config["hidden_size"], device="cuda").to(torch.bfloat16)
    router_weight = tensors[f"{prefix}.router.weight"].cuda().float()
    router_bias = tensors[f"{prefix}.router.bias"].cuda().float()
    logits = hidden.float() @ router_weight.T + router_bias
    out = w4a8moe.fused_moe(hidden, logits, weights=weights, top_k=top_k, activation="gpt_oss_swiglu",
                            swiglu_limit=config["swiglu_limit"])

    def experts(blocks, scales, bias):
        return mx.Mxfp4Experts(blocks.flatten(2), scales, bias.float())

    ids, topk_weights = ref.topk_softmax(logits, top_k, renormalize=True)
    expected = mx.gpt_oss_layer(hidden, ids, topk_weights, experts(w13, w13_scale, w13_bias),
                                experts(w2, w2_scale, w2_bias), num_experts, swiglu_limit=config["swiglu_limit"])
    ref.assert_tokens_close(out, expected)


# --- Bad inputs ----------------------------------------------------------------------------------------------------

def test_bad_mxfp4_inputs_raise_clear_errors():
    generator = torch.Generator(device="cuda").manual_seed(9)
    experts = mx.random_experts(2, 32, 256, generator)
    with pytest.raises(TypeError, match="group_scales must be Byte or Float8_e8m0fnu"):
        w4a8moe.prepack_weights(experts.codes, experts.scales.to(torch.bfloat16), layout="mxfp4")
    with pytest.raises(ValueError, match=r"group_scales must have shape \[2, 32, 8\]"):
        w4a8moe.prepack_weights(experts.codes, experts.scales[:, :, :4].contiguous(), layout="mxfp4")
    with pytest.raises(TypeError, match="weights must be uint8"):
        w4a8moe.prepack_weights(experts.codes.view(torch.int32), experts.scales, layout="mxfp4")
    with pytest.raises(ValueError, match="multiple of 32"):  # K = 16
        w4a8moe.prepack_weights(experts.codes[:, :, :8].contiguous(), experts.scales[:, :, :1].contiguous(),
                                layout="mxfp4")
    nan_scales = experts.scales.clone()
    nan_scales[1, 3, 2] = 255
    with pytest.raises(ValueError, match="e8m0 scales not 255"):
        w4a8moe.prepack_weights(experts.codes, nan_scales, layout="mxfp4")
    with pytest.raises(ValueError, match="channel_scales must be null with ScaleFormat::kBF16 and kE8m0"):
        w4a8moe.prepack_weights(experts.codes, experts.scales, torch.ones(2, 32, device="cuda"), layout="mxfp4")


def test_biases_only_with_the_mxfp4_layout():
    generator = torch.Generator(device="cuda").manual_seed(2)
    gate_up = ref.QuantizedExperts(2, 256, 128, generator)  # an int4 layer of H = 128, I = 128
    down = ref.QuantizedExperts(2, 128, 128, generator)
    packed = w4a8moe.prepack_weights(ref.pack_offset_binary(gate_up.q), gate_up.bf16_scales)
    act, token_scales = ref.random_activations(4, 128, generator)
    offsets = torch.tensor([0, 2, 4], dtype=torch.int64, device="cuda")
    with pytest.raises(ValueError, match="bias: expert biases are taken with PackedLayout::kMxfp4 only"):
        w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 256, bias=torch.zeros(2, 256, device="cuda"))
    int4_with_bias = w4a8moe.prepack_moe_weights(ref.pack_offset_binary(gate_up.q), gate_up.bf16_scales,
                                                 ref.pack_offset_binary(down.q), down.bf16_scales,
                                                 w13_bias=torch.zeros(2, 256))
    assert int4_with_bias.gemm1_bias.device == gate_up.q.device  # moved to the weights' device, as float32
    hidden = torch.zeros(2, 128, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match="gemm1_bias: expert biases are taken with PackedLayout::kMxfp4 only"):
        w4a8moe.fused_moe(hidden, torch.zeros(2, 2, device="cuda"), weights=int4_with_bias, top_k=1)
    m = GptOssLayer(4, 2, hidden=64, inter=32, seed=1)
    with pytest.raises(ValueError, match=r"bias must have shape \[4, 64\]"):
        w4a8moe.grouped_gemm(act, token_scales, offsets[[0, 1, 1, 1, 2]], m.weights.gemm1, 64,
                             bias=torch.zeros(4, 32, device="cuda"), layout="mxfp4")
    with pytest.raises(ValueError, match="activation='gelu': must be \"silu\" or \"gpt_oss_swiglu\""):
        w4a8moe.fused_moe(m.hidden_states(2), m.router_logits(2), weights=m.weights, top_k=2, activation="gelu")


def test_sizes_that_fit_two_layouts_need_the_layout_named():
    # E = 1, N = 16, K = 128: the exact-scale and MXFP4 buffers round to the same size.
    generator = torch.Generator(device="cuda").manual_seed(4)
    experts = mx.random_experts(1, 16, 128, generator, with_bias=False)
    packed = w4a8moe.prepack_weights(experts.codes, experts.scales, layout="mxfp4")
    assert packed.numel() == w4a8moe.packed_weights_bytes(1, 16, 128, "exact")
    act, token_scales = mx.padded_activations(torch.randn(3, 128, device="cuda", generator=generator))
    offsets = torch.tensor([0, 3], dtype=torch.int64, device="cuda")
    with pytest.raises(ValueError, match="fits more than one layout .* pass layout="):
        w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 16)
    out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 16, layout="mxfp4")
    check_gemm(out, *mx.grouped_gemm(experts, act, token_scales, offsets), offsets)
