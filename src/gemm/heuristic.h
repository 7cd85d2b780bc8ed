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
  int64_t total_rows = 0;           // rows over all experts
  int64_t max_rows_per_expert = 0;  // 0: unknown
  std::vector<int64_t> rows_per_expert;  // exact, if the caller has them on the host; empty otherwise
  int sm_count = 132;
};

// Rows of each expert that received rows, as the heuristic assumes them: exact when known; otherwise uniform random
// routing (the expected number of distinct experts hit by total_rows draws shares the rows evenly), with one expert
// raised to max_rows_per_expert when that hint is given.
std::vector<int64_t> estimate_rows_per_active_expert(HeuristicInput const& input);

// Rows per expert as a row sees it: sum(r^2) / sum(r) over the experts. Equal to the mean when the experts are
// even; pulled towards the hot experts when they are not, since those hold most of the work.
double row_weighted_rows_per_expert(std::vector<int64_t> const& rows);

// The config for these arguments: a decision table over rows per expert, K and the number of M tiles, fitted to
// the H100 sweep (see heuristic.cpp).
GemmConfig select_config(HeuristicInput const& input);

}  // namespace w4a8moe::gemm
