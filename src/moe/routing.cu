// The routing sort: a stable counting sort of the token slots by local expert (deterministic), in chunks for large
// batches and in one block, with the GEMMs' per-expert arrays (and for a few tokens the router), for the others.
#include <cuda_bf16.h>

#include <algorithm>

#include "common/pdl.cuh"
#include "gemm/expert_arrays.cuh"
#include "moe/kernel_common.cuh"
#include "moe/moe_kernels.h"
#include "moe/routing_rules.cuh"
#include "moe/topk_softmax.cuh"

namespace w4a8moe::moe {
namespace {

// chunk_counts is expert-major, [E_local][chunks], so each expert's column is contiguous for its scan. Each block
// counts its chunk in shared memory and writes its whole column of counts, zeros included, so no memset precedes it
// and the routing's launches chain by PDL; block 0 also zeroes scan_counts' finished-block counter.
__global__ void count_chunks(int32_t const* topk_ids, int32_t const* expert_map, int64_t slots, int64_t chunks,
                             int experts, int local_experts, int32_t* __restrict__ chunk_counts,
                             unsigned* __restrict__ blocks_done, uint32_t* routing_end) {
  extern __shared__ int32_t counts[];  // [local_experts]
  pdl_wait_for_previous_grid();
  int64_t const chunk = blockIdx.x;
  if (chunk == 0 && threadIdx.x == 0) clear_routing_end(routing_end);  // before the trigger: common/pdl.cuh
  pdl_allow_next_grid();
  for (int e = int(threadIdx.x); e < local_experts; e += blockDim.x) counts[e] = 0;
  if (chunk == 0 && threadIdx.x == 0) *blocks_done = 0u;
  __syncthreads();
  int64_t const s = chunk * kRoutingChunk + threadIdx.x;
  if (s < slots) {
    int const e = local_expert_of(topk_ids[s], experts, expert_map, local_experts);
    if (e >= 0) atomicAdd(&counts[e], 1);
  }
  __syncthreads();
  if (chunk >= chunks) return;  // the one block of a call without slots zeroes the counter only
  for (int e = int(threadIdx.x); e < local_experts; e += blockDim.x) chunk_counts[e * chunks + chunk] = counts[e];
}

// Scans values[0, count) in place with one block, blockDim.x elements at a time (exclusive or inclusive); `load`
// reads an element. Returns the total to every thread.
template <class T, bool kExclusive, class Load>
__device__ T block_scan(T* values, int64_t count, Load load) {
  __shared__ T warp_sums[32];
  __shared__ T carry;
  int const lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  for (int64_t base = 0; base < count; base += blockDim.x) {
    int64_t const i = base + threadIdx.x;
    T const own = i < count ? load(&values[i]) : T(0);
    T value = own;  // inclusive warp scan
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      T const up = __shfl_up_sync(0xFFFFFFFFu, value, offset);
      if (lane >= offset) value += up;
    }
    if (lane == 31) warp_sums[warp] = value;
    __syncthreads();
    T before = carry;
    for (int w = 0; w < warp; ++w) before += warp_sums[w];
    if (i < count) values[i] = before + value - (kExclusive ? own : T(0));
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = before + value;
    __syncthreads();
  }
  return carry;
}

// One block per expert: its column of chunk counts becomes each chunk's first row within the expert (exclusive
// scan), and its total goes to offsets[e + 1]. The last block to finish (counted in *blocks_done, zeroed with the
// counts) then scans the totals into the experts' first rows: one launch instead of two.
__global__ void scan_counts(int32_t* __restrict__ chunk_counts, int64_t chunks, int local_experts,
                            int64_t* __restrict__ offsets, unsigned* __restrict__ blocks_done) {
  __shared__ bool last_block;
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int32_t const total = block_scan<int32_t, true>(chunk_counts + int64_t(blockIdx.x) * chunks, chunks,
                                                  [](int32_t const* x) { return *x; });
  if (threadIdx.x == 0) {
    offsets[blockIdx.x + 1] = total;
    __threadfence();  // the total is visible before this block counts as done
    last_block = atomicAdd(blocks_done, 1u) == unsigned(local_experts) - 1;
  }
  __syncthreads();
  if (last_block) {
    __threadfence();
    if (threadIdx.x == 0) offsets[0] = 0;
    // Other blocks wrote the totals: read them past L1.
    block_scan<int64_t, false>(offsets + 1, local_experts, [](int64_t const* x) { return __ldcg(x); });
  }
}

// The local expert (int16, -1 if none) of the slots [first, end) this thread holds, slots first + index + kStride * i
// for i < kCount, into staged[s - first]. Every id load is issued before the first use: one slot after another they
// were a chain of kCount round trips, twice that with an expert map (bench/NOTES.md §26).
template <int kCount, int kStride, class Index>
__device__ __forceinline__ void stage_local_experts(int32_t const* ids, Index first, Index end, int index, int experts,
                                                    int32_t const* expert_map, int local_experts, int16_t* staged) {
  int32_t local[kCount];
#pragma unroll
  for (int i = 0; i < kCount; ++i) local[i] = first + index + kStride * i < end ? ids[first + index + kStride * i] : -1;
#pragma unroll
  for (int i = 0; i < kCount; ++i) local[i] = local_expert_of(local[i], experts, expert_map, local_experts);
#pragma unroll
  for (int i = 0; i < kCount; ++i) {
    if (first + index + kStride * i < end) staged[index + kStride * i] = int16_t(local[i]);
  }
}

// One warp gives the slots [first, end) their rows, 32 slots a step in slot order: a slot's row is its expert's next
// free row (*next_row(e), which the warp advances) plus its rank among the same-expert lanes of the step
// (__match_any_sync), plus row_base(e). expert_of(s) is the slot's local expert or -1.
template <class ExpertOf, class NextRow, class RowBase>
__device__ void scatter_in_slot_order(int64_t first, int64_t end, ExpertOf expert_of, NextRow next_row,
                                      RowBase row_base, int32_t* __restrict__ dest_row,
                                      int32_t* __restrict__ row_slot) {
  int const lane = threadIdx.x % 32;
  for (; first < end; first += 32) {
    int64_t const s = first + lane;
    int const e = s < end ? expert_of(s) : -2;
    unsigned const peers = __match_any_sync(0xFFFFFFFFu, e);
    int const rank = __popc(peers & ((1u << lane) - 1));
    int32_t* next = e >= 0 ? next_row(e) : nullptr;
    int32_t const base = e >= 0 ? row_base(e) + *next : 0;
    __syncwarp();
    if (e >= 0 && rank == 0) *next += __popc(peers);
    __syncwarp();
    if (s < end) {
      int32_t const row = e >= 0 ? base + rank : -1;
      dest_row[s] = row;
      if (row >= 0) row_slot[row] = int32_t(s);
    }
  }
}

// One warp per chunk: a slot's row is its expert's first row, plus the rows of earlier chunks, plus the rows of
// earlier slots of this chunk. Only this warp touches its chunk's counters. The chunk's local experts go to shared
// memory first (stage_local_experts).
__global__ void scatter_chunks(int32_t const* topk_ids, int32_t const* expert_map, int64_t slots, int64_t chunks,
                               int experts, int local_experts, int64_t const* offsets, int32_t* __restrict__ chunk_rows,
                               int32_t* __restrict__ dest_row, int32_t* __restrict__ row_slot) {
  constexpr int kPerLane = kRoutingChunk / 32;
  __shared__ int16_t chunk_expert[kRoutingChunk];
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int64_t const chunk = blockIdx.x, first = chunk * kRoutingChunk, end = min(slots, first + kRoutingChunk);
  stage_local_experts<kPerLane, 32>(topk_ids, first, end, int(threadIdx.x), experts, expert_map, local_experts,
                                    chunk_expert);
  __syncwarp();
  scatter_in_slot_order(
      first, end, [&](int64_t s) { return int(chunk_expert[s - first]); },
      [&](int e) { return &chunk_rows[e * chunks + chunk]; }, [&](int e) { return int32_t(offsets[e]); },
      dest_row, row_slot);
}

// Batches of up to kOneBlockRoutingSlots slots: the count, the scan and the scatter in one block (one launch instead
// of three), the GEMMs' per-expert arrays filled as soon as the offsets are final (two launches fewer), and for few
// tokens (moe_kernels.h, kFusedRouterTokens) the router first (a warp per token). The same result as the chunked path:
// each expert's rows in slot order. Each warp owns a contiguous segment of at least 32 slots; its counters in shared
// memory hold the segment's count per expert, then (after a scan over the segments and one over the experts) its
// first free row in each expert, which its scatter advances. kPerLane = 0: the top-k ids are given. One block a launch,
// so all 64 registers a thread: with the block size alone as its bound, ptxas kept 32-56 and spilled 52 bytes in the
// 256-expert instance.
template <int kPerLane, class Logit>
__global__ void __launch_bounds__(kOneBlockRoutingThreads, 1) route_one_block_kernel(
    Logit const* __restrict__ logits, int tokens, int top_k, int experts, bool renormalize, int32_t const* ids_in,
    int32_t* ids_out, float* __restrict__ weights_out, int32_t const* __restrict__ expert_map, int local_experts,
    int64_t* __restrict__ offsets, int32_t* __restrict__ dest_row, int32_t* __restrict__ row_slot,
    RoutingArraysFill fill, uint32_t* routing_end) {
  constexpr int kWarps = kOneBlockRoutingThreads / 32;
  extern __shared__ int32_t shared[];
  int32_t* const next_row = shared;                              // [segments][local_experts]
  int32_t* const expert_rows = shared + kWarps * local_experts;  // [local_experts]
  auto* const slot_expert = reinterpret_cast<int16_t*>(expert_rows + local_experts);  // [slots]
  pdl_wait_for_previous_grid();
  if (threadIdx.x == 0) clear_routing_end(routing_end);  // before the trigger: common/pdl.cuh
  pdl_allow_next_grid();
  int const slots = tokens * top_k, warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if constexpr (kPerLane > 0) {
    // The router's ids stay in registers: each slot's local expert goes to shared memory straight away, where a
    // store of the ids, a barrier and their load back from memory had been on the chain (bench/NOTES.md §73).
    for (int t = warp; t < tokens; t += kWarps) {
      int const id = topk_softmax_warp<kPerLane>(logits + int64_t(t) * experts, experts, top_k, renormalize,
                                                 ids_out + t * top_k, weights_out + t * top_k);
      if (lane < top_k) {
        slot_expert[t * top_k + lane] = int16_t(local_expert_of(id, experts, expert_map, local_experts));
      }
    }
  }
  // A segment of at least 32 slots per warp: fewer segments for fewer slots, so the scans below stay short.
  int const segments = max(1, min(kWarps, (slots + 31) / 32)), segment = (slots + segments - 1) / segments;
  for (int i = int(threadIdx.x); i < segments * local_experts; i += blockDim.x) next_row[i] = 0;
  if constexpr (kPerLane == 0) {  // every given slot's local expert (the whole block loads)
    constexpr int kSlotsPerThread = kOneBlockRoutingSlots / kOneBlockRoutingThreads;
    static_assert(kSlotsPerThread * kOneBlockRoutingThreads == kOneBlockRoutingSlots, "whole slots a thread");
    stage_local_experts<kSlotsPerThread, kOneBlockRoutingThreads>(ids_in, 0, slots, int(threadIdx.x), experts,
                                                                  expert_map, local_experts, slot_expert);
  }
  __syncthreads();  // publishes the slots' local experts and the zeroed counters
  // Each warp counts its segment from shared memory.
  int const first = min(slots, warp * segment), end = warp < segments ? min(slots, first + segment) : first;
  int32_t* const own = next_row + warp * local_experts;
  for (int s = first + lane; s < end; s += 32) {
    int const e = slot_expert[s];
    if (e >= 0) atomicAdd(&own[e], 1);
  }
  __syncthreads();
  for (int e = int(threadIdx.x); e < local_experts; e += blockDim.x) {  // segment counts -> first rows in e
    int32_t rows = 0;
    for (int w = 0; w < segments; ++w) {
      int32_t const count = next_row[w * local_experts + e];
      next_row[w * local_experts + e] = rows;
      rows += count;
    }
    expert_rows[e] = rows;
  }
  __syncthreads();
  int32_t const total = block_scan<int32_t, true>(expert_rows, local_experts, [](int32_t const* x) { return *x; });
  for (int e = int(threadIdx.x); e < local_experts; e += blockDim.x) {
    int32_t const begin = expert_rows[e], end_row = e + 1 < local_experts ? expert_rows[e + 1] : total;
    offsets[e] = begin;
    for (int w = 0; w < segments; ++w) next_row[w * local_experts + e] += begin;
    for (int g = 0; g < fill.count; ++g) gemm::fill_expert_arrays(fill.gemm[g], fill.workspace[g], e, begin, end_row);
  }
  if (threadIdx.x == 0) offsets[local_experts] = total;
  __syncthreads();
  scatter_in_slot_order(
      first, end, [&](int64_t s) { return int(slot_expert[s]); }, [&](int e) { return &own[e]; },
      [](int) { return 0; }, dest_row, row_slot);
}

// Up to kFewRoutingSlots slots (decode: 1-4 tokens of top-8, 1-16 of top-2): no shared counters, one block barrier.
// The slots' local experts go to shared memory (with logits, a warp a token routes first); then warp 0 places the
// slots, a lane a slot: an expert's first row counts the slots of smaller experts, a slot's rank among its expert's
// slots (match.any) completes its row, in slot order as the other paths. Meanwhile every thread counts the same for its
// own experts and writes their offsets and the GEMMs' arrays, so experts without slots cost no serial loop.
template <int kPerLane, class Logit>
__global__ void __launch_bounds__(kFewRoutingSlots * 32) route_few_slots_kernel(
    Logit const* logits, int tokens, int top_k, int experts, bool renormalize, int32_t const* ids_in,
    int32_t* ids_out, float* __restrict__ weights_out, int32_t const* expert_map, int local_experts,
    int64_t* __restrict__ offsets, int32_t* __restrict__ dest_row, int32_t* __restrict__ row_slot,
    RoutingArraysFill fill, uint32_t* routing_end) {
  static_assert(kFewRoutingSlots == 32, "a lane a slot");
  __shared__ int16_t slot_expert[kFewRoutingSlots];
  pdl_wait_for_previous_grid();
  if (threadIdx.x == 0) clear_routing_end(routing_end);  // before the trigger: common/pdl.cuh
  pdl_allow_next_grid();
  int const slots = tokens * top_k, warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if constexpr (kPerLane > 0) {
    for (int t = warp; t < tokens; t += int(blockDim.x) / 32) {
      int const id = topk_softmax_warp<kPerLane>(logits + int64_t(t) * experts, experts, top_k, renormalize,
                                                 ids_out + t * top_k, weights_out + t * top_k);
      if (lane < top_k) {
        slot_expert[t * top_k + lane] = int16_t(local_expert_of(id, experts, expert_map, local_experts));
      }
    }
  } else if (int(threadIdx.x) < slots) {
    slot_expert[threadIdx.x] = int16_t(local_expert_of(ids_in[threadIdx.x], experts, expert_map, local_experts));
  }
  __syncthreads();
  // The rows before expert x's: the slots of local experts below x; where through is given, also those up to x.
  auto rows_below = [&](int x, int* through) {
    int below = 0, up_to = 0;
    for (int s = 0; s < slots; ++s) {
      int const e = slot_expert[s];
      below += e >= 0 && e < x;
      up_to += e >= 0 && e <= x;
    }
    if (through != nullptr) *through = up_to;
    return below;
  };
  if (warp == 0) {
    int const expert = lane < slots ? slot_expert[lane] : -1;
    unsigned const peers = __match_any_sync(0xFFFFFFFFu, expert);
    int const row = rows_below(expert, nullptr) + __popc(peers & ((1u << lane) - 1u));
    if (lane < slots) dest_row[lane] = expert >= 0 ? row : -1;
    if (expert >= 0) row_slot[row] = lane;
  }
  for (int x = int(threadIdx.x); x <= local_experts; x += blockDim.x) {
    int end = 0;
    int const begin = rows_below(x, &end);
    offsets[x] = begin;
    for (int g = 0; g < fill.count && x < local_experts; ++g) {
      gemm::fill_expert_arrays(fill.gemm[g], fill.workspace[g], x, begin, end);
    }
  }
}

// The one-block routing's kernel: kPerLane = 0 sorts ids_in, else the router runs first on the logits.
template <int kPerLane, class Logit>
cudaError_t launch_route_one_block_kernel(RoutingProblem const& p, Logit const* logits, bool renormalize,
                                          int32_t const* ids_in, int32_t* ids_out, float* weights_out) {
  return launch_with_pdl(route_one_block_kernel<kPerLane, Logit>, 1, kOneBlockRoutingThreads,
                         one_block_routing_shared_bytes(p.tokens * p.top_k, p.local_experts), p.stream, logits,
                         int(p.tokens), p.top_k, p.experts, renormalize, ids_in, ids_out, weights_out, p.expert_map,
                         p.local_experts, p.offsets, p.dest_row, p.row_slot, p.fill, p.routing_end);
}

// The few-slots routing: kFewRoutingThreads, and with logits (kPerLane > 0) at least a warp a token for the router
// (Mixtral-8x7B at 16 tokens: 16 warps, where two rounds of 8 took 1 us more, bench/NOTES.md §90).
template <int kPerLane, class Logit>
cudaError_t launch_route_few_slots(RoutingProblem const& p, Logit const* logits, bool renormalize,
                                   int32_t const* ids_in, int32_t* ids_out, float* weights_out) {
  int const router_warps = kPerLane > 0 ? int(p.tokens) : 0;
  int const threads = std::max(kFewRoutingThreads, 32 * router_warps);
  return launch_with_pdl(route_few_slots_kernel<kPerLane, Logit>, 1, threads, 0, p.stream, logits,
                         int(p.tokens), p.top_k, p.experts, renormalize, ids_in, ids_out, weights_out, p.expert_map,
                         p.local_experts, p.offsets, p.dest_row, p.row_slot, p.fill, p.routing_end);
}

// The routing of a batch that routes_in_one_block: one warp places up to kFewRoutingSlots slots, else the one-block
// kernel. kPerLane = 0 sorts ids_in, else the router runs first on the logits.
template <int kPerLane, class Logit>
cudaError_t launch_route_one_block(RoutingProblem const& p, Logit const* logits, bool renormalize,
                                   int32_t const* ids_in, int32_t* ids_out, float* weights_out) {
  return routes_in_few_slots(p.tokens, p.top_k, p.local_experts)
             ? launch_route_few_slots<kPerLane>(p, logits, renormalize, ids_in, ids_out, weights_out)
             : launch_route_one_block_kernel<kPerLane>(p, logits, renormalize, ids_in, ids_out, weights_out);
}

}  // namespace

cudaError_t launch_routing(RoutingProblem const& p) {
  if (routes_in_one_block(p.tokens, p.top_k, p.local_experts)) {
    return launch_route_one_block<0>(p, static_cast<float const*>(nullptr), false, p.topk_ids, nullptr, nullptr);
  }
  int64_t const slots = p.tokens * p.top_k;
  int64_t const chunks = routing_chunks(slots);
  auto* blocks_done = reinterpret_cast<unsigned*>(p.chunk_counts + chunks * p.local_experts);
  cudaError_t error = launch_with_pdl(count_chunks, unsigned(std::max<int64_t>(chunks, 1)), kRoutingChunk,
                                      size_t(p.local_experts) * sizeof(int32_t), p.stream, p.topk_ids, p.expert_map,
                                      slots, chunks, p.experts, p.local_experts, p.chunk_counts, blocks_done,
                                      p.routing_end);
  if (error != cudaSuccess) return error;
  error = launch_with_pdl(scan_counts, unsigned(p.local_experts), 256, 0, p.stream, p.chunk_counts, chunks,
                          p.local_experts, p.offsets, blocks_done);
  if (error != cudaSuccess || chunks == 0) return error;
  return launch_with_pdl(scatter_chunks, unsigned(chunks), 32, 0, p.stream, p.topk_ids, p.expert_map, slots, chunks,
                         p.experts, p.local_experts, static_cast<int64_t const*>(p.offsets), p.chunk_counts,
                         p.dest_row, p.row_slot);
}

cudaError_t launch_topk_and_routing(RoutingProblem const& p, Router const& router) {
  if (routes_in_one_block(p.tokens, p.top_k, p.local_experts) && p.tokens <= kFusedRouterTokens &&
      p.tokens * warp_router_per_lane(p.experts) <= kFusedRouterLaneLogits) {
    cudaError_t error = cudaSuccess;
    auto fused = [&](auto per_lane) {
      auto launch = [&](auto const* typed_logits) {
        error = launch_route_one_block<decltype(per_lane)::value>(p, typed_logits, router.renormalize, nullptr,
                                                                   router.topk_ids, router.topk_weights);
      };
      if (router.type == LogitsType::kFP32) {
        launch(static_cast<float const*>(router.logits));
      } else {
        launch(static_cast<__nv_bfloat16 const*>(router.logits));
      }
    };
    if (with_warp_router(p.experts, fused)) return error;
  }
  cudaError_t const error = launch_topk_softmax(p, router);
  if (error != cudaSuccess) return error;
  RoutingProblem sort = p;
  sort.topk_ids = router.topk_ids;
  return launch_routing(sort);
}

}  // namespace w4a8moe::moe
