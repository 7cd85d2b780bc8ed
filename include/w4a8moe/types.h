// Element types and shapes shared by the public headers.
#pragma once

#include <cstdint>

namespace w4a8moe {

enum class OutputType : int { kBF16 = 0, kFP16 = 1 };

char const* output_type_name(OutputType type);

// Quantization group along K. The lookup-table conversion needs the group to be a multiple of the fp8 mainloop's
// K tile (128), and no checkpoint format in use has a larger one, so 128 is the only value accepted.
inline constexpr int kGroupSize = 128;

// Stacked weights of the experts of one projection: E experts, each [N output channels, K inputs].
struct ExpertWeightShape {
  int num_experts = 0;
  int n = 0;  // output channels; a multiple of 16
  int k = 0;  // inputs (reduction); a multiple of 128
  int group_size = kGroupSize;
};

}  // namespace w4a8moe
