// An owning device allocation, for tests, benchmarks and tools (the library itself never allocates).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

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

}  // namespace w4a8moe
