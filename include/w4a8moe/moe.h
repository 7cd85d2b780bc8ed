// The fused W4A8 MoE layer: hidden states in, hidden states out, all on the device with no host synchronisation, so
// a CUDA graph can capture it:
//
//   router logits -> softmax top-k (optional renormalisation)      or precomputed top-k ids and weights
//   -> routing data (per-expert counts, int64 offsets, the permutation and its inverse; deterministic)
//   -> permute + per-token fp8 quantisation (each token quantised once, copied to its k rows)
//   -> GEMM1 [rows, H] x [H, 2I] (+ bias) -> SiLU(gate) * up, or gpt-oss's clamped SwiGLU, + per-row fp8
//      requantisation -> GEMM2 [rows, I] x [I, H] (+ bias)
//   -> unpermute: sum over the k rows of each token, times the top-k weight, in a fixed order (no atomics)
//
// Expert parallelism: expert_map sends global expert ids to this rank's local ids (or -1). Rows of other ranks'
// experts cost nothing and contribute zero; the engine sums the outputs of all ranks (all-reduce or all-to-all).
// Shared experts (DeepSeek) are not part of this layer: run them as a dense GEMM on the same hidden states (for
// example as one more local "expert" that every token routes to with weight 1, or a separate W4A8/bf16 GEMM pair)
// and add their output to this layer's output.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "w4a8moe/status.h"
#include "w4a8moe/types.h"

namespace w4a8moe {

struct MoeShape {
  int num_experts = 0;        // global experts the router scores
  int num_local_experts = 0;  // experts whose weights this rank holds (== num_experts without expert parallelism;
                              // at most 32767)
  int top_k = 0;              // 1..32
  int hidden = 0;             // H: a multiple of 16 (the GEMMs' K is padded_k(H): see types.h)
  int inter = 0;              // I: per-expert intermediate size, a multiple of 16 (likewise)
};

enum class ActivationType : int { kBF16 = 0, kFP16 = 1 };  // hidden states in and out

// The experts' gated activation of GEMM1's gate g and up u (per channel of I), in fp32:
//   kSiluMul       SiLU(g) * u = g * sigmoid(g) * u (Qwen3, DeepSeek-V3, Mixtral, Llama-4)
//   kGptOssSwiglu  gpt-oss's clamped SwiGLU: g' = min(g, limit), u' = clamp(u, -limit, limit),
//                  g' * sigmoid(1.702 g') * (u' + 1), limit = MoeForwardArgs::swiglu_limit
enum class MoeActivation : int { kSiluMul = 0, kGptOssSwiglu = 1 };
inline constexpr float kGptOssSwigluAlpha = 1.702f;
enum class LogitsType : int { kFP32 = 0, kBF16 = 1 };

// How moe_forward runs the layer. kStaged: the stages below, each its own launch. kOneLaunch: the whole layer in one
// cooperative launch (1..8 tokens; from router logits up to 512 experts; SiLU * up, no biases, int4 layouts), with
// the staged path's roundings. kAuto: one launch only where it is faster on average: on an expert-parallel rank
// that no token reaches with probability at least 0.5 (lookup-table layout, experts of at most 2^26 GEMM1 weights)
// or 0.3 (exact-scale layout, experts of at most 50 MB of int4 weights); a rank with rows stages faster (bench/
// NOTES.md §69).
enum class MoePath : int { kAuto = 0, kStaged = 1, kOneLaunch = 2 };

// The paths' names wherever a string names one (the CLI's --path, the Python op's path=): "auto", "staged" and
// "one_launch"; "unknown" for any other value.
char const* moe_path_name(MoePath path);

// The path `name` names; an error naming `arg_name` and the accepted names otherwise.
Status parse_moe_path(char const* name, MoePath* path, char const* arg_name = "path");

// Number of stages the optional per-stage events delimit (moe_stage_name gives their names).
inline constexpr int kMoeStageCount = 6;
char const* moe_stage_name(int stage);  // "route", "permute+quantize", "gemm1", "silu*up+quantize", "gemm2", "unpermute"

struct MoeForwardArgs {
  MoeShape shape;
  // Packed weights of the local experts, from prepack_weights():
  //   gemm1: {num_local_experts, 2 * inter, hidden}: per expert the gate rows [0, I) then the up rows [I, 2I)
  //          (gpt-oss's checkpoints interleave them, gate 2i and up 2i + 1: reorder rows and biases before prepack)
  //   gemm2: {num_local_experts, hidden, inter}
  void const* gemm1_weights = nullptr;
  void const* gemm2_weights = nullptr;
  // Optional (0: unchecked): the two buffers' sizes, which must then be packed_weights_bytes() of GEMM1's and
  // GEMM2's shape in weight_layout: catches buffers swapped, packed for another expert count or in another layout.
  size_t gemm1_weights_bytes = 0;
  size_t gemm2_weights_bytes = 0;
  // The layout both were packed in. With kExactScales the staged path's quantising kernels also write the
  // activations' group sums, which its GEMMs take. kMxfp4 (gpt-oss's MXFP4 experts; H and I multiples of 32) runs
  // the staged path.
  PackedLayout weight_layout = PackedLayout::kLookupTable;

  MoeActivation activation = MoeActivation::kSiluMul;
  float swiglu_limit = 7.0f;  // kGptOssSwiglu's clamp: finite, > 0 (gpt-oss: 7)
  // Optional expert biases (gpt-oss), device fp32, 4-byte aligned, with PackedLayout::kMxfp4 only: gemm1_bias
  // [num_local_experts, 2I] in GEMM1's row order (gate then up), gemm2_bias [num_local_experts, H]. GEMM2's bias is
  // part of each expert's output, so it is weighted by the token's routing weight like the rest.
  float const* gemm1_bias = nullptr;
  float const* gemm2_bias = nullptr;

  int64_t num_tokens = 0;  // T; 0 is allowed (nothing to do)
  void const* hidden = nullptr;  // device [T, H] of act_type, 16-byte aligned
  ActivationType act_type = ActivationType::kBF16;

  // Routing: either router logits (softmax over the global experts, top-k, ties to the lower expert id) ...
  void const* router_logits = nullptr;  // device [T, num_experts] of logits_type
  LogitsType logits_type = LogitsType::kFP32;
  bool renormalize = true;              // divide the top-k weights by their sum
  // ... or precomputed top-k ids (global, int32) and weights (fp32). Exactly one of the two must be given.
  int32_t const* topk_ids = nullptr;    // device [T, top_k]
  float const* topk_weights = nullptr;  // device [T, top_k]

  int32_t const* expert_map = nullptr;  // optional device [num_experts]: local id or -1 (required if local < global)
  // Scale each row's input by its weight instead of its output (Llama-4, top-1): out = sum_j expert_j(w_j x). Not
  // with biases, which would then go unweighted.
  bool apply_router_weight_on_input = false;

  void* out = nullptr;  // device [T, H] of act_type, 16-byte aligned; fully written
  void* workspace = nullptr;  // device, moe_workspace_bytes(shape, max_tokens) bytes, 256-byte aligned
  size_t workspace_bytes = 0;
  int64_t max_tokens = 0;     // the T the workspace was sized for (0: num_tokens)

  // kAuto picks; kOneLaunch where it cannot run, or with GEMM configs, is an error. GEMM config overrides and
  // stage events make kAuto stage the layer; with kOneLaunch the stage events bracket the one launch.
  MoePath path = MoePath::kAuto;
  std::string gemm1_config, gemm2_config;  // optional kernel overrides (gemm_config_names())
  // Optional: kMoeStageCount + 1 events recorded on the stream around the stages, for per-stage timing (of the
  // staged path; with no tokens all of them back to back). Under stream capture they become event-record nodes of
  // the graph (cudaEventRecordExternal), so that each replay records them.
  cudaEvent_t const* stage_events = nullptr;
  cudaStream_t stream = nullptr;
};

// Workspace bytes for up to max_tokens tokens (intermediates of every stage and both GEMMs' workspaces; the same for
// every layout); 0 for a shape no layout takes or max_tokens * top_k past 2^31 - 1.
size_t moe_workspace_bytes(MoeShape const& shape, int64_t max_tokens);

// Checks the shape rules (see MoeShape) and those of the layout's GEMMs (kMxfp4: H and I multiples of 32).
Status validate_moe_shape(MoeShape const& shape, PackedLayout layout = PackedLayout::kLookupTable);

// Enqueues the layer on args.stream. Returns an error, and launches nothing, if an argument breaks a rule.
Status moe_forward(MoeForwardArgs const& args);

// The routing data alone (what moe_forward() computes after the top-k), for engines that run the stages
// themselves: rows grouped by local expert, each expert's rows in (token, slot) order; deterministic.
struct MoeRoutingArgs {
  MoeShape shape;                       // num_experts, num_local_experts and top_k are used
  int64_t num_tokens = 0;
  int32_t const* topk_ids = nullptr;    // device [T, top_k], global expert ids (out-of-range ids are dropped)
  int32_t const* expert_map = nullptr;  // optional device [num_experts]: local id or -1
  int64_t* expert_offsets = nullptr;    // device out [num_local_experts + 1]
  int32_t* dest_row = nullptr;          // device out [T * top_k]: row of each slot t * top_k + j, or -1
  int32_t* row_slot = nullptr;          // device out [T * top_k]: slot of each row (rows past offsets[E] unset)
  void* workspace = nullptr;            // device, moe_routing_workspace_bytes() bytes, 256-byte aligned
  size_t workspace_bytes = 0;
  cudaStream_t stream = nullptr;
};

size_t moe_routing_workspace_bytes(MoeShape const& shape, int64_t num_tokens);
Status moe_routing(MoeRoutingArgs const& args);

// The configs moe_forward() would pick for its two GEMMs with num_tokens tokens and no overrides (empty where the
// shape is invalid or there are no tokens, as moe_forward_kernels() below).
std::string moe_gemm1_config(MoeShape const& shape, int64_t num_tokens,
                             PackedLayout layout = PackedLayout::kLookupTable);
std::string moe_gemm2_config(MoeShape const& shape, int64_t num_tokens,
                             PackedLayout layout = PackedLayout::kLookupTable);

// What moe_forward(args) runs, from args' shape, token counts, layout and options alone (host only: no pointer is
// read): the whole layer in one launch, or the staged path, whose grouped GEMMs run gemm1_config and gemm2_config
// (args.gemm1_config / args.gemm2_config where given, as given: moe_forward() validates them; else the heuristic's).
// The configs are the staged path's also where the layer runs in one launch; empty where the shape is invalid or
// there are no tokens.
struct MoeForwardKernels {
  bool one_launch = false;
  std::string gemm1_config, gemm2_config;
};
MoeForwardKernels moe_forward_kernels(MoeForwardArgs const& args);

}  // namespace w4a8moe
