#include "gemm/stream_plan.h"

#include <algorithm>
#include <cmath>

namespace w4a8moe::gemm {
namespace {

// Dynamic shared memory for one block an SM: more than half an SM's, so that no SM takes two blocks whatever the
// block needs.
size_t one_block_an_sm(size_t needed) { return std::max(needed, kSharedMemoryPerSm / 2 + 1024); }

// Where the expected chunks fit in one wave of blocks (wave_chunks chunks' blocks at once), a grid of at most that
// wave: each wave of blocks that find no chunk costs ~1.5 us (DeepSeek-V3 EP8 GEMM1 with no local rows at 4 tokens:
// 5.6 us on the dealt wave, 9.9 on 3.9 waves of cluster pairs, 15.6 on 7.75 waves of split-K blocks; with the cap the
// cluster pairs' 9.7 -> 5.8, the idle rank's layer 24.1 -> 20.1 and busy ranks 1.2-3.1 us faster, bench/NOTES.md §65).
// The blocks, all resident, take the chunks past the grid in turn, as a second wave would. Larger grids stay: their
// late blocks would loop alone.
int64_t chunks_capped_at_a_wave(int64_t chunks, int64_t expected_chunks, int64_t wave_chunks) {
  int64_t const wave = std::max<int64_t>(wave_chunks, 1);  // a grid row wider than a wave still runs one
  return expected_chunks <= wave ? std::min(chunks, wave) : chunks;
}

}  // namespace

int64_t grid_chunks(int64_t total_rows, int64_t expected_rows, int num_experts, int64_t chunk_rows) {
  int64_t const expected = max_chunks(expected_rows, num_experts, chunk_rows);
  int64_t const chunks = std::min({max_chunks(total_rows, num_experts, chunk_rows),
                                   std::max<int64_t>(2 * expected, 16), int64_t(65535)});
  return std::max<int64_t>(chunks, 1);
}

double uniform_routing_high_rows(double mean_rows) { return mean_rows + 2.5 * std::sqrt(mean_rows); }

int64_t uniform_routing_chunks(int64_t rows, int num_experts, int64_t chunk_rows) {
  int64_t const active = std::max<int64_t>(1, std::min<int64_t>(num_experts, rows));
  double const high = uniform_routing_high_rows(double(rows) / double(active));
  return active * std::max<int64_t>(1, int64_t(std::ceil(high / double(chunk_rows))));
}

size_t spread_shared_bytes(int64_t working_blocks, int sm_count, int max_blocks_per_sm, size_t needed) {
  int64_t const sms = std::max(sm_count, 1);
  int64_t const per_sm = std::clamp<int64_t>((working_blocks + sms - 1) / sms, 1, max_blocks_per_sm);
  size_t const spread = per_sm < max_blocks_per_sm ? kSharedMemoryPerSm / size_t(per_sm + 1) + 1024 : 0;
  return std::max(spread, needed);
}

DecodeLaunchPlan plan_decode_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int warps_per_block, int max_blocks_per_sm) {
  DecodeLaunchPlan plan;
  int64_t const active_experts = std::max<int64_t>(1, std::min<int64_t>(shape.num_experts, expected_rows));
  int64_t const wave_warps = int64_t(std::max(sm_count, 1)) * max_blocks_per_sm * warps_per_block;
  int const stripes = shape.n / kStripeChannels;
  plan.splits = stripe_k_splits(active_experts * stripes, shape.k / kGroupSize, wave_warps);
  plan.stripes_per_block = warps_per_block / plan.splits;
  plan.grid_x = (stripes + plan.stripes_per_block - 1) / plan.stripes_per_block;
  plan.grid_y = grid_chunks(total_rows, expected_rows, shape.num_experts, chunk_rows);
  int64_t const expected_chunks = max_chunks(expected_rows, shape.num_experts, chunk_rows);
  // DeepSeek-V3 EP8 GEMM1 at 1 token: 256 x 8 = 2048 blocks for 256 working, capped at 256.
  int64_t const wave_chunks = int64_t(std::max(sm_count, 1)) * max_blocks_per_sm / std::max<int64_t>(plan.grid_x, 1);
  plan.grid_y = chunks_capped_at_a_wave(plan.grid_y, expected_chunks, wave_chunks);
  int64_t const working_blocks = plan.grid_x * std::min<int64_t>(plan.grid_y, 2 * expected_chunks);
  plan.shared_bytes = spread_shared_bytes(working_blocks, sm_count, max_blocks_per_sm, 0);
  return plan;
}

bool decode_launches_next_early(bool offsets_before_wait, int64_t expected_rows) {
  return offsets_before_wait && expected_rows <= kEarlyLaunchExpectedRows;
}

StreamLaunchPlan plan_stream_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int max_blocks_per_sm, size_t block_shared_bytes,
                                    int tile_channels, int max_splits, ClusterResidency const& residency) {
  int const kMaxSplits = std::min(max_splits, 8);  // 8: the portable cluster size
  // Persistent workers pay for their static deal (an SM with an item more) with items of up to 16 groups: Qwen3
  // GEMM2 (6 groups) 1.2-1.3x faster at 16-128 tokens, Qwen3 GEMM1 and DeepSeek-V3 GEMM2 (16) 1.01-1.08x; items of 32
  // and 56 groups (Mixtral and DeepSeek-V3 GEMM1) up to 13 % slower (H200, bench/NOTES.md §9). With at most two
  // blocks an SM they pay for items of any K: a block that ends leaves its SM idle until the next one has started
  // and filled its ring, which no third block covers (the block-layout kernels' two-warpgroup tiles 6-21 % faster
  // at 32-112 groups, bench/NOTES.md §39).
  constexpr int kPersistentMaxGroups = 16;
  bool const any_k_persistent = max_blocks_per_sm <= 2;
  StreamLaunchPlan plan;
  plan.tiles = (shape.n + tile_channels - 1) / tile_channels;
  int64_t const expected_chunks = max_chunks(expected_rows, shape.num_experts, chunk_rows);
  // K slices: as many as fill about one wave of blocks over the expected chunks, each slice at least two groups, and
  // no more than keep every cluster resident at once: Mixtral-8x7B GEMM2 at 1 token, 128 tiles, ran in clusters of 4
  // 31.4 us, 4 of them after the first 124, and in clusters of 2 26.3 (H200, bench/NOTES.md §41). One expert at 1
  // token (a DeepSeek-V3 expert-parallel rank) has 64 tiles of GEMM1 for 132 SMs.
  int64_t const items = std::max<int64_t>(expected_chunks, 1) * plan.tiles;
  plan.items = items;
  int64_t const slots = int64_t(std::max(sm_count, 1)) * max_blocks_per_sm;
  int const groups = shape.k / kGroupSize;
  while (plan.splits < kMaxSplits && 4 * plan.splits <= groups &&
         items * 2 * plan.splits <= residency.blocks(2 * plan.splits, slots)) {
    plan.splits *= 2;
  }
  int64_t const wave = std::max<int64_t>(slots / plan.splits, 1);
  plan.persistent = (any_k_persistent || groups / plan.splits <= kPersistentMaxGroups) && 2 * items >= 3 * wave;
  int64_t working_blocks = 0;
  if (plan.persistent) {
    plan.workers = wave;
    working_blocks = wave * plan.splits;
  } else {
    int64_t chunks = grid_chunks(total_rows, expected_rows, shape.num_experts, chunk_rows);
    // Blocks past the last chunk still start, scan the offsets and leave; where the bound overcounts by a quarter or
    // more, the grid covers uniform routing's chunks instead, and blocks loop over any more (bench/NOTES.md §40).
    int64_t const uniform = uniform_routing_chunks(expected_rows, shape.num_experts, chunk_rows);
    if (4 * uniform < 3 * chunks) chunks = std::min(chunks, std::max<int64_t>(uniform, 16));
    chunks = chunks_capped_at_a_wave(chunks, expected_chunks, slots / (plan.tiles * plan.splits));
    plan.workers = chunks * plan.tiles;
    working_blocks = std::min(chunks, 2 * expected_chunks) * plan.tiles * plan.splits;
  }
  plan.blocks = plan.workers * plan.splits;
  plan.shared_bytes = spread_shared_bytes(working_blocks, sm_count, max_blocks_per_sm, block_shared_bytes);
  return plan;
}

StreamLaunchPlan deal_per_sm(StreamLaunchPlan plan, int sm_count, int workers_per_block, size_t block_shared_bytes) {
  if (workers_per_block <= 1 || plan.splits > 1 || plan.items < sm_count) return plan;
  plan.persistent = true;
  plan.workers_per_block = workers_per_block;
  plan.blocks = std::max(sm_count, 1);
  plan.workers = plan.blocks * workers_per_block;
  plan.shared_bytes = one_block_an_sm(block_shared_bytes);
  return plan;
}

StreamLaunchPlan split_k_in_block(StreamLaunchPlan plan, int groups, int workers_per_block, size_t sm_block_bytes) {
  if (workers_per_block <= 1) return plan;
  if (plan.splits <= 1) {
    // A worker without a group of an item would never see the item (its producer stages nothing for it).
    if (plan.workers_per_block != workers_per_block || groups < workers_per_block) return plan;
    // Dealt per SM: the block's workers take each of the SM's items together, a slice of K each.
    plan.block_splits = workers_per_block;
    plan.workers = plan.blocks;
    plan.shared_bytes = one_block_an_sm(sm_block_bytes);
    return plan;
  }
  // A split plan is one cluster an item (never persistent: its items fill at most a wave of clusters), and the grid
  // covers the expected items; each cluster becomes a block, which loops over the items past the grid.
  plan.splits = 1;
  plan.block_splits = workers_per_block;
  plan.workers_per_block = workers_per_block;
  plan.blocks = plan.workers;
  plan.shared_bytes = one_block_an_sm(sm_block_bytes);
  return plan;
}

StreamLaunchPlan plan_worker_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int consumers, int blocks_per_sm,
                                    size_t block_shared_bytes, int sm_workers, size_t sm_block_bytes,
                                    ClusterResidency const& residency) {
  constexpr int kWarpgroupChannels = 64;
  StreamLaunchPlan const plan =
      plan_stream_launch(shape, total_rows, expected_rows, sm_count, chunk_rows, blocks_per_sm, block_shared_bytes,
                         consumers * kWarpgroupChannels, consumers == 1 ? 8 : 1, residency);
  return deal_per_sm(plan, sm_count, sm_workers, sm_block_bytes);
}

}  // namespace w4a8moe::gemm
