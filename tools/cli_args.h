// What the command-line program's commands share: fatal errors, status checks, and its arguments.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "common/status_message.h"
#include "w4a8moe/status.h"

namespace w4a8moe::tools {

[[noreturn]] inline void die(std::string const& message, int code = 1) {
  std::fprintf(stderr, "w4a8moe: %s\n", message.c_str());
  std::exit(code);
}

inline void check(Status const& status, char const* what) {
  if (!status.ok()) die(std::string(what) + ": " + status.to_string());
}

inline void check_cuda(cudaError_t error, char const* what) {
  if (error != cudaSuccess) die(std::string(what) + ": " + cudaGetErrorName(error) + " " + cudaGetErrorString(error));
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// --- Arguments -------------------------------------------------------------------------------------------------------

class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0) {
        positional_.push_back(arg);
        continue;
      }
      auto const eq = arg.find('=');
      if (eq != std::string::npos) {
        values_[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0 && !is_flag(arg.substr(2))) {
        values_[arg.substr(2)] = argv[++i];
      } else {
        values_[arg.substr(2)] = "1";
      }
    }
  }
  static bool is_flag(std::string const& name) {
    return name == "help" || name == "no-renormalize" || name == "no-check";
  }
  bool has(std::string const& name) const { return values_.count(name) > 0; }
  std::string get(std::string const& name, std::string const& fallback = "") const {
    auto const it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  int64_t integer(std::string const& name, int64_t fallback) const {
    int64_t value = 0;
    Status const status = integer_in(name, fallback, INT64_MIN, INT64_MAX, &value);
    if (!status.ok()) die(status.message());
    return value;
  }
  // The integer option `name` (`fallback` when absent, unchecked) into *value; an error naming the option unless
  // it is an integer in [min, max]. The programs narrow options to int after this, never before.
  Status integer_in(std::string const& name, int64_t fallback, int64_t min, int64_t max, int64_t* value) const {
    *value = fallback;
    if (!has(name)) return Status::Ok();
    std::string const text = get(name);
    try {
      size_t used = 0;
      *value = std::stoll(text, &used);
      if (used != text.size()) return invalid_argument("--", name, "=", text, ": expected an integer");
    } catch (...) {  // std::invalid_argument or std::out_of_range (past int64)
      return invalid_argument("--", name, "=", text, ": expected an integer in [", min, ", ", max, "]");
    }
    if (*value < min || *value > max) {
      if (max == INT64_MAX) return invalid_argument("--", name, "=", text, ": must be at least ", min);
      return invalid_argument("--", name, "=", text, ": must be in [", min, ", ", max, "]");
    }
    return Status::Ok();
  }
  std::vector<std::string> const& positional() const { return positional_; }
  void reject_unknown(std::vector<std::string> const& known) const {
    Status const status = check_known(known);
    if (!status.ok()) die(status.message());
  }
  Status check_known(std::vector<std::string> const& known) const {
    for (auto const& [name, value] : values_) {
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        return invalid_argument("unknown option --", name, " (see --help)");
      }
    }
    return Status::Ok();
  }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace w4a8moe::tools
