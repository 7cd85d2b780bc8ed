// Errors returned by every public entry point. Library code never exits, throws across the API or prints.
#pragma once

#include <string>
#include <utility>

namespace w4a8moe {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,  // an argument breaks a documented rule; the message names the argument and the rule
  kNotSupported,     // valid request this build or device cannot serve (no Hopper GPU, unknown config name)
  kCudaError,        // a CUDA call or kernel launch failed; the message carries the CUDA error name
  kInternal,         // a bug in this library
};

char const* status_code_name(StatusCode code);

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  std::string const& message() const { return message_; }
  // "invalid argument: shape.k=200: K must be a positive multiple of 16 (packed padded to whole 128-groups)"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace w4a8moe
