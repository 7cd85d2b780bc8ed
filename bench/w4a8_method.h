// The W4A8 grouped GEMM as a benchmark Method, through the public API (prepack + grouped_gemm), exactly as an engine
// calls it: the heuristic sees only the row count.
#pragma once

#include <memory>
#include <string>

#include "gemm/exact_stream_gemm.h"
#include "method.h"

namespace w4a8moe::bench {

// config: a name from gemm_config_names(), or "" for the heuristic's choice.
std::unique_ptr<Method> make_w4a8_method(std::string const& config);

// The streaming kernel on the exact-scale layout (bench/exact_method.cpp) in one of gemm::kExactKernelShapes.
std::unique_ptr<Method> make_exact_method(gemm::ExactKernelShape shape);

// The config the method chose in its last prepare() (its own config when forced).
std::string w4a8_chosen_config(Method const& method);

}  // namespace w4a8moe::bench
