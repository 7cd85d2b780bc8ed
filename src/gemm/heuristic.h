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

// Whether the streaming kernels' stripe loop (decode_gemm.cu, stream_gemm.cu, and the one-launch layer built on it)
// suits an expert of n x k weights. Over 2^26 weights CUTLASS's 256-channel tiles stream one expert better
// (Mixtral-8x7B GEMM1, 117M weights: bench/NOTES.md §6), and the one-launch layer loses to the staged one (Mixtral at
// 1 and 2 tokens, §10c).
inline bool stripe_loop_suits_expert(int64_t n, int64_t k) { return double(n) * double(k) <= double(1 << 26); }

// The config for these arguments: a decision table over rows per expert, K and the number of M tiles, fitted to
// the H100 sweep and refit where H200 sweeps agree (see heuristic.cpp).
GemmConfig select_config(HeuristicInput const& input);

// The config for the exact-scale layout (PackedLayout::kExactScales), whose only kernel comes in three chunk sizes:
// see heuristic.cpp.
GemmConfig select_exact_config(HeuristicInput const& input);

// The config for the MXFP4 layout (PackedLayout::kMxfp4): the chunk of 8, 16 or 32 rows nearest the rows per expert.
GemmConfig select_mxfp4_config(HeuristicInput const& input);

}  // namespace w4a8moe::gemm
