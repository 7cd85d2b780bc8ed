"""prepack_weights against a PyTorch implementation of the packed format, both input formats, the scale checks and
the header read back on the host."""

import pytest
import torch

import w4a8moe
import w4a8_reference as ref

pytestmark = ref.requires_hopper


@pytest.fixture(scope="module")
def experts():
    generator = torch.Generator(device="cuda").manual_seed(1)
    experts = ref.QuantizedExperts(4, 96, 384, generator)
    experts.bf16_scales[1, 5] = 0  # an all-zero channel: sg = 0, sc = 0
    experts.group_scale, experts.channel_scale, experts.table_step = ref.split_bf16_scales(experts.bf16_scales)
    return experts


def layouts_range(experts):
    sections = ref.packed_sections(*experts.shape)
    return sections["layouts"], sections["layouts"] + experts.shape[0] * 12


def test_checkpoint_format_matches_torch_packing_bit_for_bit(experts):
    packed = w4a8moe.prepack_weights(ref.pack_offset_binary(experts.q), experts.bf16_scales)
    expected = ref.prepack(experts)
    assert packed.dtype == torch.uint8 and packed.shape == expected.shape
    assert packed.numel() == w4a8moe.packed_weights_bytes(*experts.shape)
    begin, end = layouts_range(experts)  # CuTe layout objects: not modelled here
    assert torch.equal(packed[:begin], expected[:begin])
    assert torch.equal(packed[end:], expected[end:])


def test_signed_int4_with_fp8_scales_packs_tables_of_those_scales(experts):
    """The caller's e4m3 group scales give tables e4m3(q * sg); the checkpoint's bf16 scales give tables rounded once
    from the unrounded s / c / 8, which differ where q * sg rounds away from q * s / c / 8."""
    from_split = w4a8moe.prepack_weights(ref.pack_signed_int4(experts.q), experts.group_scale,
                                         experts.channel_scale)
    expected = ref.prepack(experts, steps=experts.group_scale.float())
    begin, end = layouts_range(experts)
    assert torch.equal(from_split[:begin], expected[:begin])
    assert torch.equal(from_split[end:], expected[end:])
    from_checkpoint = w4a8moe.prepack_weights(ref.pack_offset_binary(experts.q), experts.bf16_scales)
    assert not torch.equal(from_checkpoint, from_split)


def test_non_finite_scale_is_rejected_with_the_library_message(experts):
    scales = experts.bf16_scales.clone()
    scales[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="break the scale rules"):
        w4a8moe.prepack_weights(ref.pack_offset_binary(experts.q), scales)


def test_fp8_group_scale_above_56_is_rejected(experts):
    group_scale = experts.group_scale.clone()
    group_scale[0, 0, 0] = 64.0
    with pytest.raises(ValueError, match="break the scale rules"):
        w4a8moe.prepack_weights(ref.pack_signed_int4(experts.q), group_scale, experts.channel_scale)


def test_header_reads_back_on_the_host(experts):
    packed = w4a8moe.prepack_weights(ref.pack_offset_binary(experts.q), experts.bf16_scales).cpu()
    assert w4a8moe.packed_weights_shape(packed) == (*experts.shape, "lookup")
    exact = w4a8moe.prepack_weights(ref.pack_offset_binary(experts.q), experts.bf16_scales, layout="exact").cpu()
    assert w4a8moe.packed_weights_shape(exact) == (*experts.shape, "exact")
    corrupt = packed.clone()
    corrupt[0] ^= 0xFF
    with pytest.raises(ValueError, match="bad magic"):
        w4a8moe.packed_weights_shape(corrupt)
    with pytest.raises(ValueError, match="truncated"):
        w4a8moe.packed_weights_shape(packed[:-256].clone())


def test_moe_weights_stack_gate_and_up(experts):
    generator = torch.Generator(device="cuda").manual_seed(2)
    gemm1 = ref.QuantizedExperts(2, 2 * 128, 256, generator)
    gemm2 = ref.QuantizedExperts(2, 256, 128, generator)
    weights = w4a8moe.prepack_moe_weights(ref.pack_offset_binary(gemm1.q), gemm1.bf16_scales,
                                          ref.pack_offset_binary(gemm2.q), gemm2.bf16_scales)
    assert (weights.num_experts, weights.hidden_size, weights.intermediate_size) == (2, 256, 128)
    assert torch.equal(weights.gemm1, w4a8moe.prepack_weights(ref.pack_offset_binary(gemm1.q), gemm1.bf16_scales))
    with pytest.raises(ValueError, match="disagree"):
        w4a8moe.prepack_moe_weights(ref.pack_offset_binary(gemm1.q), gemm1.bf16_scales,
                                    ref.pack_offset_binary(gemm1.q), gemm1.bf16_scales)


@pytest.mark.parametrize("case, error, message", [
    ("int64 weights", TypeError, "weights must be int32"),
    ("cpu weights", ValueError, "must be a CUDA tensor"),
    ("K not a multiple of 16", ValueError, "K must be a positive multiple of 16"),
    ("scales of the wrong shape", ValueError, r"group_scales must have shape \[4, 96, 3\]"),
    ("float32 scales", TypeError, "group_scales must be BFloat16 or Float8_e4m3fn"),
    ("fp8 scales without channel scales", ValueError,
     "channel_scales is null: required with ScaleFormat::kFP8WithChannelScale"),
    ("bf16 scales with channel scales", ValueError, "channel_scales must be null with ScaleFormat::kBF16"),
    ("channel scales of the wrong shape", ValueError, r"channel_scales must have shape \[4, 96\]"),
    ("non-contiguous weights", ValueError, "weights must be contiguous"),
    ("unknown layout", ValueError, "layout='fancy': must be \"lookup\", \"exact\" or \"mxfp4\""),
])
def test_bad_inputs_raise_clear_errors(experts, case, error, message):
    weights, scales, channel, layout = ref.pack_offset_binary(experts.q), experts.bf16_scales, None, "lookup"
    if case == "int64 weights":
        weights = weights.long()
    elif case == "cpu weights":
        weights = weights.cpu()
    elif case == "K not a multiple of 16":
        weights, scales = weights[..., :19].contiguous(), scales[..., :2].contiguous()
    elif case == "scales of the wrong shape":
        scales = scales[:, :, :2].contiguous()
    elif case == "float32 scales":
        scales = scales.float()
    elif case == "fp8 scales without channel scales":
        scales = experts.group_scale
    elif case == "bf16 scales with channel scales":
        channel = experts.channel_scale
    elif case == "channel scales of the wrong shape":
        scales, channel = experts.group_scale, experts.channel_scale[:, :64].contiguous()
    elif case == "non-contiguous weights":
        weights = weights.transpose(0, 1).contiguous().transpose(0, 1)
    elif case == "unknown layout":
        layout = "fancy"
    with pytest.raises(error, match=message):
        w4a8moe.prepack_weights(weights, scales, channel, layout)
