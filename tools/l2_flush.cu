#include "l2_flush.h"

#include <algorithm>
#include <cstdint>

#include "common/device_info.h"
#include "common/named_choice.h"

namespace w4a8moe::tools {
namespace {

constexpr L2Flush kFlushes[] = {L2Flush::kWrite, L2Flush::kRead, L2Flush::kNone};

// Reads every 16 bytes once. The store, taken only by a thread whose XOR of its loads is all ones, keeps the loads
// live; it dirties at most the sink's line.
__global__ void read_buffer(uint4 const* __restrict__ data, size_t vectors, uint32_t* __restrict__ sink) {
  uint32_t acc = 0;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors; i += size_t(gridDim.x) * blockDim.x) {
    uint4 const v = __ldcg(data + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0xFFFFFFFFu) *sink = acc;
}

// Straight-line code, ~260 KB of SASS, more than an SM's instruction caches hold: an SM that runs it keeps none of
// the code it ran before, as a model's other kernels (attention, its GEMMs) leave the SMs before a MoE layer. Without
// it the layer's own code stays cached from the previous replay, and a kernel of much code runs as if it were warm
// (bench/NOTES.md §69: the one-launch layer, ~55 KB executed, 7-9 us faster than in a model).
constexpr uint32_t kCodeSweepSteps = 12288;

__global__ void sweep_code(uint32_t* __restrict__ sink, uint32_t seed) {
  uint32_t x = seed + threadIdx.x;
#pragma unroll
  for (uint32_t i = 0; i < kCodeSweepSteps; ++i) x = x * (2u * i + 1u) + (i ^ 0x9E3779B9u);
  if (x == 0x12345678u) *sink = x;
}

// A few blocks per SM, so that every SM runs the sweep.
cudaError_t sweep_instruction_caches(uint32_t* sink, int round, cudaStream_t stream) {
  int const sm_count = current_device_sm_count();
  if (sm_count < 1) return cudaErrorNoDevice;
  sweep_code<<<4 * sm_count, 128, 0, stream>>>(sink, uint32_t(round));
  return cudaGetLastError();
}

}  // namespace

char const* l2_flush_name(L2Flush flush) {
  switch (flush) {
    case L2Flush::kWrite: return "write";
    case L2Flush::kRead: return "read";
    case L2Flush::kNone: return "none";
  }
  return "?";
}

Status parse_l2_flush(char const* name, L2Flush* flush, char const* arg_name) {
  return parse_named_choice(name, kFlushes, l2_flush_name, flush, arg_name);
}

size_t l2_flush_buffer_bytes(size_t requested) {
  int device = 0, l2_bytes = 0;  // the current device's L2, the one the timed layer runs on; 1 MiB where unknown
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device) != cudaSuccess) {
    l2_bytes = 0;
  }
  return std::max(requested, 2 * size_t(std::max(l2_bytes, 1 << 20)));
}

cudaError_t flush_l2(L2Flush flush, void* buffer, size_t bytes, int round, cudaStream_t stream) {
  if (flush == L2Flush::kNone) return cudaSuccess;
  auto* const sink = static_cast<uint32_t*>(buffer);
  if (flush == L2Flush::kWrite) {
    if (cudaError_t const e = cudaMemsetAsync(buffer, round & 0xFF, bytes, stream); e != cudaSuccess) return e;
  } else {
    // The buffer's first 16 bytes hold the sink and are not read.
    read_buffer<<<1024, 256, 0, stream>>>(static_cast<uint4 const*>(buffer) + 1, bytes / sizeof(uint4) - 1, sink);
    if (cudaError_t const e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return sweep_instruction_caches(sink, round, stream);
}

}  // namespace w4a8moe::tools
