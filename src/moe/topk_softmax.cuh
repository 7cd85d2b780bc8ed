// The router's top-k of a softmax in one warp (router.cu and the one-block routing of routing.cu), and the choice of
// its experts per lane.
#pragma once

#include <cuda_bf16.h>

#include <cfloat>
#include <climits>
#include <type_traits>

#include "moe/kernel_common.cuh"

namespace w4a8moe::moe {

struct Candidate {
  float value;
  int index;
};

inline __device__ Candidate better(Candidate a, Candidate b) {
  return (a.value > b.value || (a.value == b.value && a.index < b.index)) ? a : b;
}

template <class Logit>
__device__ float logit_to_float(Logit x);
template <>
inline __device__ float logit_to_float<float>(float x) {
  return x;
}
template <>
inline __device__ float logit_to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

// One warp routes one token over up to 32 * kPerLane experts: the logits stay in registers and every reduction is a
// warp shuffle (no block barriers). Lane l holds experts l, l + 32, ... Writes the token's k ids and weights.
template <int kPerLane, class Logit>
__device__ void topk_softmax_warp(Logit const* __restrict__ row, int experts, int top_k, bool renormalize,
                                  int32_t* __restrict__ ids, float* __restrict__ weights) {
  int const lane = threadIdx.x % 32;
  float prob[kPerLane];
  float max = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    int const e = lane + 32 * i;
    prob[i] = e < experts ? logit_to_float(row[e]) : -FLT_MAX;
    max = fmaxf(max, prob[i]);
  }
  max = warp_reduce(max, MaxOp{});
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    int const e = lane + 32 * i;
    prob[i] = e < experts ? expf(prob[i] - max) : -1.0f;  // -1: not an expert, never chosen
    if (e < experts) sum += prob[i];
  }
  sum = warp_reduce(sum, SumOp{});
  float chosen_sum = 0.0f;
  float my_weight = 0.0f;  // lane j keeps slot j's weight
  int my_id = -1;
  for (int j = 0; j < top_k; ++j) {
    Candidate best{-1.0f, INT_MAX};
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) best = better(best, Candidate{prob[i], lane + 32 * i});
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      Candidate const other{__shfl_xor_sync(0xFFFFFFFFu, best.value, offset),
                            __shfl_xor_sync(0xFFFFFFFFu, best.index, offset)};
      best = better(best, other);
    }
    bool const found = best.index != INT_MAX && best.value >= 0.0f;  // NaN logits select nothing
    float const weight = found ? best.value / sum : 0.0f;
    chosen_sum += weight;
    if (lane == j) {
      my_weight = weight;
      my_id = found ? best.index : -1;
    }
    if (found && best.index % 32 == lane) {
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        if (lane + 32 * i == best.index) prob[i] = -1.0f;
      }
    }
  }
  if (lane < top_k) {
    ids[lane] = my_id;
    weights[lane] = (renormalize && chosen_sum > 0.0f) ? my_weight / chosen_sum : my_weight;
  }
}

// Calls launch(std::integral_constant<int, kPerLane>) with the warp router's experts per lane, or returns false when
// there are too many experts for one warp.
template <class Launch>
bool with_warp_router(int experts, Launch&& launch) {
  if (experts <= 32) return launch(std::integral_constant<int, 1>{}), true;
  if (experts <= 128) return launch(std::integral_constant<int, 4>{}), true;
  if (experts <= 256) return launch(std::integral_constant<int, 8>{}), true;
  if (experts <= 512) return launch(std::integral_constant<int, 16>{}), true;
  return false;
}

}  // namespace w4a8moe::moe
