// An owning device allocation and a prepack into one, for tests, benchmarks and tools (the library itself never
// allocates).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "w4a8moe/prepack.h"

namespace w4a8moe {

// An owning device allocation (cudaMalloc alignment: 256 bytes).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0 && cudaMalloc(&data_, bytes_) != cudaSuccess) {
      cudaGetLastError();  // an out-of-memory error is not sticky; leave a clean error state
      data_ = nullptr;
      failed_ = true;
    }
  }
  template <class T>
  explicit DeviceBuffer(std::vector<T> const& host) : DeviceBuffer(host.size() * sizeof(T)) {
    if (data_) cudaMemcpy(data_, host.data(), bytes_, cudaMemcpyHostToDevice);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    std::swap(failed_, other.failed_);
    return *this;
  }
  DeviceBuffer(DeviceBuffer const&) = delete;
  DeviceBuffer& operator=(DeviceBuffer const&) = delete;
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }

  void* get() const { return data_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }
  bool ok() const { return !failed_; }

  template <class T>
  std::vector<T> to_host() const {
    std::vector<T> host(data_ ? bytes_ / sizeof(T) : 0);
    cudaMemcpy(host.data(), data_, host.size() * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool failed_ = false;
};

// Prepacks checkpoint-layout weights already on the device (offset-binary int32 [E, N, K/8] and bf16 scales
// [E, N, padded_k(K)/128]; for PackedLayout::kMxfp4 gpt-oss's MXFP4 blocks and e8m0 scales) into a new buffer of
// packed_weights_bytes(shape, layout); an error if memory or the prepack fails.
inline Status prepack_to_new_buffer(void const* weights, void const* scales, ExpertWeightShape const& shape,
                                    DeviceBuffer* packed, PackedLayout layout = PackedLayout::kLookupTable) {
  *packed = DeviceBuffer(packed_weights_bytes(shape, layout));
  if (!packed->ok()) return Status(StatusCode::kCudaError, "out of device memory for the packed weights");
  PrepackArgs args;
  args.shape = shape;
  args.weights = weights;
  args.group_scales = scales;
  if (layout == PackedLayout::kMxfp4) {
    args.weight_format = WeightFormat::kMxfp4;
    args.scale_format = ScaleFormat::kE8m0;
  }
  args.packed = packed->get();
  args.packed_bytes = packed->bytes();
  args.layout = layout;
  return prepack_weights(args);
}

}  // namespace w4a8moe
