// Launchers of the MoE layer's kernels around the two grouped GEMMs (router.cu, routing.cu, token_kernels.cu).
// Arguments are validated by moe.cpp; every launcher checks its launch and returns the CUDA error. No CUTLASS types.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "gemm/grouped_params.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::moe {

inline constexpr int kMaxTopK = 32;
// The chunked routing sort stages each slot's local expert id in 16 bits (routing.cu, stage_local_experts).
inline constexpr int kMaxLocalExperts = 32767;
// From router logits past the warp router's 512 experts, the router's block kernel keeps a token's probabilities in
// dynamic shared memory, within the 48 KB a launch gets without opting in, beside its 48 bytes of scratch
// (router.cu).
inline constexpr int kRouterStaticSharedBytes = 48;
inline constexpr int kMaxRouterExperts = (48 * 1024 - kRouterStaticSharedBytes) / 4;  // 12276

// The token-row kernels (permute + quantise, SiLU * up + requantise) run a row in one block of up to
// kRowBlockThreads threads, each keeping up to kHeldRowVectors 16-byte vectors of it in registers between the
// amax and the quantisation. The SiLU stage holds its whole row, so it bounds the intermediate size; the permute
// reads what it cannot hold twice, so the hidden size has no bound of its own.
inline constexpr int kRowBlockThreads = 1024;
inline constexpr int kHeldRowVectors = 4;
inline constexpr int kMaxInter = kRowBlockThreads * kHeldRowVectors * 8;  // 8 16-bit values a vector: 32768

// Up to kOneBlockRoutingSlots token slots and kOneBlockRoutingMaxExperts local experts route in one block of
// kOneBlockRoutingThreads (one launch, and one more for the router where it does not fuse, below): every warp counts
// and scatters a segment of the slots, with per-segment counters in shared memory. Past it the chunked path (three
// launches, chained by PDL) spreads the slots over many blocks. At 8192 slots the two cost about the same (H200,
// bench/NOTES.md §13b: Qwen3-30B-A3B at 1024 tokens 23.8 against 22.0 us, DeepSeek-V3 EP8 18.7 against 23.2).
inline constexpr int kOneBlockRoutingThreads = 1024;
inline constexpr int kOneBlockRoutingSlots = 8192;
inline constexpr int kOneBlockRoutingMaxExperts = 1024;
// The one-block routing runs the router itself (a warp per token, each warp one token) up to kFusedRouterTokens
// tokens, while the tokens times the logits a lane holds (topk_softmax_warp's kPerLane) stay within
// kFusedRouterLaneLogits: past that the router's work on the block's one SM costs more than a launch of its own, which
// the sort's launch overlaps by PDL (H100, bench/NOTES.md §89: DeepSeek-V3 EP8, 8 logits a lane, at 24 / 32 tokens
// route 10.9 / 12.0 us fused against 9.4 / 9.4 apart).
inline constexpr int kFusedRouterTokens = kOneBlockRoutingThreads / 32;
inline constexpr int kFusedRouterLaneLogits = 128;

// Whether the routing of these many slots runs in one block (and fills the GEMMs' arrays: RoutingArraysFill).
inline bool routes_in_one_block(int64_t tokens, int top_k, int local_experts) {
  return tokens * top_k <= kOneBlockRoutingSlots && local_experts <= kOneBlockRoutingMaxExperts;
}

// Its shared memory: each warp's counter per expert, each expert's rows, each slot's local expert (int16).
inline size_t one_block_routing_shared_bytes(int64_t slots, int local_experts) {
  return (size_t(kOneBlockRoutingThreads / 32) + 1) * size_t(local_experts) * sizeof(int32_t) +
         (size_t(slots) * sizeof(int16_t) + 3) / 4 * 4;
}

// Up to kFewRoutingSlots slots of the one-block routing's batches are placed by one warp (routing.cu, the few-slots
// kernel): no shared counters, one block barrier, a smaller kernel. With logits, a warp a token routes first; each
// of at least kFewRoutingThreads threads writes the offsets and the GEMMs' arrays of its experts (bench/NOTES.md §90).
inline constexpr int kFewRoutingSlots = 32;
inline constexpr int kFewRoutingThreads = 256;
inline bool routes_in_few_slots(int64_t tokens, int top_k, int local_experts) {
  return tokens * top_k <= kFewRoutingSlots && routes_in_one_block(tokens, top_k, local_experts);
}

// The grouped GEMMs' per-expert arrays the one-block routing fills as soon as the offsets are final, so the GEMMs
// skip their own build launches (gemm/built_arrays.h). Ignored when the routing runs in chunks.
struct RoutingArraysFill {
  gemm::GroupedGemmParams gemm[2];
  void* workspace[2] = {};
  int count = 0;
};

// Slots per chunk of the routing sort: the count and scatter passes work chunk by chunk, in slot order. Small
// chunks give the scatter pass (one warp per chunk, 32 slots a step) enough warps to hide its latency.
inline constexpr int kRoutingChunk = 256;

inline int64_t routing_chunks(int64_t slots) { return (slots + kRoutingChunk - 1) / kRoutingChunk; }

// Scratch of the routing sort: the per-(expert, chunk) counts and one finished-block counter.
inline int64_t routing_scratch_words(int64_t slots, int local_experts) {
  return routing_chunks(slots) * local_experts + 1;
}

// One call's routing sort: the slots' expert ids, which experts are local, and where the sort's outputs go.
struct RoutingProblem {
  int64_t tokens = 0;
  int experts = 0;                      // global expert ids are [0, experts); others are dropped
  int top_k = 0;
  int local_experts = 0;
  int32_t const* expert_map = nullptr;  // optional device [experts]: local id or -1
  int32_t const* topk_ids = nullptr;    // device [tokens, top_k] (launch_topk_and_routing: the router's output)
  int32_t* chunk_counts = nullptr;      // device scratch, routing_scratch_words(tokens * top_k, local_experts) int32
  int64_t* offsets = nullptr;           // device out [local_experts + 1]
  int32_t* dest_row = nullptr;          // device out [tokens * top_k]: row of each slot, or -1
  int32_t* row_slot = nullptr;          // device out [tokens * top_k]: slot of each row
  RoutingArraysFill fill;               // the GEMMs' arrays to fill; the one-block routing only
  uint32_t* routing_end = nullptr;      // optional device word, cleared as the routing starts (common/pdl.cuh)
  cudaStream_t stream = nullptr;
};

// The router: softmax over each token's logits, top-k (ties to the lower id), optional renormalisation.
struct Router {
  void const* logits = nullptr;  // device [tokens, experts]
  LogitsType type = LogitsType::kFP32;
  bool renormalize = true;
  int32_t* topk_ids = nullptr;    // device out [tokens, top_k]
  float* topk_weights = nullptr;  // device out [tokens, top_k]
};

// The router alone, over problem.tokens tokens of problem.experts logits, top problem.top_k.
cudaError_t launch_topk_softmax(RoutingProblem const& problem, Router const& router);

// Counting sort of the token slots by local expert, stable in slot order (deterministic): offsets, dest_row and
// row_slot from problem.topk_ids.
cudaError_t launch_routing(RoutingProblem const& problem);

// The router, then the routing sort of its ids (problem.topk_ids is ignored), fused into one launch for small
// batches.
cudaError_t launch_topk_and_routing(RoutingProblem const& problem, Router const& router);

// Where a quantising kernel also writes each row's group sums (the exact-scale layout's GEMM input, grouped_gemm.h's
// compute_activation_group_sums): 2^-6 * the sum of the row's e4m3 values per 128 columns, at
// [g * stride + row]. sums null: not written.
struct GroupSumsOut {
  float* sums = nullptr;
  int64_t stride = 0;
};

// Each token quantised once to e4m3 (per-token scale) and copied to its rows; with weight_on_input the row's scale
// is multiplied by its top-k weight. some_slots_remote (an expert map): tokens with no local row may be left unread.
// routing_end (optional device word): the next kernel (GEMM1, the decode kernel) launches as this one starts and
// awaits the routing's end there (common/pdl.cuh's third exception).
cudaError_t launch_permute_quantize(void const* hidden, ActivationType type, int64_t tokens, int hidden_size,
                                    int top_k, int32_t const* dest_row, bool some_slots_remote,
                                    float const* topk_weights, bool weight_on_input, uint8_t* act, float* act_scales,
                                    GroupSumsOut group_sums, uint32_t* routing_end, cudaStream_t stream);

// h = SiLU(gate) * up, or gpt-oss's clamped SwiGLU, per row (gate = columns [0, I), up = [I, 2I)), then per-row
// e4m3 quantisation. Rows at or past offsets[local_experts] are skipped.
struct GatedActivation {
  MoeActivation kind = MoeActivation::kSiluMul;
  float swiglu_limit = 0.0f;  // kGptOssSwiglu
};
// next_launches_early: the next kernel (GEMM2) may launch before this one's wait (common/pdl.cuh's exception).
cudaError_t launch_silu_mul_quantize(void const* gemm1_out, ActivationType type, GatedActivation activation,
                                     int64_t max_rows, int inter, int64_t const* offsets, int local_experts,
                                     uint8_t* act, float* act_scales, GroupSumsOut group_sums, bool next_launches_early,
                                     cudaStream_t stream);

// Blocks of launch_unpermute per token: at decode the kernel is a chain of load latencies, one per 16-byte vector a
// thread walks, so the row is split over blocks of 128 threads, a vector each (DeepSeek-V3's H = 7168: 7 blocks;
// the stage 7.2-10.1 -> 4.1-5.7 us at 1-128 tokens), in fewer pieces where the blocks would pass
// kUnpermuteSplitBlocks: at 8192 tokens one block per token (7 a token took 71.3 -> 86.1 us; H200, bench/NOTES.md
// §15).
inline constexpr int64_t kUnpermuteSplitBlocks = 8192;
inline int unpermute_slices(int64_t tokens, int hidden_size) {
  int64_t const row_slices = (int64_t(hidden_size) / 8 + 127) / 128;
  int64_t const fit = tokens > 0 ? kUnpermuteSplitBlocks / tokens : row_slices;
  return int(std::max<int64_t>(1, std::min(row_slices, fit)));
}

// out[t] = sum_j w_j * gemm2_out[dest_row[t*k + j]] in slot order (w_j = 1 with weight_on_input); zero where no
// slot of the token is local. routing_end (optional device word): cleared once every kernel that polled it has
// ended (common/pdl.cuh's third exception).
cudaError_t launch_unpermute(void const* gemm2_out, ActivationType type, int64_t tokens, int hidden_size, int top_k,
                             int32_t const* dest_row, float const* topk_weights, bool weight_on_input, void* out,
                             uint32_t* routing_end, cudaStream_t stream);

}  // namespace w4a8moe::moe
