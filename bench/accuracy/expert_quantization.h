// The experts of one projection quantized as a W4A8 checkpoint holds them: the library's round-to-nearest
// quantizer (int4, group 128, bf16 scales), then the lookup-table layout's split into table steps, e4m3 group
// scales and fp32 channel scales (reference::split_bf16_scales).
#pragma once

#include <cstdint>
#include <vector>

#include "reference/quantized_experts.h"

namespace w4a8moe::accuracy {

// bf16: [E, N, K] bf16 bits. scales receives the RTN bf16 group scales [E, N, K/128]. Throws std::runtime_error if
// the quantizer refuses the weights.
reference::QuantizedExperts quantize_experts_rtn(std::vector<uint16_t> const& bf16, ExpertWeightShape const& shape,
                                                 std::vector<uint16_t>* scales);

}  // namespace w4a8moe::accuracy
