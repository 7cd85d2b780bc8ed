// Device pieces the MoE layer's kernels share (router.cu, routing.cu, token_kernels.cu): block reductions and rows
// of 16-bit activations as vectors of 8 values (16-byte accesses: H and I are multiples of 16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "w4a8moe/moe.h"

namespace w4a8moe::moe {

inline constexpr int kThreads = 128;
inline constexpr int kVector = 8;  // 16-bit values per 16-byte access
inline constexpr float kE4M3Max = 448.0f;

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

// --- e4m3 quantisation ----------------------------------------------------------------------------------------

// The per-row (per-token) e4m3 scale of a row whose largest magnitude is amax: the scale stored beside the row and
// the inverse its values are multiplied by before rounding (0 for an all-zero row). Both layer paths use it, so they
// quantise bit for bit alike.
struct E4m3Scale {
  float scale, inverse;
};
__device__ __forceinline__ E4m3Scale e4m3_scale(float amax) {
  return {amax / kE4M3Max, amax > 0.0f ? kE4M3Max / amax : 0.0f};
}

// SiLU(gate) * up, in fp32, as both layer paths compute it: gate * rcp(1 + 2^(-gate log2 e)) * up with the
// flush-to-zero approximations of the special function unit, one MUFU each. expf and IEEE division added range
// reductions, subnormal fix-ups and a refinement per value, and the stage was issue-bound on them (bench/NOTES.md §25,
// §28). Relative error: ex2.approx 2 ulp, rcp.approx 1 ulp, and the rounding of gate * log2 e, |gate| * 2^-24 in the
// exponent; the flushes are the right limits (gate > 87: e^-gate flushes to 0 and SiLU = gate; gate < -87: 1 + e^-gate
// passes 2^126, its reciprocal flushes to 0 and SiLU = -0 where it is below 2^-119).
__device__ __forceinline__ float silu_mul(float gate, float up) {
  float power, reciprocal;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(power) : "f"(gate * -1.4426950408889634f));
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(reciprocal) : "f"(1.0f + power));
  return gate * reciprocal * up;
}

// gpt-oss's clamped SwiGLU (moe.h, MoeActivation::kGptOssSwiglu) with silu_mul's approximations:
// g' * rcp(1 + 2^(-1.702 g' log2 e)) * (u' + 1), g' = min(g, limit), u' = clamp(u, -limit, limit).
__device__ __forceinline__ float gpt_oss_swiglu(float gate, float up, float limit) {
  gate = fminf(gate, limit);
  up = fminf(fmaxf(up, -limit), limit);
  float power, reciprocal;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(power) : "f"(gate * (-kGptOssSwigluAlpha * 1.4426950408889634f)));
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(reciprocal) : "f"(1.0f + power));
  return gate * reciprocal * (up + 1.0f);
}

template <MoeActivation kActivation>
__device__ __forceinline__ float gated_activation(float gate, float up, float swiglu_limit) {
  if constexpr (kActivation == MoeActivation::kGptOssSwiglu) return gpt_oss_swiglu(gate, up, swiglu_limit);
  return silu_mul(gate, up);
}

// Four values times `inverse`, to e4m3 (round to nearest even, saturating), as the four bytes of a word.
__device__ __forceinline__ uint32_t quantize4(float a, float b, float c, float d, float inverse) {
  uint32_t const low = __nv_cvt_float2_to_fp8x2(make_float2(a * inverse, b * inverse), __NV_SATFINITE, __NV_E4M3);
  uint32_t const high = __nv_cvt_float2_to_fp8x2(make_float2(c * inverse, d * inverse), __NV_SATFINITE, __NV_E4M3);
  return low | high << 16;
}

// 8 values times `inverse`, to e4m3, as 8 bytes.
__device__ __forceinline__ uint2 quantize_vector(float const (&v)[kVector], float inverse) {
  return make_uint2(quantize4(v[0], v[1], v[2], v[3], inverse), quantize4(v[4], v[5], v[6], v[7], inverse));
}

}  // namespace w4a8moe::moe
