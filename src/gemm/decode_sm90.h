// The decode kernel (decode_sm90.cu): a W4A8 grouped GEMM for few rows per expert that streams the packed weights
// with bulk copies and multiplies with mma.sync. Same inputs, numerics and output as the CUTLASS configs; needs no
// workspace.
#pragma once

#include "gemm/grouped_params.h"
#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// Tokens per work item; an expert with more rows is processed in chunks of this many, re-reading its weights.
inline constexpr int kDecodeMaxTokens = 32;

Status run_decode_gemm(GroupedGemmParams const& params);

}  // namespace w4a8moe::gemm
