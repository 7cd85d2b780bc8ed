// Picks a grouped GEMM config from what the host knows about a call. Host-only and unit-tested.
#pragma once

#include <cstdint>
#include <vector>

#include "gemm/gemm_config.h"

namespace w4a8moe::gemm {

struct HeuristicInput {
  int n = 0;            // output channels (GEMM M)
  int k = 0;
  int num_experts = 0;
  int64_t total_rows = 0;        // rows over all experts
  int64_t max_rows_per_expert = 0;  // 0: unknown
  std::vector<int64_t> rows_per_expert;  // exact, if the caller has them on the host; empty otherwise
  int sm_count = 132;
};

// Rows of each expert that received rows, as the heuristic assumes them: exact when known; otherwise uniform random
// routing (the expected number of distinct experts hit by total_rows draws shares the rows evenly), with one expert
// raised to max_rows_per_expert when that hint is given.
std::vector<int64_t> estimate_rows_per_active_expert(HeuristicInput const& input);

// Predicted time in microseconds of a config on these rows (a roofline per tile over waves of tiles; see heuristic.cpp
// for the constants and where they come from). Exposed for tests and the benchmark's "predicted" column.
double predicted_time_us(GemmConfig const& config, HeuristicInput const& input, std::vector<int64_t> const& rows);

// The registered config with the lowest predicted time.
GemmConfig select_config(HeuristicInput const& input, std::vector<GemmConfig> const& candidates);

}  // namespace w4a8moe::gemm
