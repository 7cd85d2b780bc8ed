// Helpers to build Status values with context (status_message.h), and to check CUDA calls and kernel launches.
#pragma once

#include <cuda_runtime.h>

#include "common/status_message.h"

namespace w4a8moe {

inline Status cuda_status(cudaError_t error, char const* what, char const* file, int line) {
  return Status(StatusCode::kCudaError,
                concat(what, " failed: ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ") at ", file, ":",
                       line));
}

}  // namespace w4a8moe

// Returns a kCudaError Status from the enclosing function if the CUDA call fails.
#define W4A8_CUDA_RETURN(expr)                                             \
  do {                                                                     \
    cudaError_t w4a8_err_ = (expr);                                        \
    if (w4a8_err_ != cudaSuccess)                                          \
      return ::w4a8moe::cuda_status(w4a8_err_, #expr, __FILE__, __LINE__); \
  } while (0)
