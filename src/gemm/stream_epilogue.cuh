// The epilogue of the two wgmma streaming kernels (stream_gemm.cu, exact_stream_gemm.cu): a consumer warpgroup's
// m64nR accumulators of one chunk to the output, scaled by the channel and token scales, directly or summed over the
// K slices of a thread-block cluster.
//
// Accumulator i of a lane (wgmma_rs.cuh): channel lane/4 + 8 ((i/2) % 2) of the warp's 16-channel stripe, row
// 8 (i/4) + 2 (lane % 4) + i % 2 of the chunk.
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

#include "gemm/weight_stream.cuh"

namespace w4a8moe::gemm {

// The accumulators of the warp's stripe (which must exist) straight to the output rows of the chunk.
template <int kRows, class Out>
__device__ __forceinline__ void store_stripe(Out* out, int n, float const* channel_scales, float const* token_scales,
                                             Chunk const& chunk, int stripe, float const (&acc)[kRows / 2]) {
  int const lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) {
    int const row = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
    int const column = stripe * kStripeChannels + lane / 4 + 8 * ((i / 2) % 2);
    if (row < chunk.rows) {
      int64_t const out_row = chunk.first_row + row;
      out[out_row * n + column] = to_output<Out>(channel_scales[column] * (token_scales[out_row] * acc[i]));
    }
  }
}

// K split over the cluster (one 64-channel tile, a warpgroup of kConsumerThreads per block): each block writes its
// partial tile [64 channels][kRows] to `partial`, then each rank sums a slice of the channels over the ranks in rank
// order (deterministic) and stores it. Every consumer thread of every block of the cluster calls it.
template <int kRows, int kConsumerThreads, class Out>
__device__ void store_cluster_sum(Out* out, int n, float const* channel_scales, float const* token_scales,
                                  Chunk const& chunk, int tile, int split, int splits, float* partial,
                                  float const (&acc)[kRows / 2]) {
  constexpr int kTileChannels = 64;
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  int const warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) {
    int const row = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
    int const channel = warp * kStripeChannels + lane / 4 + 8 * ((i / 2) % 2);
    partial[channel * kRows + row] = acc[i];
  }
  cluster.sync();
  int const slice = kTileChannels / splits;
  for (int i = int(threadIdx.x); i < slice * chunk.rows; i += kConsumerThreads) {
    int const channel = split * slice + i % slice, row = i / slice;
    int const column = tile * kTileChannels + channel;
    float sum = 0.f;
    for (int rank = 0; rank < splits; ++rank) sum += cluster.map_shared_rank(partial, rank)[channel * kRows + row];
    if (column < n) {
      int64_t const out_row = chunk.first_row + row;
      out[out_row * n + column] = to_output<Out>(channel_scales[column] * (token_scales[out_row] * sum));
    }
  }
  cluster.sync();  // the partial tiles are read
}

}  // namespace w4a8moe::gemm
