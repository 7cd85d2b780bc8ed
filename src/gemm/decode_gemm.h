// The decode kernel (decode_gemm.cu): registry entry points, for 8 or 16 rows per chunk of an expert's rows.
#pragma once

#include <cstddef>

#include "gemm/grouped_params.h"
#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// kTokenTiles tiles of 8 rows per chunk (1 or 2). It needs no workspace: it finds its rows in expert_offsets itself.
template <int kTokenTiles>
Status run_decode_gemm(GroupedGemmParams const& params, void* workspace, size_t workspace_bytes);

}  // namespace w4a8moe::gemm
