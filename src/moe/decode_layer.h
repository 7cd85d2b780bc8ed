// The one-launch decode layer (decode_layer.cu): the whole MoE layer for a few tokens in one cooperative launch
// instead of six (bench/NOTES.md §10). Host side: the rules that allow and pick it, the split rule its phases use,
// the problem and the launcher. No CUTLASS types.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "gemm/heuristic.h"
#include "gemm/stream_plan.h"
#include "moe/workspace_plan.h"
#include "prepack/exact_format.h"
#include "prepack/packed_format.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::moe {

// Up to this many tokens the layer runs as one launch: each expert's rows fit one mma.sync n = 8 tile.
inline constexpr int64_t kDecodeLayerMaxTokens = 8;
// Token slots the block-wide routing handles (tokens * top_k, top_k <= 32): one per thread.
inline constexpr int kDecodeLayerThreads = 256;
inline constexpr int kDecodeLayerWarps = kDecodeLayerThreads / 32;
// The router's logits of one token in one warp (topk_softmax_warp).
inline constexpr int kDecodeLayerMaxRouterExperts = 512;

// The chance that a rank gets none of `tokens` tokens' slots, each token's top_k experts drawn uniformly without
// replacement: (C(E - L, k) / C(E, k))^tokens for L local of E experts; 0 without expert parallelism.
inline double rank_idle_probability(MoeShape const& s, int64_t tokens) {
  double per_token = 1.0;
  for (int i = 0; i < s.top_k; ++i) {
    per_token *= std::max(0.0, double(s.num_experts - s.num_local_experts - i) / double(s.num_experts - i));
  }
  return std::pow(per_token, double(tokens));
}

// MoePath::kAuto's rule. With the SMs' instruction caches cold, as a model leaves them (bench/NOTES.md §69), and one
// kernel per router width (§75, H100): on the exact-scale layout the one launch is faster than the staged path at 1
// token even where the rank has rows (Qwen3-30B-A3B 29.9 against 31.8 us, DeepSeek-V3 EP8 55.4 against 61.6), and
// slower from 2 tokens on (Qwen3 37.6 against 34.5, 4 tokens 54.9 against 48.7); on the lookup-table layout slower
// wherever the rank has rows (Qwen3 at 1 token 34.5 against 31.1, DeepSeek-V3 EP8 68.7 against 62.5). On a rank with
// none it takes 9-10 us against 17-21. So it runs at 1 token on the exact-scale layout, and elsewhere where a rank is
// likely idle: with probability at least busy loss / (busy loss + idle gain), 0.5 on the lookup-table layout (loses
// 3-6 us busy, gains ~8 idle: 0.3-0.45 measured, the rule's margin kept) and 0.3 on the exact-scale layout (§69). Not
// for experts whose weights the one launch's stripe loop streams slower (the lookup table:
// gemm::stripe_loop_suits_expert; the exact-scale layout: more than 50 MB of int4 weights, Mixtral's 88 MB lost
// 1.12x at 1 token, 94.9 against 84.6 us).
inline constexpr double kDecodeLayerLookupMinIdle = 0.5;
inline constexpr double kDecodeLayerExactMinIdle = 0.3;
inline constexpr double kDecodeLayerExactMaxExpertBytes = 50e6;

// MoePath::kAuto's choice for a call of `tokens` tokens that decode_layer_fits.
inline bool decode_layer_pays(MoeShape const& s, int64_t tokens, PackedLayout layout) {
  double const idle = rank_idle_probability(s, tokens);
  if (layout == PackedLayout::kExactScales) {
    double const expert_bytes = 1.5 * double(s.hidden) * double(s.inter);  // 3 H I weights of half a byte
    return (tokens == 1 || idle >= kDecodeLayerExactMinIdle) && expert_bytes <= kDecodeLayerExactMaxExpertBytes;
  }
  return idle >= kDecodeLayerLookupMinIdle && gemm::stripe_loop_suits_expert(2 * int64_t(s.inter), s.hidden);
}

// Whether the one-launch layer runs this kind of layer: SiLU * up on the int4 layouts, no expert biases.
inline bool decode_layer_runs(PackedLayout layout, MoeActivation activation, bool biases) {
  return layout != PackedLayout::kMxfp4 && activation == MoeActivation::kSiluMul && !biases;
}

// Whether the one-launch layer can run this call: few tokens, and from logits an expert count one warp routes.
inline bool decode_layer_fits(MoeShape const& s, int64_t tokens, bool from_logits) {
  return tokens >= 1 && tokens <= kDecodeLayerMaxTokens && tokens * s.top_k <= kDecodeLayerThreads &&
         (!from_logits || s.num_experts <= kDecodeLayerMaxRouterExperts);
}

// One GEMM's packed weights, of either layout (the kernel is instantiated per layout).
struct DecodeLayerWeights {
  uint8_t const* packed = nullptr;
  prepack::PackedSections lookup;         // PackedLayout::kLookupTable
  prepack::ExactSections exact;           // PackedLayout::kExactScales
  float const* channel_scales = nullptr;  // [E_local][N] of the layout (2^9 sc in the exact-scale one)
};

// One call of the one-launch layer. Pointers are device pointers, validated by moe_forward.
struct DecodeLayerProblem {
  MoeShape shape;
  int tokens = 0;
  void const* hidden = nullptr;  // [T, H]
  ActivationType act_type = ActivationType::kBF16;
  void const* router_logits = nullptr;  // [T, E], or null with topk_ids / topk_weights
  LogitsType logits_type = LogitsType::kFP32;
  bool renormalize = true;
  int32_t const* topk_ids = nullptr;
  float const* topk_weights = nullptr;
  int32_t const* expert_map = nullptr;
  bool weight_on_input = false;
  PackedLayout layout = PackedLayout::kLookupTable;
  DecodeLayerWeights gemm1;  // packed [E_local, 2I, H]
  DecodeLayerWeights gemm2;  // packed [E_local, H, I]
  // Workspace (the staged path's regions, which are large enough): the quantised tokens [T, act_columns] e4m3 and
  // their scales [T]; SiLU(gate) * up [T * top_k, silu_columns] fp32 and its per-(row, GEMM1 block item) maxima;
  // GEMM2's rows [T * top_k, H] of the activation type. The GEMMs read whole 128-groups: act_columns =
  // padded_k(H), silu_columns = padded_k(I), zeros past H and I (kernel parameters, not registers, in the phases).
  int act_columns = 0, silu_columns = 0;
  uint8_t* act = nullptr;
  float* act_scales = nullptr;
  float* silu = nullptr;
  float* silu_max = nullptr;
  void* gemm2_out = nullptr;
  void* out = nullptr;  // [T, H]
  // Profiling only (null otherwise): [grid][kDecodeLayerStamps] globaltimer stamps (ns) of each block at the
  // phase boundaries (decode_layer_stamp_names()).
  unsigned long long* stamps = nullptr;
};

inline constexpr int kDecodeLayerStamps = 9;
// "start", "routed", "quantised", "barrier 1", "gemm1", "barrier 2", "gemm2", "barrier 3", "end"
char const* const* decode_layer_stamp_names();

// The problem of a moe_forward call that runs as one launch, over its workspace's regions.
DecodeLayerProblem decode_layer_problem(MoeForwardArgs const& args, WorkspacePlan const& workspace);

// Resident blocks per SM of the one-launch kernel that runs `problem` (the cooperative grid is that times the SM
// count), 0 on error.
int decode_layer_blocks_per_sm(DecodeLayerProblem const& problem);

// Enqueues the one-launch layer (a cooperative launch of decode_layer_blocks_per_sm() blocks per SM).
cudaError_t launch_decode_layer(DecodeLayerProblem const& problem, int sm_count, cudaStream_t stream);

}  // namespace w4a8moe::moe
