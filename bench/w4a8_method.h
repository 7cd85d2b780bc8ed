// The W4A8 grouped GEMM as a benchmark Method, through the public API (prepack + grouped_gemm), exactly as an engine
// calls it: the heuristic sees only the row count.
#pragma once

#include <memory>
#include <string>

#include "method.h"

namespace w4a8moe::bench {

// config: a name from gemm_config_names(), or "" for the heuristic's choice.
std::unique_ptr<Method> make_w4a8_method(std::string const& config);

// The streaming kernel on the exact-scale layout (bench/exact_method.cpp) in one of its configs
// (gemm_config_names(PackedLayout::kExactScales)); nullptr for another name.
std::unique_ptr<Method> make_exact_method(std::string const& config);

// The config the method chose in its last prepare() (its own config when forced).
std::string w4a8_chosen_config(Method const& method);

}  // namespace w4a8moe::bench
