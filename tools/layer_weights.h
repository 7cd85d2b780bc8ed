// Where a layer's expert weights come from for the command-line program: random weights quantised the real way
// (round to nearest, group 128, into the checkpoint layout), or one layer of a compressed-tensors checkpoint.
#pragma once

#include <cstdint>
#include <string>

#include "reference/quantized_experts.h"
#include "w4a8moe/checkpoint.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::tools {

// Random bf16-like weights for the local experts (normal, std 1/sqrt(in), a few channels 4x larger, as trained
// weights have), quantised by RoundToNearestQuantizer into the checkpoint layout. Uses `threads` host threads.
Status make_random_layer(MoeShape const& shape, uint64_t seed, int threads, LayerExperts* experts);

// The reference's view of a gathered layer: q, e4m3 group scales and channel scales (split from the bf16 scales as
// the prepack does).
reference::QuantizedExperts unpack_for_reference(std::vector<int32_t> const& weights,
                                                 std::vector<uint16_t> const& scales, ExpertWeightShape const& shape);

}  // namespace w4a8moe::tools
