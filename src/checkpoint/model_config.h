// Internal side of config.json handling (quantization_config.cpp): the W4A8 scheme's check, the quantization_config
// block the quantizer writes, and the one rule on which models W4A8 serves that the parse, the gather and the
// quantizer share. Parsing is public (parse_model_config in checkpoint.h).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "w4a8moe/status.h"

namespace w4a8moe::checkpoint {

// The largest config.json read, by the loader and by the quantizer; real configs are a few KB.
inline constexpr size_t kMaxConfigBytes = 16u << 20;

// Ok when `config` (a quantization_config block) is the compressed-tensors W4A8 scheme this library serves: int4
// symmetric group-128 weights packed into int32, dynamic per-token fp8 activations; else the first rule it breaks,
// naming the field. `source` names the config in the message.
Status check_w4a8_scheme(std::string const& source, nlohmann::json const& config);

// kNotSupported for a model whose MoE layer W4A8 experts cannot serve (gpt-oss: MXFP4 experts with biases and
// a clamped SwiGLU); `source` names the config in the message.
Status check_w4a8_serves(std::string const& source, std::string const& model_type);

// The compressed-tensors W4A8 block (one config group targeting Linear) with `ignore` as its ignore list; what
// parse_model_config() accepts as W4A8.
nlohmann::ordered_json w4a8_quantization_config(std::vector<std::string> const& ignore);

}  // namespace w4a8moe::checkpoint
