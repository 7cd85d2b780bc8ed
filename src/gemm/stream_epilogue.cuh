// The epilogue of the two wgmma streaming kernels (stream_gemm.cu, exact_stream_gemm.cu): a consumer warpgroup's
// m64nR accumulators of one chunk to the output, scaled by the channel and token scales, directly or summed over the
// K slices of a thread-block cluster or of one block's workers.
//
// Accumulator i of a lane (wgmma_rs.cuh): channel lane/4 + 8 ((i/2) % 2) of the warp's 16-channel stripe, row
// 8 (i/4) + 2 (lane % 4) + i % 2 of the chunk.
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

#include "gemm/weight_stream.cuh"

namespace w4a8moe::gemm {

// Whether the consumers load an item's StripeScales when the item starts, so that their round trip (the channel
// scales come from HBM) overlaps the item's groups instead of following them before the stores (bench/NOTES.md
// §20): chunks of up to 32 rows; from 48 rows the registers they take spill.
template <int kRows>
inline constexpr bool kEarlyStripeScales = kRows <= 32;

// The scales of a lane's accumulators in store_stripe: its two channels (lane/4 and lane/4 + 8 of the stripe) and
// its rows of the chunk (index 2 (i/4) + i % 2 for accumulator i; 0 past the chunk); with kBias, the two channels'
// biases (the expert's, added to every row; 0 without a bias array).
template <int kRows, bool kBias = false>
struct StripeScales {
  float channel[2];
  float token[kRows / 4];
  float bias[kBias ? 2 : 1];
};

// bias_row: the expert's biases [N] or null (read only with kBias).
template <int kRows, bool kBias = false>
__device__ __forceinline__ StripeScales<kRows, kBias> load_stripe_scales(float const* channel_scales,
                                                                         float const* token_scales,
                                                                         Chunk const& chunk, int stripe,
                                                                         float const* bias_row = nullptr) {
  int const lane = int(threadIdx.x) % 32;
  StripeScales<kRows, kBias> s;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    int const column = stripe * kStripeChannels + lane / 4 + 8 * h;
    s.channel[h] = channel_scales[column];
    if constexpr (kBias) s.bias[h] = bias_row != nullptr ? bias_row[column] : 0.f;
  }
#pragma unroll
  for (int r = 0; r < kRows / 4; ++r) {
    int const row = 8 * (r / 2) + 2 * (lane % 4) + r % 2;
    s.token[r] = row < chunk.rows ? token_scales[chunk.first_row + row] : 0.f;
  }
  return s;
}

// The accumulators of the warp's stripe (which must exist) straight to the output rows of the chunk.
template <int kRows, class Out, bool kBias = false>
__device__ __forceinline__ void store_stripe(Out* out, int n, StripeScales<kRows, kBias> const& scales,
                                             Chunk const& chunk, int stripe, float const (&acc)[kRows / 2]) {
  int const lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) {
    int const row = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
    int const column = stripe * kStripeChannels + lane / 4 + 8 * ((i / 2) % 2);
    if (row < chunk.rows) {
      float const scale = scales.channel[(i / 2) % 2] * scales.token[2 * (i / 4) + i % 2];
      float value = scale * acc[i];
      if constexpr (kBias) value += scales.bias[(i / 2) % 2];
      out[(chunk.first_row + row) * n + column] = to_output<Out>(value);
    }
  }
}

// Chunks of more than 128 rows: loads the scales and stores in parts of 64 rows, so that the token scales of all rows
// (64 registers at 256 rows) are never live beside the accumulators.
template <int kRows, class Out, bool kBias = false>
__device__ __forceinline__ void store_stripe_in_parts(Out* out, int n, float const* channel_scales,
                                                      float const* token_scales, Chunk const& chunk, int stripe,
                                                      float const (&acc)[kRows / 2], float const* bias_row) {
  constexpr int kPartRows = 64;
#pragma unroll
  for (int part = 0; part < kRows / kPartRows; ++part) {
    Chunk rows = chunk;
    rows.first_row += part * kPartRows;
    rows.rows = chunk.rows - part * kPartRows;
    if (rows.rows <= 0) break;
    float part_acc[kPartRows / 2];
#pragma unroll
    for (int i = 0; i < kPartRows / 2; ++i) part_acc[i] = acc[part * kPartRows / 2 + i];
    store_stripe<kPartRows, Out, kBias>(
        out, n, load_stripe_scales<kPartRows, kBias>(channel_scales, token_scales, rows, stripe, bias_row), rows,
        stripe, part_acc);
  }
}

// Where the K slices of an item meet. The blocks of a thread-block cluster: each block's partial tile in its own
// shared memory, read across the cluster through distributed shared memory, at cluster barriers (which count every
// thread of every block, producers included).
struct ClusterSlices {
  float* partial;  // this block's tile

  __device__ __forceinline__ float* own(int) const { return partial; }
  __device__ __forceinline__ float const* of(int rank) const {
    return cooperative_groups::this_cluster().map_shared_rank(partial, rank);
  }
  __device__ __forceinline__ void sync() const { cooperative_groups::this_cluster().sync(); }
  // After the sums: no block may write its tile again (the next item's) before every block has read it.
  __device__ __forceinline__ void done_reading() const { sync(); }
};

// The workers of one block (stream_gemm.cu's K slices in a block): the tiles side by side in the block's shared
// memory, at a named barrier of the slices' consumer threads only (the producers run ahead). The kernel alternates
// two sets of tiles from one item to the next, so one barrier an item suffices: a slice writes a set again only after
// the next item's barrier, which every slice reaches once it has read this item's sums.
struct BlockSlices {
  float* partials;       // slice s's tile at partials + s * tile_floats
  int tile_floats;
  int consumer_threads;  // of all the slices

  __device__ __forceinline__ float* own(int split) const { return partials + split * tile_floats; }
  __device__ __forceinline__ float const* of(int rank) const { return partials + rank * tile_floats; }
  __device__ __forceinline__ void sync() const {
    asm volatile("bar.sync %0, %1;" ::"n"(kBlockSlicesBarrier), "r"(consumer_threads) : "memory");
  }
  __device__ __forceinline__ void done_reading() const {}

  static constexpr int kBlockSlicesBarrier = 1;  // 0 is __syncthreads()
};

// The scales of a consumer thread's first entry in store_slice_sum (i = its thread: channel split * slice + thread %
// slice, row thread / slice of the chunk), loaded when the item starts so that the sums wait on no round trip to them
// at the item's end, as kEarlyStripeScales does for unsplit items. Where slice x kRows is at most kConsumerThreads
// (the block's four slices of 8-row chunks) that entry is the thread's only one.
struct SliceEntryScales {
  float channel = 0.f, token = 0.f;
};

template <int kConsumerThreads>
__device__ __forceinline__ SliceEntryScales load_slice_entry_scales(int n, float const* channel_scales,
                                                                    float const* token_scales, Chunk const& chunk,
                                                                    int tile, int split, int splits) {
  constexpr int kTileChannels = 64;
  int const thread = int(threadIdx.x) % kConsumerThreads, slice = kTileChannels / splits;
  int const column = tile * kTileChannels + split * slice + thread % slice, row = thread / slice;
  SliceEntryScales s;
  if (row < chunk.rows && column < n) {
    s.channel = channel_scales[column];
    s.token = token_scales[chunk.first_row + row];
  }
  return s;
}

// K split over `splits` slices of one 64-channel tile, a warpgroup of kConsumerThreads each: each slice writes its
// partial tile [64 channels][kRows], then each sums a slice of the channels over the slices in slice order
// (deterministic) and stores it, plus the expert's bias (kBias, bias_row not null). Every consumer thread of every
// slice calls it. early: the thread's first entry's scales (load_slice_entry_scales), or null to load them here.
template <int kRows, int kConsumerThreads, class Out, bool kBias = false, class Slices>
__device__ void store_slice_sum(Out* out, int n, float const* channel_scales, float const* token_scales,
                                Chunk const& chunk, int tile, int split, int splits, Slices const& slices,
                                float const (&acc)[kRows / 2], float const* bias_row = nullptr,
                                SliceEntryScales const* early = nullptr) {
  constexpr int kTileChannels = 64;
  int const thread = int(threadIdx.x) % kConsumerThreads, warp = thread / 32, lane = thread % 32;
  float* const partial = slices.own(split);
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) {
    int const row = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
    int const channel = warp * kStripeChannels + lane / 4 + 8 * ((i / 2) % 2);
    partial[channel * kRows + row] = acc[i];
  }
  slices.sync();
  int const slice = kTileChannels / splits;
  for (int i = thread; i < slice * chunk.rows; i += kConsumerThreads) {
    int const channel = split * slice + i % slice, row = i / slice;
    int const column = tile * kTileChannels + channel;
    float sum = 0.f;
    for (int rank = 0; rank < splits; ++rank) sum += slices.of(rank)[channel * kRows + row];
    if (column < n) {
      int64_t const out_row = chunk.first_row + row;
      bool const preloaded = early != nullptr && i == thread;
      float const channel_scale = preloaded ? early->channel : channel_scales[column];
      float const token_scale = preloaded ? early->token : token_scales[out_row];
      float value = channel_scale * (token_scale * sum);
      if constexpr (kBias) value += bias_row != nullptr ? bias_row[column] : 0.f;
      out[out_row * n + column] = to_output<Out>(value);
    }
  }
  slices.done_reading();
}

}  // namespace w4a8moe::gemm
