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

// One warp routes one token over up to 32 * kPerLane experts: the logits stay in registers and every reduction stays
// in the warp (shuffles and redux.sync, no block barriers). Lane l holds experts l, l + 32, ... Writes the token's k
// ids and weights, and returns slot `lane`'s id to lanes below k (-1 to the others and for no expert).
template <int kPerLane, class Logit>
__device__ int topk_softmax_warp(Logit const* __restrict__ row, int experts, int top_k, bool renormalize,
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
  // Each round takes the largest remaining probability, ties to the lower id, in two warp reductions (redux.sync, one
  // instruction each, where a shuffle butterfly is five dependent steps): probabilities are >= 0, so their bits
  // order as unsigned integers. key = bits + 1 for a selectable expert, 0 for none (not an expert, chosen, NaN).
  uint32_t key[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) key[i] = prob[i] >= 0.0f ? __float_as_uint(prob[i]) + 1u : 0u;
  float chosen_sum = 0.0f;
  float my_weight = 0.0f;  // lane j keeps slot j's weight
  int my_id = -1;
  for (int j = 0; j < top_k; ++j) {
    uint32_t lane_key = 0;
    int lane_id = INT_MAX;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (key[i] > lane_key) {  // strictly: the lane's lowest id among equal keys
        lane_key = key[i];
        lane_id = lane + 32 * i;
      }
    }
    uint32_t const best_key = __reduce_max_sync(0xFFFFFFFFu, lane_key);
    bool const found = best_key != 0u;
    int const best_id = __reduce_min_sync(0xFFFFFFFFu, found && lane_key == best_key ? lane_id : INT_MAX);
    float const weight = found ? __uint_as_float(best_key - 1u) / sum : 0.0f;
    chosen_sum += weight;
    if (lane == j) {
      my_weight = weight;
      my_id = found ? best_id : -1;
    }
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (found && lane + 32 * i == best_id) key[i] = 0u;
    }
  }
  if (lane < top_k) {
    ids[lane] = my_id;
    weights[lane] = (renormalize && chosen_sum > 0.0f) ? my_weight / chosen_sum : my_weight;
  }
  return my_id;
}

// The warp router's experts per lane (topk_softmax_warp's kPerLane) for `experts` experts, or 0 when there are too
// many for one warp.
__host__ __device__ constexpr int warp_router_per_lane(int experts) {
  return experts <= 32 ? 1 : experts <= 128 ? 4 : experts <= 256 ? 8 : experts <= 512 ? 16 : 0;
}

// Calls route(std::integral_constant<int, kPerLane>) with the warp router's experts per lane, or returns false when
// there are too many experts for one warp. Host (launches) and device (the one-launch layer's routing) alike.
#pragma nv_exec_check_disable
template <class Route>
__host__ __device__ bool with_warp_router(int experts, Route&& route) {
  switch (warp_router_per_lane(experts)) {
    case 1: return route(std::integral_constant<int, 1>{}), true;
    case 4: return route(std::integral_constant<int, 4>{}), true;
    case 8: return route(std::integral_constant<int, 8>{}), true;
    case 16: return route(std::integral_constant<int, 16>{}), true;
    default: return false;
  }
}

}  // namespace w4a8moe::moe
