// Streaming read bandwidth: every thread reads 16-byte vectors with several loads in flight.
#include <algorithm>
#include <vector>

#include "common/device_buffer.h"
#include "method.h"

namespace w4a8moe::bench {
namespace {

__global__ void stream_read(uint4 const* __restrict__ data, size_t count, uint32_t* sink) {
  uint32_t acc = 0;
  size_t const stride = size_t(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < count; i += 4 * stride) {
    uint4 const a = data[i], b = data[i + stride], c = data[i + 2 * stride], d = data[i + 3 * stride];
    acc ^= a.x ^ a.w ^ b.y ^ b.z ^ c.x ^ c.w ^ d.y ^ d.z;
  }
  for (; i < count; i += stride) acc ^= data[i].x;
  if (acc == 0x12345678u) *sink = acc;  // keeps the loads alive; practically never taken
}

}  // namespace

double measure_hbm_read_bandwidth(size_t bytes) {
  DeviceBuffer data(bytes), sink(4);
  if (!data.ok()) return 0.0;
  cudaMemset(data.get(), 1, bytes);
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> ms;
  for (int rep = 0; rep < 120; ++rep) {
    cudaEventRecord(start);
    stream_read<<<sms * 4, 512>>>(data.as<uint4>(), bytes / 16, sink.as<uint32_t>());
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    if (rep >= 20) ms.push_back(t);  // the first runs warm the clocks up
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms.empty() || ms[ms.size() / 2] <= 0 ? 0.0 : double(bytes) / (ms[ms.size() / 2] * 1e-3);
}

}  // namespace w4a8moe::bench
