// The rule for the optional expert biases of the GEMMs (GroupedGemmArgs::bias; MoeForwardArgs::gemm1_bias and
// gemm2_bias, which the layer passes to its GEMMs), for both entry points to check before anything is enqueued.
#pragma once

#include "common/status_message.h"
#include "w4a8moe/types.h"

namespace w4a8moe::gemm {

// Ok for no bias; a bias needs the MXFP4 layout (the only kernels that add one) and 4-byte alignment.
inline Status validate_expert_bias(float const* bias, PackedLayout layout, char const* arg_name) {
  if (bias == nullptr) return Status::Ok();
  if (layout != PackedLayout::kMxfp4) {
    return invalid_argument(arg_name, ": expert biases are taken with PackedLayout::kMxfp4 only (gpt-oss)");
  }
  if (!is_aligned(bias, 4)) return invalid_argument(arg_name, " must be 4-byte aligned");
  return Status::Ok();
}

}  // namespace w4a8moe::gemm
