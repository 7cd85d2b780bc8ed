#include "w4a8moe/status.h"

#include "w4a8moe/types.h"

namespace w4a8moe {

char const* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotSupported: return "not supported";
    case StatusCode::kCudaError: return "CUDA error";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown status";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

char const* output_type_name(OutputType type) {
  switch (type) {
    case OutputType::kBF16: return "bf16";
    case OutputType::kFP16: return "fp16";
  }
  return "unknown";
}

}  // namespace w4a8moe
