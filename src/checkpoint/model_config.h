// Internal side of config.json handling: the quantization_config block the quantizer writes. Parsing is public
// (parse_model_config in checkpoint.h).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace w4a8moe::checkpoint {

// The compressed-tensors W4A8 block (one config group targeting Linear) with `ignore` as its ignore list; what
// parse_model_config() accepts as W4A8.
nlohmann::ordered_json w4a8_quantization_config(std::vector<std::string> const& ignore);

}  // namespace w4a8moe::checkpoint
