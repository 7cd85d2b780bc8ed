#include "common/device_info.h"

#include <cuda_runtime.h>

#include <array>
#include <cstdio>
#include <mutex>

#include "common/status_util.h"

namespace w4a8moe {
namespace {

struct DeviceFacts {
  cudaError_t error = cudaSuccess;
  int major = 0;
  int minor = 0;
  int sm_count = 0;
  char name[256] = {};
};

constexpr int kMaxDevices = 64;

DeviceFacts const* current_device_facts(cudaError_t* error) {
  static std::array<DeviceFacts, kMaxDevices> facts;
  static std::array<std::once_flag, kMaxDevices> once;
  int device = 0;
  *error = cudaGetDevice(&device);
  if (*error != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls see a clean state
    return nullptr;
  }
  if (device < 0 || device >= kMaxDevices) return nullptr;
  std::call_once(once[device], [device] {
    cudaDeviceProp prop{};
    facts[device].error = cudaGetDeviceProperties(&prop, device);
    if (facts[device].error == cudaSuccess) {
      facts[device].major = prop.major;
      facts[device].minor = prop.minor;
      facts[device].sm_count = prop.multiProcessorCount;
      std::snprintf(facts[device].name, sizeof facts[device].name, "%s", prop.name);
    }
  });
  *error = facts[device].error;
  return &facts[device];
}

}  // namespace

Status require_hopper_device() {
  cudaError_t error;
  DeviceFacts const* facts = current_device_facts(&error);
  if (error != cudaSuccess) {
    return not_supported("no usable CUDA device (", cudaGetErrorName(error), ": ", cudaGetErrorString(error),
                         "); the W4A8 kernels need a Hopper GPU (sm_90)");
  }
  if (facts == nullptr) return not_supported("CUDA device index out of the supported range");
  if (facts->major != 9 || facts->minor != 0) {
    return not_supported("device '", facts->name, "' has compute capability ", facts->major, ".", facts->minor,
                         "; the W4A8 kernels are built for Hopper (sm_90a) only");
  }
  return Status::Ok();
}

int current_device_sm_count() {
  cudaError_t error;
  DeviceFacts const* facts = current_device_facts(&error);
  return (error == cudaSuccess && facts != nullptr) ? facts->sm_count : 0;
}

}  // namespace w4a8moe
