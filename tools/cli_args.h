// What the command-line program's commands share: fatal errors, status checks, and its arguments.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

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
  static bool is_flag(std::string const& name) { return name == "help" || name == "no-renormalize" || name == "no-check"; }
  bool has(std::string const& name) const { return values_.count(name) > 0; }
  std::string get(std::string const& name, std::string const& fallback = "") const {
    auto const it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  int64_t integer(std::string const& name, int64_t fallback) const {
    if (!has(name)) return fallback;
    try {
      size_t used = 0;
      int64_t const value = std::stoll(get(name), &used);
      if (used == get(name).size()) return value;
    } catch (...) {
    }
    die("--" + name + "=" + get(name) + ": expected an integer");
  }
  std::vector<std::string> const& positional() const { return positional_; }
  void reject_unknown(std::vector<std::string> const& known) const {
    for (auto const& [name, value] : values_) {
      if (std::find(known.begin(), known.end(), name) == known.end()) die("unknown option --" + name + " (see --help)");
    }
  }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace w4a8moe::tools
