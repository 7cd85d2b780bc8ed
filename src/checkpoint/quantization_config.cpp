// quantization_config: the check that a block is the compressed-tensors W4A8 scheme, one rule at a time, each
// refusal naming its field, and the block the quantizer writes.
#include <string>
#include <vector>

#include "checkpoint/json_util.h"
#include "checkpoint/model_config.h"
#include "w4a8moe/status.h"

namespace w4a8moe::checkpoint {
namespace {

// One field of a quantization args object: the values accepted, the compressed-tensors default when absent, and
// what a refusal means.
struct QuantRule {
  char const* key;
  Json default_value;
  std::vector<Json> accepted;
  char const* meaning;
};

std::vector<QuantRule> const& weight_rules() {
  static std::vector<QuantRule> const rules = {
      {"num_bits", 8, {4}, "only 4-bit weights are W4A8"},
      {"type", "int", {"int"}, "only integer weights are served"},
      {"symmetric", true, {true}, "asymmetric weights (zero points) are not supported"},
      {"strategy", nullptr, {"group"}, "only group-wise weight scales are supported"},
      {"group_size", nullptr, {128}, "only group size 128 is supported (the fp8 mainloop's K tile)"},
      {"actorder", nullptr, {nullptr, false}, "activation ordering (act-order) is not supported"},
      {"dynamic", false, {false}, "weights must be quantized offline"},
  };
  return rules;
}

std::vector<QuantRule> const& activation_rules() {
  static std::vector<QuantRule> const rules = {
      {"num_bits", 8, {8}, "only 8-bit activations are W4A8"},
      {"type", "int", {"float"}, "only fp8 activations are supported (int8 activations are another scheme)"},
      {"symmetric", true, {true}, "asymmetric activations are not supported"},
      {"strategy", nullptr, {"token"}, "only per-token activation scales are supported"},
      {"dynamic", false, {true}, "static activation scales are not supported (activations are quantized per token "
                                 "at run time)"},
  };
  return rules;
}

std::string accepted_values(std::vector<Json> const& accepted) {
  std::string text;
  for (Json const& value : accepted) text += (text.empty() ? "" : " or ") + value.dump();
  return text;
}

Status check_quant_args(std::string const& source, std::string const& path, Json const& args,
                        std::vector<QuantRule> const& rules) {
  if (!args.is_object()) return invalid_argument(source, ": ", path, " must be an object, got ", describe(args));
  for (QuantRule const& rule : rules) {
    bool const present = args.contains(rule.key);
    Json const& value = present ? args[rule.key] : rule.default_value;
    bool ok = false;
    for (Json const& accepted : rule.accepted) ok = ok || value == accepted;
    if (!ok) {
      return not_supported(source, ": ", path, ".", rule.key, " is ", describe(value), present ? "" : " (absent)",
                           ", needs ", accepted_values(rule.accepted), ": ", rule.meaning);
    }
  }
  return Status::Ok();
}

}  // namespace

Status check_w4a8_scheme(std::string const& source, Json const& config) {
  std::string const root = "quantization_config";
  if (!config.is_object()) return invalid_argument(source, ": ", root, " must be an object, got ", describe(config));
  if (config.contains("quant_method") && config["quant_method"] != "compressed-tensors") {
    return not_supported(source, ": ", root, ".quant_method is ", describe(config["quant_method"]),
                         ", needs \"compressed-tensors\"");
  }
  if (!config.contains("config_groups") || !config["config_groups"].is_object() || config["config_groups"].empty()) {
    return invalid_argument(source, ": ", root, ".config_groups must be a non-empty object");
  }
  Json const top_format = config.value("format", Json());
  for (auto const& [group_name, group] : config["config_groups"].items()) {
    std::string const path = root + ".config_groups." + group_name;
    if (!group.is_object()) return invalid_argument(source, ": ", path, " must be an object, got ", describe(group));
    // A group's own format wins over the top-level one (top-level "mixed-precision" then defers to the groups).
    bool const own_format = group.contains("format") && !group["format"].is_null();
    Json const& format = own_format ? group["format"] : top_format;
    if (format != "pack-quantized") {
      return not_supported(source, ": ", own_format ? path + ".format" : root + ".format", " is ", describe(format),
                           ", needs \"pack-quantized\" (int4 packed into int32)");
    }
    if (!group.contains("weights") || group["weights"].is_null()) {
      return not_supported(source, ": ", path, ".weights is absent: the group does not quantize weights");
    }
    W4A8_RETURN_IF_ERROR(check_quant_args(source, path + ".weights", group["weights"], weight_rules()));
    if (!group.contains("input_activations") || group["input_activations"].is_null()) {
      return not_supported(source, ": ", path,
                           ".input_activations is absent or null: weight-only (W4A16) checkpoints are not W4A8");
    }
    W4A8_RETURN_IF_ERROR(
        check_quant_args(source, path + ".input_activations", group["input_activations"], activation_rules()));
    if (group.contains("output_activations") && !group["output_activations"].is_null()) {
      return not_supported(source, ": ", path, ".output_activations is set: quantized outputs are not supported");
    }
  }
  return Status::Ok();
}

Status check_w4a8_serves(std::string const& source, std::string const& model_type) {
  if (model_type != "gpt_oss") return Status::Ok();
  return not_supported(source, ": model_type \"gpt_oss\" with W4A8 (compressed-tensors int4) experts: gpt-oss's ",
                       "layer needs its MXFP4 experts (quant_method \"mxfp4\") with their biases and its clamped ",
                       "SwiGLU, which W4A8 experts and the W4A8 layer do not have");
}

nlohmann::ordered_json w4a8_quantization_config(std::vector<std::string> const& ignore) {
  using Ordered = nlohmann::ordered_json;
  // observer is left null: the scales come from this library's RTN (or the caller's quantizer), not from an
  // llm-compressor observer.
  Ordered weights = {{"num_bits", 4},          {"type", "int"},      {"symmetric", true},
                     {"group_size", 128},      {"strategy", "group"}, {"block_structure", nullptr},
                     {"dynamic", false},       {"actorder", nullptr}, {"observer", nullptr},
                     {"observer_kwargs", Ordered::object()}};
  Ordered activations = {{"num_bits", 8},          {"type", "float"},      {"symmetric", true},
                         {"group_size", nullptr},  {"strategy", "token"},  {"block_structure", nullptr},
                         {"dynamic", true},        {"actorder", nullptr},  {"observer", nullptr},
                         {"observer_kwargs", Ordered::object()}};
  Ordered group = {{"targets", {"Linear"}},
                   {"weights", weights},
                   {"input_activations", activations},
                   {"output_activations", nullptr},
                   {"format", "pack-quantized"}};
  return Ordered{{"quant_method", "compressed-tensors"},
                 {"format", "pack-quantized"},
                 {"quantization_status", "compressed"},
                 {"config_groups", {{"group_0", group}}},
                 {"ignore", ignore},
                 {"kv_cache_scheme", nullptr},
                 {"sparsity_config", Ordered::object()}};
}

}  // namespace w4a8moe::checkpoint
