"""grouped_gemm against a float64 PyTorch reference.

Tolerance (as in tests/gpu/grouped_gemm_gpu_test.cu): kernel and reference multiply the same e4m3 values, so they
differ only in the accumulation (fp8 wgmma's fast accumulation: about 2^-10 of st * sc * sum_k |a w|) and the
output rounding (2^-8 relative for bf16; we allow 2^-7). A wrong scale, row or element order breaks this by orders
of magnitude.
"""

import pytest
import torch

import w4a8moe
import w4a8_reference as ref

pytestmark = ref.requires_hopper


def make_problem(num_experts, n, k, counts, seed, first_row=0, trailing_rows=0, layout="lookup"):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    experts = ref.QuantizedExperts(num_experts, n, k, generator)
    packed = w4a8moe.prepack_weights(ref.pack_offset_binary(experts.q), experts.bf16_scales, layout=layout)
    offsets = torch.tensor([first_row] + counts, dtype=torch.int64, device="cuda").cumsum(0)
    rows = int(offsets[-1]) + trailing_rows
    act, token_scales = ref.random_activations(rows, k, generator)
    return experts, packed, act, token_scales, offsets


def check_against_reference(out, experts, act, token_scales, offsets, layout="lookup"):
    expected, magnitude = ref.grouped_gemm(experts, act, token_scales, offsets, layout)
    begin, end = int(offsets[0]), int(offsets[-1])
    got, want, mag = out[begin:end].double(), expected[begin:end], magnitude[begin:end]
    assert torch.isfinite(got).all()
    bound = want.abs() * 2**-7 + mag * 2**-10
    excess = (got - want).abs() - bound
    assert (excess <= 0).all(), f"{int((excess > 0).sum())} outputs out of bound, worst excess {excess.max():.3e}"


@pytest.mark.parametrize("num_experts, n, k, counts", [
    (8, 256, 512, [5, 0, 64, 1, 130, 0, 17, 3]),  # empty experts, uneven rows
    (4, 96, 384, [33, 7, 0, 200]),               # K = 384 (Qwen3 GEMM2 at 2-way TP), N a multiple of 16 only
    (1, 128, 2048, [1]),
    (128, 1536, 2048, [4] * 128),                 # Qwen3-30B-A3B GEMM1, decode-sized
])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16])
def test_matches_reference(num_experts, n, k, counts, out_dtype):
    experts, packed, act, token_scales, offsets = make_problem(num_experts, n, k, counts, seed=n + k)
    out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, n, out_dtype)
    assert out.shape == (act.shape[0], n) and out.dtype == out_dtype
    check_against_reference(out, experts, act, token_scales, offsets)


def test_rows_outside_the_offsets_are_allowed():
    experts, packed, act, token_scales, offsets = make_problem(3, 128, 256, [10, 0, 21], seed=3, first_row=5,
                                                               trailing_rows=9)
    out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 128)
    check_against_reference(out, experts, act, token_scales, offsets)


@pytest.mark.parametrize("layout", ["lookup", "exact"])
def test_every_kernel_config_matches_reference(layout):
    experts, packed, act, token_scales, offsets = make_problem(4, 256, 512, [3, 40, 0, 150], seed=4, layout=layout)
    assert packed.numel() == w4a8moe.packed_weights_bytes(4, 256, 512, layout)
    for config in [None] + w4a8moe.gemm_config_names(layout):
        out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 256, config=config)
        check_against_reference(out, experts, act, token_scales, offsets, layout)


def test_exact_layout_matches_reference_on_decode_and_uneven_rows():
    for counts in ([1] * 16, [5, 0, 64, 1, 130, 0, 17, 3] * 2):
        experts, packed, act, token_scales, offsets = make_problem(16, 1536, 2048, counts, seed=len(counts),
                                                                   layout="exact")
        out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 1536)
        check_against_reference(out, experts, act, token_scales, offsets, "exact")


@pytest.mark.parametrize("layout", ["lookup", "exact"])
def test_k_off_whole_groups_is_padded_with_zeros(layout):
    """K = 208 (gpt-oss has 2880): prepacked from [E, N, 208] weights and ceil(208 / 128) = 2 scale groups, the act
    rows hold padded_k(K) = 256 columns, zeros past K. The reference is the K = 256 problem whose weights past 208
    are zero."""
    generator = torch.Generator(device="cuda").manual_seed(208)
    experts = ref.QuantizedExperts(3, 144, 256, generator)
    experts.q[..., 208:] = 0
    weights = ref.pack_offset_binary(experts.q)[..., :26].contiguous()  # K = 208
    packed = w4a8moe.prepack_weights(weights, experts.bf16_scales, layout=layout)
    assert packed.numel() == w4a8moe.packed_weights_bytes(3, 144, 208, layout)
    assert packed.numel() == w4a8moe.packed_weights_bytes(3, 144, 256, layout)
    offsets = torch.tensor([0, 7, 0, 40], dtype=torch.int64, device="cuda").cumsum(0)
    act, token_scales = ref.random_activations(47, 256, generator)
    act.view(torch.uint8)[:, 208:] = 0
    out = w4a8moe.grouped_gemm(act, token_scales, offsets, packed, 144)
    check_against_reference(out, experts, act, token_scales, offsets, layout)
    with pytest.raises(ValueError, match="act has 208 columns; it must hold padded_k"):
        w4a8moe.grouped_gemm(act[:, :208].contiguous(), token_scales, offsets, packed, 144)


@pytest.mark.parametrize("case, error, message", [
    ("bf16 act", TypeError, "act must be Float8_e4m3fn"),
    ("int32 offsets", TypeError, "expert_offsets must be Long"),
    ("cpu scales", ValueError, "token_scales is on cpu"),
    ("short scales", ValueError, r"token_scales must have shape \[50\]"),
    ("wrong n", ValueError, "packed for another shape"),
    ("unaligned act", ValueError, "act's data pointer must be 16-byte aligned"),
    ("unknown config", NotImplementedError, "no such config"),
    ("float32 out", TypeError, "out_dtype must be"),
])
def test_bad_inputs_raise_clear_errors(case, error, message):
    experts, packed, act, token_scales, offsets = make_problem(2, 128, 256, [20, 30], seed=5)
    n, kwargs = 128, {}
    if case == "bf16 act":
        act = act.to(torch.bfloat16)
    elif case == "int32 offsets":
        offsets = offsets.int()
    elif case == "cpu scales":
        token_scales = token_scales.cpu()
    elif case == "short scales":
        token_scales = token_scales[:-1]
    elif case == "wrong n":
        n = 256
    elif case == "unaligned act":
        buffer = torch.empty(act.numel() + 8, dtype=torch.uint8, device="cuda")
        act = buffer[8:].view(torch.float8_e4m3fn).view(act.shape)
    elif case == "unknown config":
        kwargs["config"] = "no_such_kernel"
    elif case == "float32 out":
        kwargs["out_dtype"] = torch.float32
    with pytest.raises(error, match=message):
        w4a8moe.grouped_gemm(act, token_scales, offsets, packed, n, **kwargs)
