// The MoE layer's plan: everything moe_forward decides before it enqueues anything, for one (shape, token count,
// options). Host-only and unit-tested on the CPU; moe.cpp runs the stages it names.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>

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
  // Its kernel works before its PDL wait (gemm::works_before_wait): for GEMM2 the SiLU kernel then lets it launch
  // before its own wait (common/pdl.cuh's exception; bench/NOTES.md §93: the streaming kernels gained nothing by it
  // and Mixtral-8x7B's lost 1-2 us).
  bool works_before_wait = false;
};

// What the caller asks of the plan besides the shape and the token counts.
struct MoePlanOptions {
  std::string gemm1_config, gemm2_config;  // kernel overrides; empty: the heuristic's (either one: staged path)
  bool from_logits = true;                 // routing from router logits (else precomputed top-k)
  MoePath path = MoePath::kAuto;
  bool stage_events = false;               // per-stage events asked for: kAuto stages the layer
  PackedLayout layout = PackedLayout::kLookupTable;  // kExactScales: the staged GEMMs take activation group sums
  MoeActivation activation = MoeActivation::kSiluMul;
  bool biases = false;  // expert biases given (gpt-oss): the staged path

  // Every field, to compare options by (plan_cache.cpp remembers plans by them): a field added above goes here too.
  auto fields() const {
    return std::tie(gemm1_config, gemm2_config, from_logits, path, stage_events, layout, activation, biases);
  }
};

struct MoePlan {
  int64_t tokens = 0;
  // The whole layer in one cooperative launch (moe/decode_layer.h) instead of the stages below; then only
  // `workspace` of the rest is used.
  bool one_launch = false;
  int64_t rows = 0;                 // token slots, tokens * top_k
  int64_t expected_local_rows = 0;  // the rows the local experts should hold: the GEMMs' hint
  WorkspacePlan workspace;          // for max_tokens
  // The routing sort in one block up to 8192 slots (moe_kernels.h, routes_in_one_block; up to 32 slots one warp
  // places them, routes_in_few_slots), which also fills the GEMMs' per-expert arrays and, from logits, runs the
  // router itself up to 32 tokens; else the router, then the chunked count, scan and scatter.
  bool one_block_routing = false;
  GemmStagePlan gemm1, gemm2;
  // GEMM1 is the decode kernel, which works before its wait: the permute kernel lets it launch as the permute starts
  // and publishes the routing's end once its own wait returns, and GEMM1 searches the offsets from then on, while the
  // permute still quantises (common/pdl.cuh's third exception).
  bool gemm1_at_routing_end = false;
  bool group_sums = false;  // the exact-scale layout's staged GEMMs take the activations' group sums
};

// For a validated shape, 0 <= tokens <= max_tokens (max_tokens 0: tokens). With MoePath::kOneLaunch, one_launch is
// set whenever the layer can run as one launch (moe_forward rejects the rest).
MoePlan plan_moe(MoeShape const& shape, int64_t tokens, int64_t max_tokens, MoePlanOptions const& options = {});

}  // namespace w4a8moe::moe
