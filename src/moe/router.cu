// The router: softmax over each token's logits and its top k, one warp per token up to 512 experts, one block per
// token past that.
#include <cuda_bf16.h>

#include <cfloat>
#include <climits>

#include "common/pdl.cuh"
#include "moe/kernel_common.cuh"
#include "moe/moe_kernels.h"
#include "moe/topk_softmax.cuh"

namespace w4a8moe::moe {
namespace {

template <class Logit>
__global__ void topk_softmax_kernel(Logit const* logits, int experts, int top_k, bool renormalize,
                                    int32_t* __restrict__ topk_ids, float* __restrict__ topk_weights) {
  extern __shared__ float prob[];  // [experts]
  __shared__ float scratch[kThreads / 32];
  __shared__ Candidate candidates[kThreads / 32];
  static_assert(sizeof(scratch) + sizeof(candidates) <= kRouterStaticSharedBytes, "kMaxRouterExperts counts on it");
  pdl_wait_for_previous_grid();  // the logits
  pdl_allow_next_grid();
  int64_t const t = blockIdx.x;
  Logit const* row = logits + t * experts;

  float local_max = -FLT_MAX;
  for (int e = threadIdx.x; e < experts; e += blockDim.x) {
    prob[e] = logit_to_float(row[e]);
    local_max = fmaxf(local_max, prob[e]);
  }
  float const max = block_reduce(local_max, MaxOp{}, scratch);
  float local_sum = 0.0f;
  for (int e = threadIdx.x; e < experts; e += blockDim.x) {
    prob[e] = expf(prob[e] - max);
    local_sum += prob[e];
  }
  float const sum = block_reduce(local_sum, SumOp{}, scratch);

  // k rounds of argmax; a chosen expert is marked -1 (probabilities are >= 0).
  float chosen_sum = 0.0f;
  for (int j = 0; j < top_k; ++j) {
    Candidate best{-1.0f, INT_MAX};
    for (int e = threadIdx.x; e < experts; e += blockDim.x) best = better(best, Candidate{prob[e], e});
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      Candidate const other{__shfl_xor_sync(0xFFFFFFFFu, best.value, offset),
                            __shfl_xor_sync(0xFFFFFFFFu, best.index, offset)};
      best = better(best, other);
    }
    __syncthreads();
    if (threadIdx.x % 32 == 0) candidates[threadIdx.x / 32] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < int(blockDim.x / 32); ++w) best = better(best, candidates[w]);
      bool const found = best.index != INT_MAX && best.value >= 0.0f;  // NaN logits select nothing
      float const weight = found ? best.value / sum : 0.0f;
      topk_ids[t * top_k + j] = found ? best.index : -1;
      topk_weights[t * top_k + j] = weight;
      chosen_sum += weight;
      if (found) prob[best.index] = -1.0f;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0 && renormalize && chosen_sum > 0.0f) {
    for (int j = 0; j < top_k; ++j) topk_weights[t * top_k + j] /= chosen_sum;
  }
}

template <int kPerLane, class Logit>
__global__ void topk_softmax_warp_kernel(Logit const* logits, int64_t tokens, int experts, int top_k,
                                         bool renormalize, int32_t* __restrict__ topk_ids,
                                         float* __restrict__ topk_weights) {
  pdl_wait_for_previous_grid();  // the logits
  pdl_allow_next_grid();
  int64_t const t = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;  // whole warps exit together
  topk_softmax_warp<kPerLane>(logits + t * experts, experts, top_k, renormalize, topk_ids + t * top_k,
                              topk_weights + t * top_k);
}

// Launched with PDL, so that the routing sort after it launches while it runs (bench/NOTES.md §89).
template <class Logit>
cudaError_t launch_topk(Logit const* logits, int64_t tokens, int experts, int top_k, bool renormalize,
                        int32_t* topk_ids, float* topk_weights, cudaStream_t stream) {
  constexpr int kWarps = kThreads / 32;
  unsigned const warp_blocks = unsigned((tokens + kWarps - 1) / kWarps);
  cudaError_t error = cudaSuccess;
  bool const warp_router = with_warp_router(experts, [&](auto per_lane) {
    error = launch_with_pdl(topk_softmax_warp_kernel<decltype(per_lane)::value, Logit>, warp_blocks, kThreads, 0,
                            stream, logits, tokens, experts, top_k, renormalize, topk_ids, topk_weights);
  });
  if (!warp_router) {
    error = launch_with_pdl(topk_softmax_kernel<Logit>, unsigned(tokens), kThreads, size_t(experts) * sizeof(float),
                            stream, logits, experts, top_k, renormalize, topk_ids, topk_weights);
  }
  return error;
}

}  // namespace

cudaError_t launch_topk_softmax(RoutingProblem const& problem, Router const& router) {
  if (problem.tokens == 0) return cudaSuccess;
  if (router.type == LogitsType::kFP32) {
    return launch_topk(static_cast<float const*>(router.logits), problem.tokens, problem.experts, problem.top_k,
                       router.renormalize, router.topk_ids, router.topk_weights, problem.stream);
  }
  return launch_topk(static_cast<__nv_bfloat16 const*>(router.logits), problem.tokens, problem.experts, problem.top_k,
                     router.renormalize, router.topk_ids, router.topk_weights, problem.stream);
}

}  // namespace w4a8moe::moe
