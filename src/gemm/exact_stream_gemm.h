// The wgmma streaming kernel on the two layouts of tile x group blocks (block_stream_kernel.cuh): the exact-scale
// layout (prepack/exact_format.h), with the activations' group sums it takes beside the activations, and the MXFP4
// layout (prepack/mxfp4_format.h).
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

// Blocks of the kernel per SM: 4 for chunks of up to 16 rows, 3 for 32 and 48 (their accumulators take 117 and 126
// registers, past the 102 that 4 blocks leave), 1 for the two-warpgroup tiles.
constexpr int exact_stream_blocks_per_sm(int rows, int consumers) {
  return consumers > 1 ? 1 : rows <= 16 ? 4 : 3;
}

// The MXFP4 layout's kernel (no group accumulator: the scales are in its A registers): 4 blocks per SM for chunks of
// 8 rows, 3 for 16-48 (114-124 registers), 2 for 64, 1 for the two-warpgroup tiles.
constexpr int mxfp4_stream_blocks_per_sm(int rows, int consumers) {
  return consumers > 1 ? 1 : rows <= 8 ? 4 : rows <= 48 ? 3 : 2;
}

// Workers one block of the kernel holds where the items are dealt per SM (item_deal.cuh, deal_per_sm): its blocks an
// SM, for the tiles of one consumer warpgroup and a producer warp (chunks under 128 rows); 1 (no such mode) for the
// others.
constexpr int block_stream_sm_workers(int blocks_per_sm, int rows, int consumers) {
  return consumers == 1 && rows < 128 ? blocks_per_sm : 1;
}

// params.packed holds the exact-scale layout and params.group_sums the activations' group sums. Chunks of kRows rows
// and tiles of kConsumers x 64 channels, one consumer warpgroup each; the instantiations are the "*_exact" configs
// of registry.cpp (tile_m = 64 kConsumers, tile_n = kRows). Those with one warpgroup split K over clusters when the
// items are few.
template <int kRows, int kConsumers>
Status run_exact_stream_gemm(GroupedGemmParams const& params);

// params.packed holds the MXFP4 layout. Chunks of kRows rows, tiles of kConsumers x 64 channels; the "*_mxfp4"
// configs of registry.cpp (tile_m = 64 kConsumers, tile_n = kRows). Those with one warpgroup split K over clusters
// when the items are few.
template <int kRows, int kConsumers>
Status run_mxfp4_stream_gemm(GroupedGemmParams const& params);

}  // namespace w4a8moe::gemm
