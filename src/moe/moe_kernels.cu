// The MoE layer's kernels around the two grouped GEMMs: routing, permute + quantise, SiLU * up + requantise,
// unpermute. Rows are vectors of 8 16-bit values (16-byte accesses): H and I are multiples of 128.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <type_traits>

#include "common/pdl.cuh"
#include "gemm/expert_arrays.cuh"
#include "moe/moe_kernels.h"

namespace w4a8moe::moe {
namespace {

constexpr int kThreads = 128;
constexpr int kVector = 8;  // 16-bit values per 16-byte access
constexpr float kE4M3Max = 448.0f;
constexpr int kHeldVectors = 4;  // permute: row vectors a thread keeps in registers

// --- Block reductions ------------------------------------------------------------------------------------------

template <class T, class Op>
__device__ T warp_reduce(T value, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value = op(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
  return value;
}

// All threads get the result. `scratch` holds one value per warp.
template <class T, class Op>
__device__ T block_reduce(T value, Op op, T* scratch) {
  int const warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  value = warp_reduce(value, op);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = scratch[0];
  for (int w = 1; w < int(blockDim.x / 32); ++w) value = op(value, scratch[w]);
  return value;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// --- 16-bit activation vectors ---------------------------------------------------------------------------------

template <ActivationType kType>
struct Act;
template <>
struct Act<ActivationType::kBF16> {
  using T = __nv_bfloat16;
  __device__ static float to_float(T x) { return __bfloat162float(x); }
  __device__ static T from_float(float x) { return __float2bfloat16_rn(x); }
};
template <>
struct Act<ActivationType::kFP16> {
  using T = __half;
  __device__ static float to_float(T x) { return __half2float(x); }
  __device__ static T from_float(float x) { return __float2half_rn(x); }
};

template <ActivationType kType>
__device__ void unpack_vector(uint4 const& raw, float (&v)[kVector]) {
  using A = Act<kType>;
  typename A::T const* x = reinterpret_cast<typename A::T const*>(&raw);
#pragma unroll
  for (int i = 0; i < kVector; ++i) v[i] = A::to_float(x[i]);
}

template <ActivationType kType>
__device__ void load_vector(void const* base, int64_t index, float (&v)[kVector]) {
  unpack_vector<kType>(static_cast<uint4 const*>(base)[index], v);
}

template <ActivationType kType>
__device__ void store_vector(void* base, int64_t index, float const (&v)[kVector]) {
  using A = Act<kType>;
  uint4 raw;
  typename A::T* x = reinterpret_cast<typename A::T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVector; ++i) x[i] = A::from_float(v[i]);
  static_cast<uint4*>(base)[index] = raw;
}

// 8 values times `inverse`, to e4m3 (round to nearest even, saturating), as 8 bytes.
__device__ uint2 quantize_vector(float const (&v)[kVector], float inverse) {
  uint32_t words[2];
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    uint32_t word = 0;
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      float2 const pair = make_float2(v[4 * w + 2 * p] * inverse, v[4 * w + 2 * p + 1] * inverse);
      word |= uint32_t(__nv_cvt_float2_to_fp8x2(pair, __NV_SATFINITE, __NV_E4M3)) << (16 * p);
    }
    words[w] = word;
  }
  return make_uint2(words[0], words[1]);
}

// --- Router: softmax + top-k --------------------------------------------------------------------------------------

struct Candidate {
  float value;
  int index;
};

__device__ Candidate better(Candidate a, Candidate b) {
  return (a.value > b.value || (a.value == b.value && a.index < b.index)) ? a : b;
}

template <class Logit>
__device__ float logit_to_float(Logit x);
template <>
__device__ float logit_to_float<float>(float x) {
  return x;
}
template <>
__device__ float logit_to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <class Logit>
__global__ void topk_softmax_kernel(Logit const* __restrict__ logits, int experts, int top_k, bool renormalize,
                                    int32_t* __restrict__ topk_ids, float* __restrict__ topk_weights) {
  extern __shared__ float prob[];  // [experts]
  __shared__ float scratch[kThreads / 32];
  __shared__ Candidate candidates[kThreads / 32];
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

template <int kPerLane, class Logit>
__global__ void topk_softmax_warp_kernel(Logit const* __restrict__ logits, int64_t tokens, int experts, int top_k,
                                         bool renormalize, int32_t* __restrict__ topk_ids,
                                         float* __restrict__ topk_weights) {
  int64_t const t = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;  // whole warps exit together
  topk_softmax_warp<kPerLane>(logits + t * experts, experts, top_k, renormalize, topk_ids + t * top_k,
                              topk_weights + t * top_k);
}

// --- Routing: stable counting sort of the slots by local expert ----------------------------------------------------

__device__ int local_expert(int32_t id, int32_t const* expert_map, int experts, int local_experts) {
  if (id < 0 || id >= experts) return -1;
  int const local = expert_map ? expert_map[id] : id;
  return (local >= 0 && local < local_experts) ? local : -1;
}

// chunk_counts is expert-major, [E_local][chunks], so each expert's column is contiguous for its scan.
__global__ void count_chunks(int32_t const* __restrict__ topk_ids, int32_t const* __restrict__ expert_map,
                             int64_t slots, int64_t chunks, int experts, int local_experts,
                             int32_t* __restrict__ chunk_counts) {
  int64_t const chunk = blockIdx.x;
  int64_t const s = chunk * kRoutingChunk + threadIdx.x;
  if (s >= slots) return;
  int const e = local_expert(topk_ids[s], expert_map, experts, local_experts);
  if (e >= 0) atomicAdd(&chunk_counts[e * chunks + chunk], 1);
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
// earlier slots of this chunk. Only this warp touches its chunk's counters.
__global__ void scatter_chunks(int32_t const* __restrict__ topk_ids, int32_t const* __restrict__ expert_map,
                               int64_t slots, int64_t chunks, int experts, int local_experts,
                               int64_t const* __restrict__ offsets, int32_t* __restrict__ chunk_rows,
                               int32_t* __restrict__ dest_row, int32_t* __restrict__ row_slot) {
  int64_t const chunk = blockIdx.x;
  scatter_in_slot_order(
      chunk * kRoutingChunk, min(slots, (chunk + 1) * kRoutingChunk),
      [&](int64_t s) { return local_expert(topk_ids[s], expert_map, experts, local_experts); },
      [&](int e) { return &chunk_rows[e * chunks + chunk]; }, [&](int e) { return int32_t(offsets[e]); },
      dest_row, row_slot);
}

// Small batches (decode): the router, the count, the scan and the scatter in one block, one launch instead of up
// to four and a memset, and the GEMMs' per-expert arrays (two launches fewer). The same result as the chunked
// path: each expert's rows in slot order. The shared counters are each expert's count, then its first row, then its
// next free row. kPerLane = 0: the top-k ids are given.
template <int kPerLane, class Logit>
__global__ void __launch_bounds__(kSmallRoutingThreads) route_small_kernel(
    Logit const* __restrict__ logits, int tokens, int top_k, int experts, bool renormalize, int32_t const* ids_in,
    int32_t* ids_out, float* __restrict__ weights_out, int32_t const* __restrict__ expert_map, int local_experts,
    int64_t* __restrict__ offsets, int32_t* __restrict__ dest_row, int32_t* __restrict__ row_slot,
    RoutingArraysFill fill) {
  extern __shared__ int32_t next_row[];  // [local_experts]
  __shared__ int32_t slot_expert[kSmallRoutingSlots];
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int const slots = tokens * top_k;
  if constexpr (kPerLane > 0) {
    for (int t = threadIdx.x / 32; t < tokens; t += blockDim.x / 32) {
      topk_softmax_warp<kPerLane>(logits + int64_t(t) * experts, experts, top_k, renormalize, ids_out + t * top_k,
                                  weights_out + t * top_k);
    }
  }
  for (int e = threadIdx.x; e < local_experts; e += blockDim.x) next_row[e] = 0;
  __syncthreads();  // also publishes the router's ids to the block
  for (int s = threadIdx.x; s < slots; s += blockDim.x) {
    int const e = local_expert(ids_in[s], expert_map, experts, local_experts);
    slot_expert[s] = e;
    if (e >= 0) atomicAdd(&next_row[e], 1);
  }
  __syncthreads();
  int32_t const total = block_scan<int32_t, true>(next_row, local_experts, [](int32_t const* x) { return *x; });
  for (int e = threadIdx.x; e < local_experts; e += blockDim.x) {
    int32_t const end = e + 1 < local_experts ? next_row[e + 1] : total;
    offsets[e] = next_row[e];
    for (int g = 0; g < fill.count; ++g) {
      gemm::fill_expert_arrays(fill.gemm[g], fill.workspace[g], e, next_row[e], end);
    }
  }
  if (threadIdx.x == 0) offsets[local_experts] = total;
  __syncthreads();  // the scatter below moves the counters
  if (threadIdx.x >= 32) return;
  // One warp in slot order; the shared counters already hold each expert's first free row.
  scatter_in_slot_order(
      0, slots, [&](int64_t s) { return slot_expert[s]; }, [&](int e) { return &next_row[e]; },
      [](int) { return 0; }, dest_row, row_slot);
}

// --- Permute + quantise, SiLU * up + requantise, unpermute ----------------------------------------------------------

// One block per token. Each thread keeps up to kHeldVectors of the row in registers between the amax and the
// quantisation, so the row is read once (rows longer than kHeldVectors * blockDim are read twice).
template <ActivationType kType>
__global__ void permute_quantize_kernel(void const* __restrict__ hidden, int hidden_size, int top_k,
                                        int32_t const* __restrict__ dest_row, float const* __restrict__ topk_weights,
                                        bool weight_on_input, uint8_t* __restrict__ act,
                                        float* __restrict__ act_scales) {
  __shared__ float scratch[32];
  __shared__ int32_t rows[kMaxTopK];
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int64_t const t = blockIdx.x;
  if (threadIdx.x < top_k) rows[threadIdx.x] = dest_row[t * top_k + threadIdx.x];
  int const vectors = hidden_size / kVector;
  int64_t const first_vector = t * vectors;
  // All loads issued before the first use: at decode this kernel is a chain of load latencies.
  uint4 raw[kHeldVectors];
#pragma unroll
  for (int h = 0; h < kHeldVectors; ++h) {
    int const v = threadIdx.x + h * blockDim.x;
    raw[h] = v < vectors ? static_cast<uint4 const*>(hidden)[first_vector + v] : make_uint4(0, 0, 0, 0);
  }
  float held[kHeldVectors][kVector];
  float local_max = 0.0f;
#pragma unroll
  for (int h = 0; h < kHeldVectors; ++h) {
    unpack_vector<kType>(raw[h], held[h]);  // zeros past the row: no effect on the max
#pragma unroll
    for (int i = 0; i < kVector; ++i) local_max = fmaxf(local_max, fabsf(held[h][i]));
  }
  for (int v = threadIdx.x + kHeldVectors * blockDim.x; v < vectors; v += blockDim.x) {
    float x[kVector];
    load_vector<kType>(hidden, first_vector + v, x);
#pragma unroll
    for (int i = 0; i < kVector; ++i) local_max = fmaxf(local_max, fabsf(x[i]));
  }
  float const amax = block_reduce(local_max, MaxOp{}, scratch);  // its barriers also publish rows
  float const inverse = amax > 0.0f ? kE4M3Max / amax : 0.0f;
  float const scale = amax / kE4M3Max;
  auto store = [&](int v, float const (&x)[kVector]) {
    uint2 const q = quantize_vector(x, inverse);
    for (int j = 0; j < top_k; ++j) {
      if (rows[j] >= 0) reinterpret_cast<uint2*>(act + int64_t(rows[j]) * hidden_size)[v] = q;
    }
  };
#pragma unroll
  for (int h = 0; h < kHeldVectors; ++h) {
    int const v = threadIdx.x + h * blockDim.x;
    if (v >= vectors) break;
    store(v, held[h]);
  }
  for (int v = threadIdx.x + kHeldVectors * blockDim.x; v < vectors; v += blockDim.x) {
    float x[kVector];
    load_vector<kType>(hidden, first_vector + v, x);
    store(v, x);
  }
  if (threadIdx.x < top_k && rows[threadIdx.x] >= 0) {
    act_scales[rows[threadIdx.x]] = weight_on_input ? scale * topk_weights[t * top_k + threadIdx.x] : scale;
  }
}

template <ActivationType kType>
__device__ void silu_mul_vector(void const* gemm1_out, int64_t row, int inter, int v, float (&h)[kVector]) {
  int const vectors = inter / kVector;
  float gate[kVector], up[kVector];
  load_vector<kType>(gemm1_out, row * 2 * vectors + v, gate);
  load_vector<kType>(gemm1_out, row * 2 * vectors + vectors + v, up);
#pragma unroll
  for (int i = 0; i < kVector; ++i) h[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

// One block per row. The row's SiLU(gate) * up values are kept in shared memory between the amax pass and the
// quantisation pass, so GEMM1's output is read once.
template <ActivationType kType>
__global__ void silu_mul_quantize_kernel(void const* __restrict__ gemm1_out, int inter,
                                         int64_t const* __restrict__ offsets, int local_experts,
                                         uint8_t* __restrict__ act, float* __restrict__ act_scales) {
  extern __shared__ float h_row[];  // [inter]
  __shared__ float scratch[32];     // one per warp; blocks have up to 1024 threads
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int64_t const row = blockIdx.x;
  if (row >= offsets[local_experts]) return;  // uniform per block: no thread reaches the barriers below
  int const vectors = inter / kVector;
  float local_max = 0.0f;
  for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
    float h[kVector];
    silu_mul_vector<kType>(gemm1_out, row, inter, v, h);
#pragma unroll
    for (int i = 0; i < kVector; ++i) {
      local_max = fmaxf(local_max, fabsf(h[i]));
      h_row[v * kVector + i] = h[i];
    }
  }
  float const amax = block_reduce(local_max, MaxOp{}, scratch);  // its barriers also publish h_row
  float const inverse = amax > 0.0f ? kE4M3Max / amax : 0.0f;
  for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
    float h[kVector];
#pragma unroll
    for (int i = 0; i < kVector; ++i) h[i] = h_row[v * kVector + i];
    reinterpret_cast<uint2*>(act + row * inter)[v] = quantize_vector(h, inverse);
  }
  if (threadIdx.x == 0) act_scales[row] = amax / kE4M3Max;
}

// One block per token. The token's rows and weights go to shared memory first, and each step issues the loads of
// kRowsInFlight rows before summing them (in slot order): at decode this kernel is a chain of load latencies.
template <ActivationType kType>
__global__ void unpermute_kernel(void const* __restrict__ gemm2_out, int hidden_size, int top_k,
                                 int32_t const* __restrict__ dest_row, float const* __restrict__ topk_weights,
                                 bool weight_on_input, void* __restrict__ out) {
  constexpr int kRowsInFlight = 8;
  __shared__ int32_t rows[kMaxTopK];
  __shared__ float weights[kMaxTopK];
  pdl_wait_for_previous_grid();
  pdl_allow_next_grid();
  int64_t const t = blockIdx.x;
  if (threadIdx.x < top_k) {
    rows[threadIdx.x] = dest_row[t * top_k + threadIdx.x];
    weights[threadIdx.x] = weight_on_input ? 1.0f : topk_weights[t * top_k + threadIdx.x];
  }
  __syncthreads();
  int const vectors = hidden_size / kVector;
  for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
    float sum[kVector] = {};
    for (int first = 0; first < top_k; first += kRowsInFlight) {
      int32_t row[kRowsInFlight];
      uint4 raw[kRowsInFlight];
#pragma unroll
      for (int b = 0; b < kRowsInFlight; ++b) {
        row[b] = first + b < top_k ? rows[first + b] : -1;
        raw[b] = row[b] >= 0 ? static_cast<uint4 const*>(gemm2_out)[int64_t(row[b]) * vectors + v]
                             : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int b = 0; b < kRowsInFlight; ++b) {
        if (row[b] < 0) continue;
        float x[kVector];
        unpack_vector<kType>(raw[b], x);
#pragma unroll
        for (int i = 0; i < kVector; ++i) sum[i] += weights[first + b] * x[i];
      }
    }
    store_vector<kType>(out, t * vectors + v, sum);
  }
}

// Threads of a one-row-per-block kernel: about `per_thread` of the row's 16-byte vectors a thread, whole warps.
int threads_for_row(int vectors, int per_thread) {
  return std::clamp((vectors + per_thread * 32 - 1) / (per_thread * 32) * 32, kThreads, 1024);
}

template <template <ActivationType> class Launch, class... Args>
cudaError_t dispatch_type(ActivationType type, Args&&... args) {
  if (type == ActivationType::kBF16) return Launch<ActivationType::kBF16>::run(args...);
  return Launch<ActivationType::kFP16>::run(args...);
}

}  // namespace

namespace {

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

template <class Logit>
cudaError_t launch_topk(Logit const* logits, int64_t tokens, int experts, int top_k, bool renormalize,
                        int32_t* topk_ids, float* topk_weights, cudaStream_t stream) {
  constexpr int kWarps = kThreads / 32;
  unsigned const warp_blocks = unsigned((tokens + kWarps - 1) / kWarps);
  bool const warp_router = with_warp_router(experts, [&](auto per_lane) {
    topk_softmax_warp_kernel<decltype(per_lane)::value><<<warp_blocks, kThreads, 0, stream>>>(
        logits, tokens, experts, top_k, renormalize, topk_ids, topk_weights);
  });
  if (!warp_router) {
    topk_softmax_kernel<<<unsigned(tokens), kThreads, size_t(experts) * sizeof(float), stream>>>(
        logits, experts, top_k, renormalize, topk_ids, topk_weights);
  }
  return cudaGetLastError();
}

template <int kPerLane, class Logit>
cudaError_t launch_route_small(Logit const* logits, int64_t tokens, int top_k, int experts, bool renormalize,
                               int32_t const* ids_in, int32_t* ids_out, float* weights_out,
                               int32_t const* expert_map, int local_experts, int64_t* offsets, int32_t* dest_row,
                               int32_t* row_slot, RoutingArraysFill const& fill, cudaStream_t stream) {
  return launch_with_pdl(route_small_kernel<kPerLane, Logit>, 1, kSmallRoutingThreads,
                         size_t(local_experts) * sizeof(int32_t), stream, logits, int(tokens), top_k, experts,
                         renormalize, ids_in, ids_out, weights_out, expert_map, local_experts, offsets, dest_row,
                         row_slot, fill);
}

}  // namespace

cudaError_t launch_topk_softmax(void const* logits, LogitsType type, int64_t tokens, int experts, int top_k,
                                bool renormalize, int32_t* topk_ids, float* topk_weights, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  if (type == LogitsType::kFP32) {
    return launch_topk(static_cast<float const*>(logits), tokens, experts, top_k, renormalize, topk_ids, topk_weights,
                       stream);
  }
  return launch_topk(static_cast<__nv_bfloat16 const*>(logits), tokens, experts, top_k, renormalize, topk_ids,
                     topk_weights, stream);
}

cudaError_t launch_routing(int32_t const* topk_ids, int32_t const* expert_map, int64_t tokens, int top_k,
                           int experts, int local_experts, int32_t* chunk_counts, int64_t* offsets,
                           int32_t* dest_row, int32_t* row_slot, cudaStream_t stream,
                           RoutingArraysFill const& fill) {
  if (routes_in_one_block(tokens, top_k, local_experts)) {
    return launch_route_small<0>(static_cast<float const*>(nullptr), tokens, top_k, experts, false, topk_ids, nullptr,
                                 nullptr, expert_map, local_experts, offsets, dest_row, row_slot, fill, stream);
  }
  int64_t const slots = tokens * top_k;
  int64_t const chunks = routing_chunks(slots);
  // The counts and, after them, scan_counts' finished-block counter.
  cudaError_t error =
      cudaMemsetAsync(chunk_counts, 0, (size_t(chunks) * local_experts + 1) * sizeof(int32_t), stream);
  if (error != cudaSuccess) return error;
  if (chunks > 0) {
    count_chunks<<<unsigned(chunks), kRoutingChunk, 0, stream>>>(topk_ids, expert_map, slots, chunks, experts,
                                                                 local_experts, chunk_counts);
    if ((error = cudaGetLastError()) != cudaSuccess) return error;
  }
  auto* blocks_done = reinterpret_cast<unsigned*>(chunk_counts + chunks * local_experts);
  scan_counts<<<unsigned(local_experts), 256, 0, stream>>>(chunk_counts, chunks, local_experts, offsets, blocks_done);
  if ((error = cudaGetLastError()) != cudaSuccess) return error;
  if (chunks > 0) {
    scatter_chunks<<<unsigned(chunks), 32, 0, stream>>>(topk_ids, expert_map, slots, chunks, experts, local_experts,
                                                        offsets, chunk_counts, dest_row, row_slot);
  }
  return cudaGetLastError();
}

cudaError_t launch_topk_and_routing(void const* logits, LogitsType type, int64_t tokens, int experts, int top_k,
                                    bool renormalize, int32_t* topk_ids, float* topk_weights,
                                    int32_t const* expert_map, int local_experts, int32_t* chunk_counts,
                                    int64_t* offsets, int32_t* dest_row, int32_t* row_slot, cudaStream_t stream,
                                    RoutingArraysFill const& fill) {
  if (routes_in_one_block(tokens, top_k, local_experts)) {
    cudaError_t error = cudaSuccess;
    auto fused = [&](auto per_lane) {
      auto launch = [&](auto const* typed_logits) {
        error = launch_route_small<decltype(per_lane)::value>(typed_logits, tokens, top_k, experts, renormalize,
                                                               topk_ids, topk_ids, topk_weights, expert_map,
                                                               local_experts, offsets, dest_row, row_slot, fill,
                                                               stream);
      };
      if (type == LogitsType::kFP32) {
        launch(static_cast<float const*>(logits));
      } else {
        launch(static_cast<__nv_bfloat16 const*>(logits));
      }
    };
    if (with_warp_router(experts, fused)) return error;
  }
  cudaError_t const error =
      launch_topk_softmax(logits, type, tokens, experts, top_k, renormalize, topk_ids, topk_weights, stream);
  if (error != cudaSuccess) return error;
  return launch_routing(topk_ids, expert_map, tokens, top_k, experts, local_experts, chunk_counts, offsets, dest_row,
                        row_slot, stream, fill);
}

namespace {

template <ActivationType kType>
struct PermuteQuantize {
  static cudaError_t run(void const* hidden, int64_t tokens, int hidden_size, int top_k, int32_t const* dest_row,
                         float const* topk_weights, bool weight_on_input, uint8_t* act, float* act_scales,
                         cudaStream_t stream) {
    int const threads = threads_for_row(hidden_size / kVector, kHeldVectors);
    return launch_with_pdl(permute_quantize_kernel<kType>, unsigned(tokens), threads, 0, stream, hidden, hidden_size,
                           top_k, dest_row, topk_weights, weight_on_input, act, act_scales);
  }
};

template <ActivationType kType>
struct SiluMulQuantize {
  static cudaError_t run(void const* gemm1_out, int64_t max_rows, int inter, int64_t const* offsets,
                         int local_experts, uint8_t* act, float* act_scales, cudaStream_t stream) {
    size_t const shared = size_t(inter) * sizeof(float);
    // A large row keeps few blocks per SM (shared memory): give each more threads, about 4 vectors a thread.
    int const threads = threads_for_row(inter / kVector, 4);
    return launch_with_pdl(silu_mul_quantize_kernel<kType>, unsigned(max_rows), threads, shared, stream, gemm1_out,
                           inter, offsets, local_experts, act, act_scales);
  }
};

template <ActivationType kType>
struct Unpermute {
  static cudaError_t run(void const* gemm2_out, int64_t tokens, int hidden_size, int top_k, int32_t const* dest_row,
                         float const* topk_weights, bool weight_on_input, void* out, cudaStream_t stream) {
    return launch_with_pdl(unpermute_kernel<kType>, unsigned(tokens), kThreads, 0, stream, gemm2_out, hidden_size,
                           top_k, dest_row, topk_weights, weight_on_input, out);
  }
};

}  // namespace

cudaError_t launch_permute_quantize(void const* hidden, ActivationType type, int64_t tokens, int hidden_size,
                                    int top_k, int32_t const* dest_row, float const* topk_weights,
                                    bool weight_on_input, uint8_t* act, float* act_scales, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_type<PermuteQuantize>(type, hidden, tokens, hidden_size, top_k, dest_row, topk_weights,
                                        weight_on_input, act, act_scales, stream);
}

cudaError_t launch_silu_mul_quantize(void const* gemm1_out, ActivationType type, int64_t max_rows, int inter,
                                     int64_t const* offsets, int local_experts, uint8_t* act, float* act_scales,
                                     cudaStream_t stream) {
  if (max_rows == 0) return cudaSuccess;
  return dispatch_type<SiluMulQuantize>(type, gemm1_out, max_rows, inter, offsets, local_experts, act, act_scales,
                                        stream);
}

cudaError_t launch_unpermute(void const* gemm2_out, ActivationType type, int64_t tokens, int hidden_size, int top_k,
                             int32_t const* dest_row, float const* topk_weights, bool weight_on_input, void* out,
                             cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_type<Unpermute>(type, gemm2_out, tokens, hidden_size, top_k, dest_row, topk_weights,
                                  weight_on_input, out, stream);
}

}  // namespace w4a8moe::moe
