#include <cuda_bf16.h>

#include "baselines/bench_fill.h"

namespace w4a8moe::bench {
namespace {

__device__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ float unit_float(uint64_t bits) { return float(bits >> 40) * (1.0f / 16777216.0f); }

template <class Op>
__global__ void fill_kernel(size_t count, Op op) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) op(i);
}

template <class Op>
void launch(size_t count, Op op) {
  if (count > 0) fill_kernel<<<2048, 256>>>(count, op);
}

}  // namespace

void fill_random_bytes(void* data, size_t bytes, uint64_t seed) {
  auto* words = static_cast<uint32_t*>(data);
  launch(bytes / 4, [=] __device__(size_t i) { words[i] = uint32_t(splitmix64(seed * 0x100000001ull + i)); });
}

void fill_random_bytes_no_fp8_nan(void* data, size_t bytes) {
  auto* words = static_cast<uint32_t*>(data);
  // Clearing each byte's top exponent bit keeps |x| < 2 and rules out the NaN code S.1111.111.
  launch(bytes / 4, [=] __device__(size_t i) { words[i] &= 0xBFBFBFBFu; });
}

void fill_uniform_floats(float* data, size_t count, float low, float high, uint64_t seed) {
  launch(count, [=] __device__(size_t i) { data[i] = low + (high - low) * unit_float(splitmix64(seed ^ (i * 31))); });
}

void fill_uniform_bf16(void* data, size_t count, float low, float high, uint64_t seed) {
  auto* values = static_cast<__nv_bfloat16*>(data);
  launch(count, [=] __device__(size_t i) {
    values[i] = __float2bfloat16(low + (high - low) * unit_float(splitmix64(seed ^ (i * 31))));
  });
}

}  // namespace w4a8moe::bench
