// Helpers for the GPU tests: device buffers, CUDA checks, and the skip where no Hopper GPU is present.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/device_buffer.h"
#include "w4a8moe/status.h"

#define ASSERT_CUDA(expr)                                                                 \
  do {                                                                                    \
    cudaError_t const assert_cuda_err_ = (expr);                                          \
    ASSERT_EQ(assert_cuda_err_, cudaSuccess) << #expr << ": " << cudaGetErrorName(assert_cuda_err_) << " " \
                                             << cudaGetErrorString(assert_cuda_err_);     \
  } while (0)

#define ASSERT_OK(expr)                                   \
  do {                                                    \
    ::w4a8moe::Status const assert_ok_status_ = (expr);   \
    ASSERT_TRUE(assert_ok_status_.ok()) << #expr << ": " << assert_ok_status_.to_string(); \
  } while (0)

namespace w4a8moe::testing {

// Skips the calling test, saying why, unless a Hopper (sm_90) GPU is present.
inline bool hopper_available(std::string* why) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    *why = "no CUDA device: GPU tests need a Hopper GPU (sm_90)";
    return false;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9 || prop.minor != 0) {
    *why = std::string("device 0 is ") + prop.name + ", not Hopper (sm_90): GPU tests skipped";
    return false;
  }
  return true;
}

#define SKIP_WITHOUT_HOPPER()                                          \
  do {                                                                 \
    std::string skip_reason_;                                          \
    if (!::w4a8moe::testing::hopper_available(&skip_reason_)) GTEST_SKIP() << skip_reason_; \
  } while (0)

using ::w4a8moe::DeviceBuffer;

// One library call captured into a CUDA graph on its own stream, for tests that replay it with new inputs written
// into the captured buffers. Frees the graph and the stream on every exit, failed assertions included.
class CapturedGraph {
 public:
  CapturedGraph() = default;
  CapturedGraph(CapturedGraph const&) = delete;
  CapturedGraph& operator=(CapturedGraph const&) = delete;
  ~CapturedGraph() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
    if (graph_ != nullptr) cudaGraphDestroy(graph_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  // Captures call(stream), a Status-returning library call; wrap in ASSERT_NO_FATAL_FAILURE.
  template <class Call>
  void capture(Call call) {
    ASSERT_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ASSERT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    Status const captured = call(stream_);
    ASSERT_CUDA(cudaStreamEndCapture(stream_, &graph_));
    ASSERT_OK(captured);
    ASSERT_CUDA(cudaGraphInstantiate(&exec_, graph_, 0));
  }

  // Launches the graph and waits for it. The graph's stream does not wait for work the test queued on the legacy
  // stream (a pageable cudaMemcpy may return before its copy lands, a cudaMemset does), so the device is drained first.
  cudaError_t replay() {
    if (cudaError_t const drained = cudaDeviceSynchronize(); drained != cudaSuccess) return drained;
    cudaError_t const launched = cudaGraphLaunch(exec_, stream_);
    return launched != cudaSuccess ? launched : cudaStreamSynchronize(stream_);
  }

 private:
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace w4a8moe::testing
