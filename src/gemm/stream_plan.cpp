#include "gemm/stream_plan.h"

#include <algorithm>

namespace w4a8moe::gemm {

int64_t max_chunks(int64_t rows, int num_experts, int64_t chunk_rows) {
  int64_t const active = std::min<int64_t>(num_experts, rows);
  return active + (rows - active) / chunk_rows;
}

int64_t grid_chunks(int64_t total_rows, int64_t expected_rows, int num_experts, int64_t chunk_rows) {
  int64_t const expected = max_chunks(expected_rows, num_experts, chunk_rows);
  int64_t const chunks = std::min({max_chunks(total_rows, num_experts, chunk_rows),
                                   std::max<int64_t>(2 * expected, 16), int64_t(65535)});
  return std::max<int64_t>(chunks, 1);
}

size_t spread_shared_bytes(int64_t working_blocks, int sm_count, int max_blocks_per_sm, size_t needed) {
  int64_t const sms = std::max(sm_count, 1);
  int64_t const per_sm = std::clamp<int64_t>((working_blocks + sms - 1) / sms, 1, max_blocks_per_sm);
  size_t const spread = per_sm < max_blocks_per_sm ? kSharedMemoryPerSm / size_t(per_sm + 1) + 1024 : 0;
  return std::max(spread, needed);
}

StreamLaunchPlan plan_stream_launch(ExpertWeightShape const& shape, int64_t total_rows, int64_t expected_rows,
                                    int sm_count, int chunk_rows, int max_blocks_per_sm, size_t block_shared_bytes) {
  constexpr int kTileChannels = 64;
  constexpr int kMaxSplits = 8;  // the portable cluster size
  StreamLaunchPlan plan;
  plan.tiles = (shape.n + kTileChannels - 1) / kTileChannels;
  int64_t const expected_chunks = max_chunks(expected_rows, shape.num_experts, chunk_rows);
  // K slices: as many as fill about one wave of blocks over the expected chunks, each slice at least two groups.
  // One expert at 1 token (a DeepSeek-V3 expert-parallel rank) has 64 tiles of GEMM1 for 132 SMs.
  int64_t const items = std::max<int64_t>(expected_chunks, 1) * plan.tiles;
  int64_t const slots = int64_t(std::max(sm_count, 1)) * max_blocks_per_sm;
  int const groups = shape.k / kGroupSize;
  while (plan.splits < kMaxSplits && 4 * plan.splits <= groups && items * 2 * plan.splits <= slots) plan.splits *= 2;
  plan.grid_x = int64_t(plan.tiles) * plan.splits;
  plan.grid_y = grid_chunks(total_rows, expected_rows, shape.num_experts, chunk_rows);
  int64_t const working_blocks = plan.grid_x * std::min<int64_t>(plan.grid_y, 2 * expected_chunks);
  plan.shared_bytes = spread_shared_bytes(working_blocks, sm_count, max_blocks_per_sm, block_shared_bytes);
  return plan;
}

}  // namespace w4a8moe::gemm
