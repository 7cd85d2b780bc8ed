// The quantised token rows: their stores, shared by the permute kernel (token_kernels.cu) and the quantising blocks of
// the routing's cluster (routing.cu, RoutingQuantize), which both write the same bytes for a token; and those blocks.
#pragma once

#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "moe/kernel_common.cuh"
#include "moe/moe_kernels.h"

namespace w4a8moe::moe {

inline constexpr int kGroupVectors = 128 / kVector;  // vectors of a 128-column group

// The group sum of the quantised vector v of a row (GroupSumsOut): its 8 e4m3 values summed, then over the 16
// consecutive threads that hold the group's vectors (16-aligned in every warp: rows are whole groups, blocks whole
// warps, so a half-warp is either all active or all inactive). Returns the sum in the group's first thread.
__device__ __forceinline__ float group_sum(uint2 q) {
  float sum = 0.0f;
  uint32_t const words[2] = {q.x, q.y};
#pragma unroll
  for (int w = 0; w < 2; ++w) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      __half2_raw const h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(words[w] >> (16 * half)), __NV_E4M3);
      float2 const f = __half22float2(__half2(h));
      sum += f.x + f.y;
    }
  }
  unsigned const half_warp = 0xFFFFu << (threadIdx.x & 16);  // the group's half of the warp, all of it here
#pragma unroll
  for (int d = 1; d < kGroupVectors; d *= 2) sum += __shfl_xor_sync(half_warp, sum, d);
  return sum * (1.0f / 64.0f);  // 2^-6, the offset's value at the nibbles' scale (prepack/exact_format.h)
}

// Vector v of a token's quantised row (rows of padded_vectors vectors) to each of the token's rows (rows[j] < 0: a
// slot of no local expert), and with group sums its group's sum; every thread of the half-warp holding the group
// calls this.
__device__ __forceinline__ void store_token_vector(uint2 q, int v, int32_t const* rows, int top_k, uint8_t* act,
                                                   int padded_vectors, GroupSumsOut const& group_sums) {
  for (int j = 0; j < top_k; ++j) {
    if (rows[j] >= 0) reinterpret_cast<uint2*>(act + int64_t(rows[j]) * padded_vectors * kVector)[v] = q;
  }
  if (group_sums.sums != nullptr) {
    float const sum = group_sum(q);
    if (v % kGroupVectors == 0) {
      for (int j = 0; j < top_k; ++j) {
        if (rows[j] >= 0) group_sums.sums[(v / kGroupVectors) * group_sums.stride + rows[j]] = sum;
      }
    }
  }
}

// 16 bytes from global to shared memory without passing through registers; zeros where !valid (nothing is read).
__device__ __forceinline__ void copy16_async(uint4* shared, void const* global, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(
                   static_cast<uint32_t>(__cvta_generic_to_shared(shared))),
               "l"(global), "r"(valid ? 16 : 0)
               : "memory");
}

__device__ __forceinline__ void wait_async_copies() {
  asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
}

// Block b >= 1 of the routing's cluster (RoutingQuantize): the tokens [(b - 1) n, b n), n = tokens_per_block, copied
// to `staged` (kRoutingQuantizeVectors vectors of shared memory) while the routing block works and their per-token
// maxima reduced; after the cluster's first barrier (the routing done) quantised as permute_quantize_kernel quantises
// them, bit for bit (the same maximum, scale and rounding), and copied to the rows the routing gave their slots, read
// from `slot_rows` in the routing block's shared memory. The second barrier, met by the routing block too, keeps that
// memory until every block has read it.
template <ActivationType kType>
__device__ void quantize_routed_tokens(RoutingQuantize const& q, int tokens, int top_k, int32_t* slot_rows,
                                       uint4* staged) {
  namespace cg = cooperative_groups;
  __shared__ uint32_t token_amax[kRoutingQuantizeTokens];  // fp32 bits of non-negative maxima: ordered as integers
  __shared__ int32_t rows[kRoutingQuantizeTokens * kMaxTopK];
  cg::cluster_group const cluster = cg::this_cluster();
  int const first_token = (int(blockIdx.x) - 1) * q.tokens_per_block;
  int const count = max(0, min(tokens - first_token, q.tokens_per_block));
  int const vectors = q.hidden_size / kVector, padded_vectors = padded_k(q.hidden_size) / kVector;
  int const held = count * padded_vectors;  // this block's vectors, token by token; a multiple of kGroupVectors
  auto const* hidden = static_cast<uint4 const*>(q.hidden) + int64_t(first_token) * vectors;
  for (int f = int(threadIdx.x); f < held; f += int(blockDim.x)) {  // zeros past each row
    int const t = f / padded_vectors, v = f % padded_vectors;
    copy16_async(staged + f, v < vectors ? hidden + int64_t(t) * vectors + v : hidden, v < vectors);
  }
  if (threadIdx.x < kRoutingQuantizeTokens) token_amax[threadIdx.x] = 0;
  wait_async_copies();
  __syncthreads();  // every copy landed; token_amax zeroed
  for (int f = int(threadIdx.x); f < held; f += int(blockDim.x)) {  // whole half-warps (held: whole groups)
    float x[kVector];
    unpack_vector<kType>(staged[f], x);
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < kVector; ++i) m = fmaxf(m, fabsf(x[i]));
    // A half-warp holds one 128-column group of one token (and is active or not as a whole).
    unsigned const half_warp = 0xFFFFu << (threadIdx.x & 16);
#pragma unroll
    for (int d = 1; d < kGroupVectors; d *= 2) m = fmaxf(m, __shfl_xor_sync(half_warp, m, d));
    if (f % kGroupVectors == 0) atomicMax(&token_amax[f / padded_vectors], __float_as_uint(m));
  }
  cluster.sync();  // 1: the routing is done (its slot rows, the router's weights); token_amax is final
  int32_t const* routed = cluster.map_shared_rank(slot_rows, 0);
  for (int i = int(threadIdx.x); i < count * top_k; i += int(blockDim.x)) rows[i] = routed[first_token * top_k + i];
  __syncthreads();
  for (int f = int(threadIdx.x); f < held; f += int(blockDim.x)) {
    int const t = f / padded_vectors;
    float x[kVector];
    unpack_vector<kType>(staged[f], x);
    E4m3Scale const e4m3 = e4m3_scale(__uint_as_float(token_amax[t]));
    store_token_vector(quantize_vector(x, e4m3.inverse), f % padded_vectors, rows + t * top_k, top_k, q.act,
                       padded_vectors, q.group_sums);
  }
  for (int i = int(threadIdx.x); i < count * top_k; i += int(blockDim.x)) {
    if (rows[i] < 0) continue;
    float const scale = e4m3_scale(__uint_as_float(token_amax[i / top_k])).scale;
    q.act_scales[rows[i]] = q.weight_on_input ? scale * q.topk_weights[int64_t(first_token) * top_k + i] : scale;
  }
  cluster.sync();  // 2: the routing block's shared memory was read
}

}  // namespace w4a8moe::moe
