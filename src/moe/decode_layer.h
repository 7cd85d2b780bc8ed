// The one-launch decode layer (decode_layer.cu): the whole MoE layer for a few tokens in one cooperative launch
// instead of six (bench/NOTES.md §10). Host side: the rules that allow and pick it, the split rule its phases use,
// the problem and the launcher. No CUTLASS types.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
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

// MoePath::kAuto's rule for the lookup-table layout: one launch while the local experts expect at most this many
// rows, and for experts the stripe loop suits (gemm::stripe_loop_suits_expert). First measured on an H200 (bench/
// NOTES.md §10: DeepSeek-V3 EP8 at 1-4 tokens and idle ranks gained; Qwen3-30B-A3B at 1 token (8 rows) tied and lost
// from 2 tokens on, as did DeepSeek-V3 at 8; Mixtral, 117M weights per GEMM1 expert, lost at 1 and 2 tokens). Since
// the staged GEMMs got faster, busy ranks of 3-4 rows stage faster on both cards (§62: DeepSeek-V3 EP8 at 4 tokens
// 61.7-63.6 against 68.7-68.9 us, and beside vLLM's kernels 65.4 against 76.0, Marlin W4A16 72.4), while one row
// and idle ranks still gain (40.5 against 45.3; 7.6-8.1 against 24-27). An EP8 rank is idle with probability ~0.34,
// 0.12 and 0.014 at 1, 2 and 4 tokens, so the rule stops where the busy rank's loss outweighs the idle one's gain.
inline constexpr int64_t kDecodeLayerAutoMaxRows = 2;

// The rule for the exact-scale layout, whose GEMM phases convert with a mask instead of a lookup
// (gemm/exact_stripe_mma.cuh): one launch while the local experts expect at most 8 rows whose experts' int4 weights
// (one expert per row) take at most 50 MB. Measured on an H200 with the L2 flushed (bench/NOTES.md §12b, §29, §52):
// Qwen3-30B-A3B at 1 token (8 rows, 19 MB), DeepSeek-V3 EP8 at 1-4 tokens (up to 88 MB) and idle ranks gain; Qwen3
// at 2-4 tokens (16-32 rows), DeepSeek-V3 EP8 at 8 (176 MB) and Mixtral at 1 and 2 tokens (2 and 4 rows, 176 and
// 352 MB; since the staged GEMMs' per-SM deal) lose. Since then, on an H100 (§63), DeepSeek-V3 EP8 ranks of 4 rows
// on 4 experts (90 MB) stage faster at 3 and 4 tokens (60.1-60.9 against 61.9-68.7 us), so from 3 expected rows
// (66 MB) it stages, as the lookup-table layout does (§62), and 1-2 rows (22-44 MB) keep one launch; its idle rank
// then pays the staged path (~21 against 8 us, §65) with probability 0.04 at 3 tokens and 0.014 at 4.
inline constexpr int64_t kDecodeLayerExactAutoMaxRows = 8;
inline constexpr double kDecodeLayerExactAutoMaxWeightBytes = 50e6;

// MoePath::kAuto's choice for a call that decode_layer_fits, with `expected_rows` on the local experts.
inline bool decode_layer_pays(MoeShape const& s, int64_t expected_rows, PackedLayout layout) {
  if (layout == PackedLayout::kExactScales) {
    double const expert_bytes = 1.5 * double(s.hidden) * double(s.inter);  // 3 H I weights of half a byte
    double const reached = double(std::min<int64_t>(expected_rows, s.num_local_experts)) * expert_bytes;
    return expected_rows <= kDecodeLayerExactAutoMaxRows && reached <= kDecodeLayerExactAutoMaxWeightBytes;
  }
  return expected_rows <= kDecodeLayerAutoMaxRows && gemm::stripe_loop_suits_expert(2 * int64_t(s.inter), s.hidden);
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

// Resident blocks of the one-launch kernel per SM (the cooperative grid is that times the SM count), 0 on error.
int decode_layer_blocks_per_sm(ActivationType type, PackedLayout layout);

// Enqueues the one-launch layer (a cooperative launch of decode_layer_blocks_per_sm() blocks per SM).
cudaError_t launch_decode_layer(DecodeLayerProblem const& problem, int sm_count, cudaStream_t stream);

}  // namespace w4a8moe::moe
