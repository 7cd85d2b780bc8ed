// The validation tests' helpers (validation_test.cpp, moe_validation_test.cpp).
#pragma once

#include <gtest/gtest.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "w4a8moe/status.h"

namespace w4a8moe::testing {

// An aligned address the entry point under test must reject before dereferencing it.
inline void* fake(uintptr_t address) { return reinterpret_cast<void*>(address); }

inline bool has_gpu() {
  int count = 0;
  bool const ok = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  cudaGetLastError();
  return ok;
}

// The status has this code and its message names `needle` (the argument and the rule).
inline void expect_error(Status const& status, StatusCode code, std::string const& needle) {
  EXPECT_EQ(status.code(), code) << status.to_string();
  EXPECT_NE(status.message().find(needle), std::string::npos) << "message '" << status.message()
                                                              << "' does not mention '" << needle << "'";
}

}  // namespace w4a8moe::testing
