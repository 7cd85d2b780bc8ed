// The wgmma streaming kernel on the exact-scale layout (prepack/exact_format.h), and the activations' group sums it
// takes beside the activations.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gemm/grouped_params.h"
#include "w4a8moe/status.h"

namespace w4a8moe::gemm {

// Rows between the groups of the group sums: rows rounded up to a multiple of 4 (16-byte aligned groups).
W4A8_HOST_DEVICE inline int64_t group_sums_stride(int64_t rows) { return ((rows > 1 ? rows : 1) + 3) / 4 * 4; }

// sums[g * group_sums_stride(rows) + m] = 2^-6 sum_k act[m, 128 g + k] (e4m3 act [rows, k], 16-byte aligned).
Status launch_activation_group_sums(void const* act, int64_t rows, int k, float* sums, cudaStream_t stream);

// params.packed holds the exact-scale layout and params.group_sums the activations' group sums. Chunks of kRows rows
// and tiles of kConsumers x 64 channels, one consumer warpgroup each; instantiated: <8, 1> and <16, 1> (K split over
// clusters when the items are few), <64, 2> and <128, 2>.
template <int kRows, int kConsumers>
Status run_exact_stream_gemm(GroupedGemmParams const& params);

}  // namespace w4a8moe::gemm
