// The kernels on the token rows around the GEMMs: permute + quantise, SiLU(gate) * up + requantise, the weighted
// unpermute.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "common/pdl.cuh"
#include "moe/kernel_common.cuh"
#include "moe/moe_kernels.h"

namespace w4a8moe::moe {
namespace {

static_assert(kMaxInter == kRowBlockThreads * kHeldRowVectors * kVector, "kMaxInter counts kVector-value vectors");
constexpr int kGroupVectors = 128 / kVector;  // vectors of a 128-column group

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

// Whether this block is in the grid's last wave, from block `first` on (blocks counted row by row).
__device__ __forceinline__ bool in_last_wave(int64_t first) {
  return int64_t(blockIdx.y) * gridDim.x + blockIdx.x >= first;
}

// Blocks of the grid's last wave let the next kernel launch at their start, the others at their exit. When every
// block let it at its start, the next kernel's blocks took residency, and waited, on the SMs this grid's later waves
// needed (bench/NOTES.md §21, §22).
__device__ __forceinline__ void allow_next_grid_from(int64_t first) {
  if (in_last_wave(first)) pdl_allow_next_grid();
}

// routing_done_before_stage_kernels: the routing's outputs (offsets, dest_row, topk_weights) are complete before the
// SiLU and unpermute grids start: the routing runs two or more launches before them (common/pdl.cuh's first rule;
// CUTLASS's GEMMs, launched without PDL, start only after the previous grid ends). Those kernels therefore load the
// routing's outputs before their waits, as common/pdl.cuh says.

// One block per token. Each thread keeps up to kHeldRowVectors of the row in registers between the amax and the
// quantisation, so the row is read once (rows longer than kHeldRowVectors * blockDim are read twice). The act rows
// hold padded_k(hidden_size) columns, zeros past the hidden state (the GEMM's zero weights there). The hidden state
// predates the previous kernel (the routing, which waited for whatever wrote it before it let this kernel start), so
// its row is read and its amax taken before the wait: at decode only the rows' load and the stores follow the
// routing's end. The routing's outputs (dest_row, topk_weights) are not __restrict__ (common/pdl.cuh). With
// skip_remote_tokens a block first reads the token's rows and leaves a token none of whose experts is local unread: an
// expert-parallel rank at prefill. With routing_end (GEMM1 is the decode kernel) every block lets GEMM1 launch as it
// starts, and block 0 publishes the routing's end there once its wait has returned (common/pdl.cuh's third
// exception).
template <ActivationType kType>
__global__ void __launch_bounds__(kRowBlockThreads)
    permute_quantize_kernel(void const* __restrict__ hidden, int hidden_size, int top_k,
                            int32_t const* dest_row, float const* topk_weights,
                            bool weight_on_input, uint8_t* __restrict__ act, float* __restrict__ act_scales,
                            GroupSumsOut group_sums, int64_t last_wave, bool skip_remote_tokens,
                            uint32_t* routing_end) {
  __shared__ float scratch[32];
  __shared__ int32_t rows[kMaxTopK];
  int64_t const t = blockIdx.x;
  if (routing_end != nullptr) pdl_allow_next_grid();
  // After this block's wait: the routing's end to GEMM1, or the next kernel's launch from this block.
  auto after_wait = [&] {
    if (routing_end == nullptr) {
      allow_next_grid_from(last_wave);
    } else if (t == 0 && threadIdx.x == 0) {
      publish_routing_end(routing_end);
    }
  };
  if (skip_remote_tokens) {
    pdl_wait_for_previous_grid();
    after_wait();
    bool local = false;
    for (int j = 0; j < top_k; ++j) local = local || dest_row[t * top_k + j] >= 0;
    if (!local) return;  // uniform per block: no thread reaches the barriers below
  }
  int const vectors = hidden_size / kVector, padded_vectors = padded_k(hidden_size) / kVector;
  int64_t const first_vector = t * vectors;
  // All loads issued before the first use: at decode this kernel is a chain of load latencies.
  uint4 raw[kHeldRowVectors];
#pragma unroll
  for (int h = 0; h < kHeldRowVectors; ++h) {
    int const v = threadIdx.x + h * blockDim.x;
    // Before the wait: through L2 (common/pdl.cuh).
    raw[h] = v < vectors ? __ldcg(static_cast<uint4 const*>(hidden) + first_vector + v) : make_uint4(0, 0, 0, 0);
  }
  float held[kHeldRowVectors][kVector];
  float local_max = 0.0f;
#pragma unroll
  for (int h = 0; h < kHeldRowVectors; ++h) {
    unpack_vector<kType>(raw[h], held[h]);  // zeros past the row: no effect on the max
#pragma unroll
    for (int i = 0; i < kVector; ++i) local_max = fmaxf(local_max, fabsf(held[h][i]));
  }
  for (int v = threadIdx.x + kHeldRowVectors * blockDim.x; v < vectors; v += blockDim.x) {
    float x[kVector];
    unpack_vector<kType>(__ldcg(static_cast<uint4 const*>(hidden) + first_vector + v), x);
#pragma unroll
    for (int i = 0; i < kVector; ++i) local_max = fmaxf(local_max, fabsf(x[i]));
  }
  float const amax = block_reduce(local_max, MaxOp{}, scratch);
  if (!skip_remote_tokens) {
    pdl_wait_for_previous_grid();  // the routing's rows, weights and the act buffer's last readers
    after_wait();
  }
  if (threadIdx.x < top_k) rows[threadIdx.x] = dest_row[t * top_k + threadIdx.x];
  __syncthreads();  // publishes rows
  E4m3Scale const e4m3 = e4m3_scale(amax);
  auto store = [&](int v, float const (&x)[kVector]) {
    uint2 const q = quantize_vector(x, e4m3.inverse);
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
  };
#pragma unroll
  for (int h = 0; h < kHeldRowVectors; ++h) {
    int const v = threadIdx.x + h * blockDim.x;
    if (v >= padded_vectors) break;
    store(v, held[h]);
  }
  for (int v = threadIdx.x + kHeldRowVectors * blockDim.x; v < padded_vectors; v += blockDim.x) {
    float x[kVector] = {};
    if (v < vectors) load_vector<kType>(hidden, first_vector + v, x);
    store(v, x);
  }
  if (threadIdx.x < top_k && rows[threadIdx.x] >= 0) {
    act_scales[rows[threadIdx.x]] = weight_on_input ? e4m3.scale * topk_weights[t * top_k + threadIdx.x] : e4m3.scale;
  }
}

// One row of the SiLU stage. Each thread keeps the SiLU(gate) * up of its kHeld vectors (at most kHeldRowVectors:
// the whole row, kMaxInter) in registers between the amax and the quantisation, and the loads of those are all
// issued before the first use: with one vector after another, Mixtral's rows (I = 14336, 4 vectors a thread) were a
// chain of four load latencies. The act rows hold padded_k(inter) columns, zeros past I.
template <ActivationType kType, MoeActivation kActivation, int kHeld>
__device__ __forceinline__ void silu_mul_quantize_row(void const* __restrict__ gemm1_out, int inter, float limit,
                                                      int64_t row, uint8_t* __restrict__ act,
                                                      float* __restrict__ act_scales, GroupSumsOut group_sums,
                                                      float* scratch) {
  int const vectors = inter / kVector, padded_vectors = padded_k(inter) / kVector;
  int64_t const gate_first = row * 2 * vectors, up_first = gate_first + vectors;
  uint4 gate_raw[kHeld], up_raw[kHeld];
#pragma unroll
  for (int h = 0; h < kHeld; ++h) {
    int const v = int(threadIdx.x) + h * int(blockDim.x);
    bool const in_row = v < vectors;
    gate_raw[h] = in_row ? static_cast<uint4 const*>(gemm1_out)[gate_first + v] : make_uint4(0, 0, 0, 0);
    up_raw[h] = in_row ? static_cast<uint4 const*>(gemm1_out)[up_first + v] : make_uint4(0, 0, 0, 0);
  }
  float held[kHeld][kVector];
  float local_max = 0.0f;
#pragma unroll
  for (int h = 0; h < kHeld; ++h) {
    if (int(threadIdx.x) + h * int(blockDim.x) >= vectors) break;  // no SiLU of the zeros past the row
    float gate[kVector], up[kVector];
    unpack_vector<kType>(gate_raw[h], gate);
    unpack_vector<kType>(up_raw[h], up);
#pragma unroll
    for (int i = 0; i < kVector; ++i) {
      held[h][i] = gated_activation<kActivation>(gate[i], up[i], limit);
      local_max = fmaxf(local_max, fabsf(held[h][i]));
    }
  }
  float const amax = block_reduce(local_max, MaxOp{}, scratch);
  E4m3Scale const e4m3 = e4m3_scale(amax);
#pragma unroll
  for (int h = 0; h < kHeld; ++h) {
    int const v = int(threadIdx.x) + h * int(blockDim.x);
    if (v >= padded_vectors) break;
    // Past the row, zeros (e4m3 0): no held values there. (Zero-initialising held spilled the 4-vector kernel.)
    uint2 const q = v < vectors ? quantize_vector(held[h], e4m3.inverse) : make_uint2(0u, 0u);
    reinterpret_cast<uint2*>(act + row * padded_vectors * kVector)[v] = q;
    if (group_sums.sums != nullptr) {
      float const sum = group_sum(q);
      if (v % kGroupVectors == 0) group_sums.sums[(v / kGroupVectors) * group_sums.stride + row] = sum;
    }
  }
  if (threadIdx.x == 0) act_scales[row] = e4m3.scale;
}

// Rows of up to 2 * 128 vectors (kHeld < kHeldRowVectors, 128 threads): blocks that stay, block b running rows b,
// b + gridDim.x, ... below offsets[local_experts], at most as many blocks as the SMs hold at once. One block per
// possible row spent most of an expert-parallel rank's stage starting blocks past its rows (bench/NOTES.md §25).
// Longer rows keep a block a row (last_wave as in allow_next_grid_from): at their 1024-thread bound a thread has 64
// registers, and with the row loop ptxas spilled held values.
template <ActivationType kType, MoeActivation kActivation, int kHeld>
__global__ void __launch_bounds__(kRowBlockThreads)
    silu_mul_quantize_kernel(void const* __restrict__ gemm1_out, int inter, float limit,
                             int64_t const* offsets, int local_experts, uint8_t* __restrict__ act,
                             float* __restrict__ act_scales, GroupSumsOut group_sums, int64_t last_wave,
                             bool next_launches_early) {
  __shared__ float scratch[32];  // one per warp
  // The routing's, loaded before the wait (routing_done_before_stage_kernels); below 2^31: moe_forward checks
  // max_tokens * top_k.
  int const rows = int(__ldcg(offsets + local_experts));
  // Where next_launches_early, GEMM2 may launch before this kernel's wait, so that its launch and its blocks' start
  // (the decode kernel's search of the offsets, its first weights) overlap GEMM1's tail: it reads before its own wait
  // nothing GEMM1 writes (common/pdl.cuh, the one exception to its first rule; ~1 us at 1 token, bench/NOTES.md §93).
  // A block whose first row is its last (or past the rows) lets it there; the others on their last row, below.
  bool const lets_next_launch = kHeld == kHeldRowVectors ? in_last_wave(last_wave)
                                                         : int(blockIdx.x) >= rows - int(gridDim.x);
  if (next_launches_early && lets_next_launch) pdl_allow_next_grid();
  pdl_wait_for_previous_grid();
  if (!next_launches_early && lets_next_launch) pdl_allow_next_grid();
  if constexpr (kHeld == kHeldRowVectors) {
    if (int(blockIdx.x) >= rows) return;  // uniform per block: no thread reaches the barriers of the row
    silu_mul_quantize_row<kType, kActivation, kHeld>(gemm1_out, inter, limit, blockIdx.x, act, act_scales,
                                                     group_sums, scratch);
  } else {
    for (int row = int(blockIdx.x);; row += int(gridDim.x)) {
      // The next kernel may launch once every block is on its last row, not while blocks have rows to go (§21, §22).
      if (row > int(blockIdx.x) && row >= rows - int(gridDim.x)) pdl_allow_next_grid();
      if (row >= rows) break;
      silu_mul_quantize_row<kType, kActivation, kHeld>(gemm1_out, inter, limit, row, act, act_scales, group_sums,
                                                       scratch);
    }
  }
}

// One block per token and slice of the row (blockIdx.y of unpermute_slices(): a vector a thread at decode, the whole
// row at prefill). The token's rows and weights (the routing's, loaded before the wait:
// routing_done_before_stage_kernels) go to shared memory first, and each step issues the loads of kRowsInFlight rows
// before summing them (in slot order).
template <ActivationType kType>
__global__ void unpermute_kernel(void const* __restrict__ gemm2_out, int hidden_size, int top_k,
                                 int32_t const* dest_row, float const* topk_weights, bool weight_on_input,
                                 void* __restrict__ out, int64_t last_wave, uint32_t* routing_end) {
  constexpr int kRowsInFlight = 8;
  __shared__ int32_t rows[kMaxTopK];
  __shared__ float weights[kMaxTopK];
  int64_t const t = blockIdx.x;
  int32_t slot_row = -1;
  float slot_weight = 1.0f;
  if (threadIdx.x < top_k) {
    slot_row = __ldcg(dest_row + t * top_k + threadIdx.x);
    if (!weight_on_input) slot_weight = __ldcg(topk_weights + t * top_k + threadIdx.x);
  }
  pdl_wait_for_previous_grid();
  allow_next_grid_from(last_wave);
  // Every kernel that polled the routing's end has ended: the next call's GEMM1 cannot read this call's word.
  if (t == 0 && blockIdx.y == 0 && threadIdx.x == 0) clear_routing_end(routing_end);
  if (threadIdx.x < top_k) {
    rows[threadIdx.x] = slot_row;
    weights[threadIdx.x] = slot_weight;
  }
  __syncthreads();
  int const vectors = hidden_size / kVector;
  for (int v = int(blockIdx.y * blockDim.x + threadIdx.x); v < vectors; v += int(gridDim.y * blockDim.x)) {
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
  return std::clamp((vectors + per_thread * 32 - 1) / (per_thread * 32) * 32, kThreads, kRowBlockThreads);
}

// Blocks of `kernel` the SMs hold at once at `threads` a block; 0 where the occupancy cannot be had.
template <class... Params>
int64_t resident_blocks(void (*kernel)(Params...), int threads) {
  int device = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess) {
    cudaGetLastError();  // not reported: the callers fall back to a block a row, every block letting the next launch
    return 0;
  }
  return int64_t(sms) * per_sm;
}

// The first block of the grid's last wave (allow_next_grid_from): `blocks` less those the SMs hold at once; 0 (every
// block lets the next kernel launch at its start) where the occupancy cannot be had.
int64_t last_wave_start(int64_t blocks, int64_t resident) {
  return resident > 0 ? std::max<int64_t>(0, blocks - resident) : 0;
}

template <template <ActivationType> class Launch, class... Args>
cudaError_t dispatch_type(ActivationType type, Args&&... args) {
  if (type == ActivationType::kBF16) return Launch<ActivationType::kBF16>::run(args...);
  return Launch<ActivationType::kFP16>::run(args...);
}

template <ActivationType kType>
struct PermuteQuantize {
  static cudaError_t run(void const* hidden, int64_t tokens, int hidden_size, int top_k, int32_t const* dest_row,
                         bool some_slots_remote, float const* topk_weights, bool weight_on_input, uint8_t* act,
                         float* act_scales, GroupSumsOut group_sums, uint32_t* routing_end, cudaStream_t stream) {
    int const threads = threads_for_row(padded_k(hidden_size) / kVector, kHeldRowVectors);
    auto const kernel = permute_quantize_kernel<kType>;
    int64_t const last_wave = last_wave_start(tokens, resident_blocks(kernel, threads));
    return launch_with_pdl(kernel, unsigned(tokens), threads, 0, stream, hidden, hidden_size, top_k, dest_row,
                           topk_weights, weight_on_input, act, act_scales, group_sums, last_wave,
                           some_slots_remote && last_wave > 0, routing_end);
  }
};

template <ActivationType kType>
struct SiluMulQuantize {
  template <MoeActivation kActivation>
  static cudaError_t run_activation(void const* gemm1_out, float limit, int64_t max_rows, int inter,
                                    int64_t const* offsets, int local_experts, uint8_t* act, float* act_scales,
                                    GroupSumsOut group_sums, bool next_launches_early, cudaStream_t stream) {
    int const vectors = padded_k(inter) / kVector, threads = threads_for_row(vectors, kHeldRowVectors);
    auto launch = [&](auto kernel, bool blocks_stay) {
      int64_t const resident = resident_blocks(kernel, threads);
      int64_t const blocks = blocks_stay && resident > 0 ? std::min(max_rows, resident) : max_rows;
      return launch_with_pdl(kernel, unsigned(blocks), threads, 0, stream, gemm1_out, inter, limit, offsets,
                             local_experts, act, act_scales, group_sums,
                             blocks_stay ? 0 : last_wave_start(blocks, resident), next_launches_early);
    };
    // As few held vectors as the row needs: fewer registers, more blocks an SM at prefill.
    if (vectors <= threads) return launch(silu_mul_quantize_kernel<kType, kActivation, 1>, true);
    if (vectors <= 2 * threads) return launch(silu_mul_quantize_kernel<kType, kActivation, 2>, true);
    return launch(silu_mul_quantize_kernel<kType, kActivation, kHeldRowVectors>, false);
  }

  static cudaError_t run(void const* gemm1_out, GatedActivation activation, int64_t max_rows, int inter,
                         int64_t const* offsets, int local_experts, uint8_t* act, float* act_scales,
                         GroupSumsOut group_sums, bool next_launches_early, cudaStream_t stream) {
    if (activation.kind == MoeActivation::kGptOssSwiglu) {
      return run_activation<MoeActivation::kGptOssSwiglu>(gemm1_out, activation.swiglu_limit, max_rows, inter,
                                                          offsets, local_experts, act, act_scales, group_sums,
                                                          next_launches_early, stream);
    }
    return run_activation<MoeActivation::kSiluMul>(gemm1_out, 0.0f, max_rows, inter, offsets, local_experts, act,
                                                   act_scales, group_sums, next_launches_early, stream);
  }
};

template <ActivationType kType>
struct Unpermute {
  static cudaError_t run(void const* gemm2_out, int64_t tokens, int hidden_size, int top_k, int32_t const* dest_row,
                         float const* topk_weights, bool weight_on_input, void* out, uint32_t* routing_end,
                         cudaStream_t stream) {
    static_assert(kThreads == 128 && kVector == 8, "unpermute_slices() counts 128 threads of 8-value vectors");
    dim3 const grid(unsigned(tokens), unsigned(unpermute_slices(tokens, hidden_size)));
    auto const kernel = unpermute_kernel<kType>;
    return launch_with_pdl(kernel, grid, kThreads, 0, stream, gemm2_out, hidden_size, top_k, dest_row, topk_weights,
                           weight_on_input, out,
                           last_wave_start(int64_t(grid.x) * grid.y, resident_blocks(kernel, kThreads)), routing_end);
  }
};


}  // namespace

cudaError_t launch_permute_quantize(void const* hidden, ActivationType type, int64_t tokens, int hidden_size,
                                    int top_k, int32_t const* dest_row, bool some_slots_remote,
                                    float const* topk_weights, bool weight_on_input, uint8_t* act, float* act_scales,
                                    GroupSumsOut group_sums, uint32_t* routing_end, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_type<PermuteQuantize>(type, hidden, tokens, hidden_size, top_k, dest_row, some_slots_remote,
                                        topk_weights, weight_on_input, act, act_scales, group_sums, routing_end,
                                        stream);
}

cudaError_t launch_silu_mul_quantize(void const* gemm1_out, ActivationType type, GatedActivation activation,
                                     int64_t max_rows, int inter, int64_t const* offsets, int local_experts,
                                     uint8_t* act, float* act_scales, GroupSumsOut group_sums, bool next_launches_early,
                                     cudaStream_t stream) {
  if (max_rows == 0) return cudaSuccess;
  return dispatch_type<SiluMulQuantize>(type, gemm1_out, activation, max_rows, inter, offsets, local_experts, act,
                                        act_scales, group_sums, next_launches_early, stream);
}

cudaError_t launch_unpermute(void const* gemm2_out, ActivationType type, int64_t tokens, int hidden_size, int top_k,
                             int32_t const* dest_row, float const* topk_weights, bool weight_on_input, void* out,
                             uint32_t* routing_end, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  return dispatch_type<Unpermute>(type, gemm2_out, tokens, hidden_size, top_k, dest_row, topk_weights,
                                  weight_on_input, out, routing_end, stream);
}

}  // namespace w4a8moe::moe
