// Launch plans of the two weight-streaming kernels (decode_gemm.cu, stream_gemm.cu): how many chunks of an expert's
// rows a call can have, how the grid covers them, how K is split, and how a small grid is spread over the SMs.
// Host-only and unit-tested on the CPU; the launchers only enqueue what these return.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prepack/packed_format.h"  // W4A8_HOST_DEVICE
#include "w4a8moe/types.h"

namespace w4a8moe::gemm {

// Shared memory per SM on Hopper (H100 and H200, the only devices require_hopper_device() accepts).
inline constexpr size_t kSharedMemoryPerSm = 228 * 1024;
// Resident blocks per SM of the wgmma streaming kernel (registers and its ring of stages).
inline constexpr int kStreamBlocksPerSm = 4;
// Channels a warp of the streaming kernels streams together: the rows of a reorder atom
// (prepack::reorder_atom_offset).
inline constexpr int kStripeChannels = 16;
// A reorder atom: one stripe's channels over kAtomK of K, 256 contiguous bytes (prepack/packed_format.h).
inline constexpr int kAtomK = 32;
inline constexpr int kAtomBytes = kStripeChannels * kAtomK / 2;
inline constexpr int kAtomsPerGroup = kGroupSize / kAtomK;
// Rows per chunk of the registered wgmma streaming config ("64x8_stream").
inline constexpr int kStreamChunkRows = 8;

// K splits of the mma.sync stripe kernels (the decode GEMM, the one-launch layer): `items` warp items (16-channel
// stripes, or the layer's gate/up pairs) of `groups` K groups each, on `wave_warps` resident warps. The warps of one
// item split K (a power of two, at most 8: a block's warps; at most one warp per group) until the items cover about
// a wave, or until no warp streams more than 16 groups one after another (a warp keeps two groups in flight, so a
// long K alone is latency-bound: DeepSeek-V3 GEMM1 at 16 tokens, bench/NOTES.md §6).
W4A8_HOST_DEVICE inline int stripe_k_splits(int64_t items, int groups, int64_t wave_warps) {
  constexpr int kMaxSplits = 8, kMaxGroupsPerWarp = 16;
  int splits = 1;
  while (splits < kMaxSplits && 2 * splits <= groups &&
         (items * 2 * splits <= wave_warps || splits * kMaxGroupsPerWarp < groups)) {
    splits *= 2;
  }
  return splits;
}

// Whether the wgmma streaming kernel (stream_gemm.cu) copies a group's weights of a tile in one 3D tensor copy
// instead of four bulk copies, one a K atom: for K of at least 32 groups, where that took 0-5 % off every config and
// case measured; on shorter K it cost up to 14 % where a worker has one or two items (Qwen3-30B-A3B GEMM2 at 4
// tokens, bench/NOTES.md §83).
inline constexpr int kMinGroupsForWeightTensorCopies = 32;
inline bool weights_in_one_tensor_copy(int groups) { return groups >= kMinGroupsForWeightTensorCopies; }

// The chunks of chunk_rows rows `rows` rows over num_experts experts can make: at most one per expert that holds
// rows, plus one per chunk_rows rows beyond each expert's first. (The looser "one partial per expert plus the full
// ones" counted a ninth chunk for 8 rows over 8 experts, and that empty chunk's blocks kept the grid from
// spreading: Qwen3 GEMM2 at 1 token 8.6 -> 7.3 us.)
// Host and device: the wgmma kernel skips searching for chunk indices past it.
W4A8_HOST_DEVICE inline int64_t max_chunks(int64_t rows, int num_experts, int64_t chunk_rows) {
  int64_t const active = rows < num_experts ? rows : num_experts;
  return active + (rows - active) / chunk_rows;
}

// Grid rows (one chunk index each; blocks loop over the chunks past the grid): twice the chunks the expected rows
// make, at least 16, at most what total_rows can make. Not all that total_rows could make: blocks without a chunk
// still scan the offsets, which cost an expert-parallel rank (4 of 32 rows local) more than its GEMM. A rank that
// gets more rows than expected (3 experts where 1 row was) is right, slower.
int64_t grid_chunks(int64_t total_rows, int64_t expected_rows, int num_experts, int64_t chunk_rows);

// An active expert's rows under uniform routing at `mean_rows` rows an expert: about binomial, taken at the mean plus
// 2.5 standard deviations.
double uniform_routing_high_rows(double mean_rows);

// The chunks of chunk_rows rows that `rows` rows make under uniform routing over num_experts experts, each active
// expert taken at uniform_routing_high_rows. max_chunks bounds them with one partial chunk per active expert besides
// the full ones, which overcounts many experts of few rows each: gpt-oss-120b at 1024 tokens (32 rows an expert) on
// 48-row chunks, 128 against 210.
int64_t uniform_routing_chunks(int64_t rows, int num_experts, int64_t chunk_rows);

// Dynamic shared memory that spreads a grid of less than a wave over all SMs: the block scheduler fills an SM up to
// its limit before the next, so 256 blocks at 3 per SM leave 46 SMs idle. The bytes leave no room for one more
// block than the grid needs per SM; at least `needed`. working_blocks counts blocks with work for twice the
// expected rows, like the grid: capped for 1 expected expert, a rank that got 3 runs three waves (DeepSeek-V3
// GEMM1 32.6 -> 38.2 us on the decode kernel).
size_t spread_shared_bytes(int64_t working_blocks, int sm_count, int max_blocks_per_sm, size_t needed);

// The mma.sync decode kernel (decode_gemm.cu): a 2D grid of stripe groups x chunks. A block's warps take
// `stripes_per_block` stripes and split K `splits` ways (stripe_k_splits over the experts the expected rows can
// reach, against one wave of warps); grid_chunks covers the chunks, and a small grid is spread over the SMs.
struct DecodeLaunchPlan {
  int splits = 1;
  int stripes_per_block = 0;
  int64_t grid_x = 0;       // blocks over the stripes of N
  int64_t grid_y = 0;       // chunk indices
  size_t shared_bytes = 0;  // dynamic shared memory per block (spreading only)
};

DecodeLaunchPlan plan_decode_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int warps_per_block, int max_blocks_per_sm);

// Whether the decode kernel lets the next kernel launch as it starts, before its search and its PDL wait (the second
// exception of common/pdl.cuh): only where the routing has ended before it starts (offsets_before_wait) and the rank
// expects at most kEarlyLaunchExpectedRows rows (an expert-parallel rank at 1-2 tokens, whose blocks mostly find no
// chunk). There the next kernel's launch and its reads pass under the search: the idle DeepSeek-V3 EP8 rank 1.2-1.8
// us faster at 1-2 tokens, its busy rank at 2 tokens 0.9; Qwen3-30B-A3B at 1 token (8 rows) lost 0.5 us with it
// (bench/NOTES.md §112).
inline constexpr int64_t kEarlyLaunchExpectedRows = 2;
bool decode_launches_next_early(bool offsets_before_wait, int64_t expected_rows);

// The wgmma streaming kernel (stream_gemm.cu): workers, each a block (or a thread-block cluster of `splits` blocks,
// one K slice each, that sums its partial tiles through distributed shared memory), taking the items worker,
// worker + workers, ... of the call, item = chunk * tiles + tile.
//  - Persistent (short items, or items of any length at most two blocks an SM; at least 1.5 items per worker of one
//    wave): one wave of workers, each streaming its items back to back, the next already in flight while the last
//    finishes. Per-item set-up then costs nothing, but the items are dealt statically, so an SM can end up with one
//    item more than another.
//  - Otherwise one item per block (grid_chunks covers the expected chunks, or uniform_routing_chunks where that is
//    under 3/4 of them; more make the blocks loop), and the block scheduler balances the SMs.
//  - Dealt per SM (deal_per_sm, kernels that can hold several workers in a block): one block an SM, its workers
//    taking the block's items in turn (item_deal.cuh).
struct StreamLaunchPlan {
  int tiles = 0;              // tile_channels tiles of N
  int splits = 1;             // K slices per tile = the cluster's size along x
  bool persistent = false;
  int64_t items = 0;          // the items the expected rows make
  int64_t workers = 0;        // blocks / splits, blocks x workers_per_block where dealt, blocks with block_splits
  int workers_per_block = 1;  // > 1: dealt per SM, or K slices in one block (block_splits)
  int block_splits = 1;       // > 1: the block's workers are the K slices of each of its items (split_k_in_block)
  int64_t blocks = 0;         // the 1D grid
  size_t shared_bytes = 0;    // dynamic shared memory per block
};

// The blocks of a kernel that can be resident at once when it is launched in thread-block clusters of 2, 4 and 8
// blocks (cudaOccupancyMaxActiveClusters times the size; 0 where not known: sm_count x blocks an SM). A cluster's
// blocks must share a GPC, so several blocks an SM leave slots no cluster can take: on an H200, 124 clusters of four
// 64x8_exact blocks (496 blocks) against 132 x 4 = 528 slots.
struct ClusterResidency {
  int64_t blocks_in_clusters_of[9] = {};  // indexed by the cluster size: 2, 4 or 8

  int64_t blocks(int cluster_size, int64_t slots) const {
    int64_t const known = cluster_size > 1 && cluster_size <= 8 ? blocks_in_clusters_of[cluster_size] : 0;
    return known > 0 ? known : slots;
  }
};

// block_shared_bytes: the block's own dynamic shared memory (its ring of stages); tile_channels: the channels of an
// item (64, or 128 for the exact-scale kernel's two warpgroups); max_splits: 1 where the kernel cannot split K;
// residency: where known, how many blocks its clusters leave resident (a split takes only as many K slices as keep
// all of its clusters resident at once).
StreamLaunchPlan plan_stream_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int max_blocks_per_sm, size_t block_shared_bytes,
                                    int tile_channels = 64, int max_splits = 8, ClusterResidency const& residency = {});

// The plan dealt per SM, where the kernel can hold `workers_per_block` workers (its blocks an SM; 1: it cannot) in a
// block of `block_shared_bytes` (their rings): one block an SM, each SM the same count of items within one, taken by
// its workers as they finish. Only unsplit plans of at least an item an SM; the others are returned as they are.
StreamLaunchPlan deal_per_sm(StreamLaunchPlan plan, int sm_count, int workers_per_block, size_t block_shared_bytes);

// The plan of the split-K wgmma configs ("64x8_splitk_stream"): where `plan` splits K over thread-block clusters, the
// K slices are instead the `workers_per_block` workers of one block an SM, which take the same items (block b: b,
// b + blocks, ...), each a slice of K, and sum their partial tiles in the block's shared memory. No cluster has to
// stay resident, so every item gets workers_per_block slices where clusters got fewer (Mixtral-8x7B GEMM2 at 1 token:
// 2 slices of 56 groups on an H100, bench/NOTES.md §58). Plans dealt per SM (deal_per_sm) keep their block an SM and
// its items, whose K (`groups` groups, at least one a worker) its workers then split the same way: an SM's items end
// together, where workers that each take whole items leave the SM's last ones to one or two of them. sm_block_bytes:
// the block's rings and partial tiles. Other plans (one unsplit item a block) are returned as they are.
StreamLaunchPlan split_k_in_block(StreamLaunchPlan plan, int groups, int workers_per_block, size_t sm_block_bytes);

// The plan of a streaming kernel whose workers are `consumers` warpgroups of 64 channels each and a producer
// (stream_gemm.cu: one; block_stream_kernel.cuh: one or two): plan_stream_launch over items of 64 x consumers
// channels, K split over clusters only with one warpgroup, then dealt per SM where one block of an SM holds
// sm_workers > 1 workers, their rings in sm_block_bytes. Both launchers enqueue what this returns, and the GPU tests
// predict their plans with it.
StreamLaunchPlan plan_worker_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int consumers, int blocks_per_sm,
                                    size_t block_shared_bytes, int sm_workers, size_t sm_block_bytes,
                                    ClusterResidency const& residency = {});

}  // namespace w4a8moe::gemm
