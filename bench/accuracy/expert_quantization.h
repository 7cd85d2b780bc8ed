// The experts of one projection quantized as a W4A8 checkpoint holds them: the library's round-to-nearest
// quantizer (int4, group 128, bf16 scales), then the lookup-table layout's split into e4m3 group and fp32 channel
// scales.
#pragma once

#include <cstdint>
#include <vector>

#include "reference/quantized_experts.h"

namespace w4a8moe::accuracy {

// bf16: [E, N, K] bf16 bits. scales receives the RTN bf16 group scales [E, N, K/128]. Throws std::runtime_error if
// the quantizer refuses the weights.
reference::QuantizedExperts quantize_experts_rtn(std::vector<uint16_t> const& bf16, ExpertWeightShape const& shape,
                                                 std::vector<uint16_t>* scales);

// The split's group scale before its e4m3 rounding, s / c / 8 with c = sc / 8, in the fp32 operations of
// reference::split_bf16_scales (0 for an all-zero channel, whose sc is 0).
inline float unrounded_group_scale(float bf16_scale, float channel_scale) {
  return channel_scale == 0.0f ? 0.0f : bf16_scale / (channel_scale / 8.0f) / 8.0f;
}

}  // namespace w4a8moe::accuracy
