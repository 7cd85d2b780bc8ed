// The one-launch layer's routing (decode_layer.cu): every block routes the few tokens itself, into shared memory, so
// the GEMM phases need no grid-wide step to learn their work. The result is the staged path's routing data (moe.h):
// rows grouped by local expert, each expert's rows in slot order; the experts in order of first appearance.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "moe/decode_layer.h"
#include "moe/routing_rules.cuh"
#include "moe/topk_softmax.cuh"

namespace w4a8moe::moe {

static_assert(warp_router_per_lane(kDecodeLayerMaxRouterExperts) != 0, "a warp routes a token");

struct BlockRouting {
  int32_t slot_expert[kDecodeLayerThreads];  // local expert of each slot (t * top_k + j), or -1
  float slot_weight[kDecodeLayerThreads];    // its top-k weight
  int32_t slot_active[kDecodeLayerThreads];  // index of its expert among the active ones, or -1
  int32_t slot_row[kDecodeLayerThreads];     // row of each slot, or -1
  int32_t row_slot[kDecodeLayerThreads];     // slot of each row
  int32_t active_expert[kDecodeLayerThreads];     // local id of each active expert
  int32_t active_begin[kDecodeLayerThreads + 1];  // first row of each active expert; [active] = rows
  int32_t warp_counts[2][kDecodeLayerWarps];
  int active;  // experts with rows
  int rows;    // local slots
};

// Token t's top-k over its logits by warp t (all 32 lanes), into the slots' ids and weights. The kernel is
// instantiated per kPerLane (choose_kernel in decode_layer.cu), so the router it runs sits in line with the rest of
// the block's code: with the instruction caches cold, every jump to code far away is a round trip to memory.
template <int kPerLane, class Logit>
__device__ __forceinline__ void route_token(Logit const* logits, int experts, int top_k, bool renormalize, int t,
                                            BlockRouting& r) {
  topk_softmax_warp<kPerLane>(logits + int64_t(t) * experts, experts, top_k, renormalize, r.slot_expert + t * top_k,
                              r.slot_weight + t * top_k);
}

// Threads before lane `lane` of a warp.
__device__ __forceinline__ unsigned lanes_below(int lane) { return (1u << lane) - 1u; }

// Called by the whole block of kDecodeLayerThreads; r is complete (and visible to all threads) on return.
template <int kPerLane>
__device__ __forceinline__ void route_in_block(DecodeLayerProblem const& p, BlockRouting& r) {
  MoeShape const& s = p.shape;
  int const tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  int const slots = p.tokens * s.top_k;
  if (p.router_logits != nullptr) {
    for (int t = warp; t < p.tokens; t += kDecodeLayerWarps) {
      if (p.logits_type == LogitsType::kFP32) {
        route_token<kPerLane>(static_cast<float const*>(p.router_logits), s.num_experts, s.top_k, p.renormalize, t, r);
      } else {
        route_token<kPerLane>(static_cast<__nv_bfloat16 const*>(p.router_logits), s.num_experts, s.top_k,
                              p.renormalize, t, r);
      }
    }
  } else if (tid < slots) {
    r.slot_expert[tid] = p.topk_ids[tid];
    r.slot_weight[tid] = p.topk_weights[tid];
  }
  __syncthreads();
  int const local = tid < slots ? local_expert_of(r.slot_expert[tid], s.num_experts, p.expert_map,
                                                  s.num_local_experts)
                                : -1;
  // Every global id is read before any is replaced. A rank none of whose slots is local (every block finds the same)
  // has no rows: it skips the numbering below, and the combine writes zeros.
  if (!__syncthreads_or(local >= 0)) {
    if (tid < slots) r.slot_row[tid] = -1;
    if (tid == 0) {
      r.active = 0;
      r.rows = 0;
      r.active_begin[0] = 0;
    }
    __syncthreads();
    return;
  }
  if (tid < slots) r.slot_expert[tid] = local;
  __syncthreads();

  // The first slot of each active expert numbers the experts (ballots, then the warps' counts).
  int first = tid;
  if (local >= 0) {
    for (int s2 = 0; s2 < tid; ++s2) {
      if (r.slot_expert[s2] == local) {
        first = s2;
        break;
      }
    }
  }
  bool const is_first = local >= 0 && first == tid;
  unsigned const firsts = __ballot_sync(0xFFFFFFFFu, is_first), locals = __ballot_sync(0xFFFFFFFFu, local >= 0);
  if (lane == 0) {
    r.warp_counts[0][warp] = __popc(firsts);
    r.warp_counts[1][warp] = __popc(locals);
  }
  __syncthreads();
  int firsts_before = __popc(firsts & lanes_below(lane)), active = 0, rows = 0;
  for (int w = 0; w < kDecodeLayerWarps; ++w) {
    if (w < warp) firsts_before += r.warp_counts[0][w];
    active += r.warp_counts[0][w];
    rows += r.warp_counts[1][w];
  }
  if (is_first) {
    r.active_expert[firsts_before] = local;
    r.slot_active[tid] = firsts_before;
  }
  __syncthreads();
  int const my_active = local >= 0 ? r.slot_active[first] : -1;
  __syncthreads();  // the first slots' entries are read before every slot writes its own
  if (tid < slots) r.slot_active[tid] = my_active;
  __syncthreads();

  // A slot's row: the slots of earlier active experts, then the earlier slots of its own.
  int row = -1;
  if (local >= 0) {
    row = 0;
    for (int s2 = 0; s2 < slots; ++s2) {
      int const a = r.slot_active[s2];
      row += (a >= 0 && (a < my_active || (a == my_active && s2 < tid))) ? 1 : 0;
    }
    r.row_slot[row] = tid;
    if (is_first) r.active_begin[my_active] = row;
  }
  if (tid < slots) r.slot_row[tid] = row;
  if (tid == 0) {
    r.active = active;
    r.rows = rows;
    r.active_begin[active] = rows;
  }
  __syncthreads();
}

}  // namespace w4a8moe::moe
