// The MoE layer's plan: everything moe_forward decides before it enqueues anything, for one (shape, token count,
// options). Host-only and unit-tested on the CPU; moe.cpp runs the stages it names.
#pragma once

#include <cstdint>
#include <string>

#include "moe/workspace_plan.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/types.h"

namespace w4a8moe::moe {

// The two GEMMs' weights over the local experts: GEMM1 [2I, H] (gate and up), GEMM2 [H, I].
inline ExpertWeightShape gemm1_shape(MoeShape const& s) {
  return {s.num_local_experts, 2 * s.inter, s.hidden, kGroupSize};
}
inline ExpertWeightShape gemm2_shape(MoeShape const& s) { return {s.num_local_experts, s.hidden, s.inter, kGroupSize}; }

// One grouped GEMM of the layer.
struct GemmStagePlan {
  ExpertWeightShape shape;
  std::string config;                // resolved: the caller's or the heuristic's
  bool arrays_from_routing = false;  // the one-block routing fills its per-expert arrays: no build launch
};

struct MoePlan {
  int64_t tokens = 0;
  int64_t rows = 0;                 // token slots, tokens * top_k
  int64_t expected_local_rows = 0;  // the rows the local experts should hold: the GEMMs' hint
  WorkspacePlan workspace;          // for max_tokens
  // The routing (and, from logits, the router up to 512 experts) in one launch of one block, for small batches;
  // else the router, then the chunked count, scan and scatter.
  bool one_block_routing = false;
  GemmStagePlan gemm1, gemm2;
};

// For a validated shape, 0 <= tokens <= max_tokens (max_tokens 0: tokens); empty configs ask the heuristic.
MoePlan plan_moe(MoeShape const& shape, int64_t tokens, int64_t max_tokens, std::string const& gemm1_config = {},
                 std::string const& gemm2_config = {});

}  // namespace w4a8moe::moe
