// Helpers to build Status values with context and check arguments, without CUDA: host-only code (checkpoints,
// tools) includes this; code that also checks CUDA calls includes status_util.h, which adds the CUDA helpers on top.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "w4a8moe/status.h"

namespace w4a8moe {

template <class... Parts>
std::string concat(Parts const&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <class... Parts>
Status invalid_argument(Parts const&... parts) {
  return Status(StatusCode::kInvalidArgument, concat(parts...));
}

template <class... Parts>
Status not_supported(Parts const&... parts) {
  return Status(StatusCode::kNotSupported, concat(parts...));
}

// For the argument checks of the public entry points.
inline bool is_aligned(void const* pointer, size_t alignment) {
  return reinterpret_cast<uintptr_t>(pointer) % alignment == 0;
}

}  // namespace w4a8moe

// Returns the Status from the enclosing function unless it is ok.
#define W4A8_RETURN_IF_ERROR(expr)           \
  do {                                       \
    ::w4a8moe::Status w4a8_st_ = (expr);     \
    if (!w4a8_st_.ok()) return w4a8_st_;     \
  } while (0)
