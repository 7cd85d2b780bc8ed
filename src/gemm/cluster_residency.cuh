// How many blocks of a kernel its thread-block clusters leave resident at once (stream_plan.h's ClusterResidency),
// asked of the runtime once per kernel, shared memory size and device. Included where the streaming kernels are
// launched in clusters (stream_gemm.cu, block_stream_kernel.cuh).
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <tuple>

#include "common/pdl.cuh"  // allow_dynamic_shared_memory
#include "gemm/stream_plan.h"

namespace w4a8moe::gemm {

// Clusters of 2, 4 and 8 blocks of `threads` threads and `shared_bytes` of dynamic shared memory. Where the runtime
// cannot say (an error, cleared here), the entry stays 0 and the plan counts every slot.
template <class... Params>
ClusterResidency query_cluster_residency(void (*kernel)(Params...), int threads, size_t shared_bytes) {
  ClusterResidency residency;
  if (allow_dynamic_shared_memory(kernel, shared_bytes) != cudaSuccess) return residency;
  for (int size = 2; size <= 8; size *= 2) {
    cudaLaunchAttribute cluster{};
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = unsigned(size);
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(unsigned(size));
    config.blockDim = dim3(unsigned(threads));
    config.dynamicSmemBytes = shared_bytes;
    config.attrs = &cluster;
    config.numAttrs = 1;
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) == cudaSuccess) {
      residency.blocks_in_clusters_of[size] = int64_t(clusters) * size;
    } else {
      cudaGetLastError();
    }
  }
  return residency;
}

// The same, remembered per kernel, shared memory and device (a process may drive cards of different GPC layouts).
// Not asked while `stream` is being captured into a graph: the plan then counts every slot, as it did before this
// was known (servers warm their kernels up before they capture).
template <class... Params>
ClusterResidency cluster_residency(void (*kernel)(Params...), int threads, size_t shared_bytes, cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<std::tuple<void const*, int, size_t>, ClusterResidency> known;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  std::lock_guard<std::mutex> lock(mutex);
  auto const key = std::make_tuple(reinterpret_cast<void const*>(kernel), device, shared_bytes);
  auto found = known.find(key);
  if (found != known.end()) return found->second;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  if (capture != cudaStreamCaptureStatusNone) return {};
  return known.emplace(key, query_cluster_residency(kernel, threads, shared_bytes)).first->second;
}

}  // namespace w4a8moe::gemm
