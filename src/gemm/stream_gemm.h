// The wgmma streaming kernel (stream_gemm.cu): the registry entry point, for chunks of kRows rows (8 and 16
// registered), K split over clusters where the items are few, or with kSplitKInBlock over the workers of one block.
#pragma once

#include <cstddef>

#include "gemm/grouped_params.h"
#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// It needs no workspace: it finds its rows in expert_offsets itself.
template <int kRows, bool kSplitKInBlock = false>
Status run_stream_gemm(GroupedGemmParams const& params, void* workspace, size_t workspace_bytes);

}  // namespace w4a8moe::gemm
