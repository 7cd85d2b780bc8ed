// Helpers to build Status values with context, without CUDA: host-only code (checkpoints, tools) includes this;
// code that also checks CUDA calls includes status_util.h, which adds the CUDA helpers on top.
#pragma once

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

}  // namespace w4a8moe

// Returns the Status from the enclosing function unless it is ok.
#define W4A8_RETURN_IF_ERROR(expr)           \
  do {                                       \
    ::w4a8moe::Status w4a8_st_ = (expr);     \
    if (!w4a8_st_.ok()) return w4a8_st_;     \
  } while (0)
