// What the config.json fuzz target does with one input, shared with the CPU test that replays its seeds and the
// inputs that once broke it: parse the text as a model's config.json and, if it is accepted, check what
// parse_model_config promises (include/w4a8moe/checkpoint.h, MoeConfig and ModelConfig).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "w4a8moe/checkpoint.h"

namespace w4a8moe::fuzz {

// Empty if the input is refused or everything holds; otherwise the first broken promise.
inline std::string check_config_input(uint8_t const* data, size_t size) {
  ModelConfig config;
  std::string const text(reinterpret_cast<char const*>(data), size);
  if (!parse_model_config(text, "fuzz-input", &config).ok()) return "";
  MoeConfig const& m = config.moe;
  bool const known = m.model_type == "qwen3_moe" || m.model_type == "mixtral" || m.model_type == "deepseek_v3" ||
                     m.model_type == "gpt_oss";
  if (!known) return "model_type '" + m.model_type + "' accepted";
  if (m.num_layers < 1 || m.num_layers > 4096) return "num_layers outside [1, 4096]";
  if (m.is_moe_layer.size() != size_t(m.num_layers)) return "is_moe_layer is not num_layers long";
  if (std::find(m.is_moe_layer.begin(), m.is_moe_layer.end(), true) == m.is_moe_layer.end()) return "no MoE layer";
  if (m.num_experts < 1 || m.hidden_size < 1 || m.intermediate_size < 1) return "a dimension below 1";
  if (m.experts_per_token < 1 || m.experts_per_token > m.num_experts) return "top-k outside [1, num_experts]";
  if (m.num_shared_experts < 0) return "negative shared experts";
  if (m.num_expert_groups < 1 || m.topk_groups < 1 || m.topk_groups > m.num_expert_groups ||
      m.num_experts % m.num_expert_groups != 0) {
    return "expert groups that do not fit the experts";
  }
  if (int64_t(m.topk_groups) * (m.num_experts / m.num_expert_groups) < m.experts_per_token) {
    return "top-k beyond what group-limited routing reaches";
  }
  if (!std::isfinite(m.routed_scaling_factor) || !(m.routed_scaling_factor > 0.0)) {
    return "routed_scaling_factor not finite and positive";
  }
  bool const gpt_oss = m.model_type == "gpt_oss";
  if (gpt_oss ? !(std::isfinite(m.swiglu_limit) && m.swiglu_limit > 0.0) : m.swiglu_limit != 0.0) {
    return "swiglu_limit not finite and positive for gpt_oss, or not 0 for another model";
  }
  if ((m.model_type == "mixtral" || gpt_oss) && !m.norm_topk_prob) {
    return "a router of softmax over the top k not renormalised";
  }
  if (config.w4a8 && config.mxfp4) return "both the W4A8 scheme and MXFP4";
  if (config.w4a8 && gpt_oss) return "the W4A8 scheme accepted on gpt_oss";
  return "";
}

}  // namespace w4a8moe::fuzz
