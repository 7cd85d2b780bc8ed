// plan_moe remembered per call shape, for moe_forward: the plan depends only on its arguments and the current
// device's SM count (the GEMM heuristic's waves), and computing it takes 1-3 us of host time a call (the heuristic's
// row estimates and launch plans; Qwen3-30B-A3B at 128 tokens 2.3 us on the build machine), up to a tenth of a
// decode layer's GPU time where the layer is not captured in a CUDA graph. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moe/moe_plan.h"

namespace w4a8moe::moe {

// The most plans remembered; past that all are forgotten at once (a server asks for a few dozen token counts of each
// layer shape, so this is rarely reached).
inline constexpr size_t kMaxRememberedPlans = 1024;

// plan_moe(shape, tokens, max_tokens, options) for the current device, computed the first time and remembered.
MoePlan remembered_plan_moe(MoeShape const& shape, int64_t tokens, int64_t max_tokens, MoePlanOptions const& options);

// Plans remembered now (for the tests).
size_t remembered_plan_count();

}  // namespace w4a8moe::moe
