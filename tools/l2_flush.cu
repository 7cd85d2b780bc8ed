#include "l2_flush.h"

#include <algorithm>
#include <cstdint>

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
  int l2_bytes = 0;
  cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, 0);
  return std::max(requested, 2 * size_t(std::max(l2_bytes, 1 << 20)));
}

cudaError_t flush_l2(L2Flush flush, void* buffer, size_t bytes, int round, cudaStream_t stream) {
  if (flush == L2Flush::kNone) return cudaSuccess;
  if (flush == L2Flush::kWrite) return cudaMemsetAsync(buffer, round & 0xFF, bytes, stream);
  // The buffer's first 16 bytes hold the sink and are not read.
  read_buffer<<<1024, 256, 0, stream>>>(static_cast<uint4 const*>(buffer) + 1, bytes / sizeof(uint4) - 1,
                                        static_cast<uint32_t*>(buffer));
  return cudaGetLastError();
}

}  // namespace w4a8moe::tools
