// config.json: the MoE dimensions per model family (one table row per model_type), and which quantization_config
// the experts carry (the W4A8 scheme's rules are in quantization_config.cpp).
#include "checkpoint/model_config.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "checkpoint/file_io.h"
#include "checkpoint/json_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {

namespace {

using checkpoint::describe;
using checkpoint::Json;

// Far more layers than any model has (DeepSeek-V3: 61); the layer table and loops are sized by it.
constexpr int kMaxLayers = 4096;

// ---- MoE dimensions ------------------------------------------------------------------------------------------

enum class TopkNormalisation {
  kAlways,             // the router renormalises by construction (softmax over the top-k logits)
  kFieldDefaultFalse,  // norm_topk_prob, false when absent (as transformers' config class)
  kFieldRequired,      // norm_topk_prob must be given
};

enum class LayerPattern {
  kEveryLayer,
  kQwenSparseStep,      // MoE where (l + 1) % decoder_sparse_step == 0 and l not in mlp_only_layers
  kDeepSeekFirstDense,  // MoE where l >= first_k_dense_replace and l % moe_layer_freq == 0
};

struct ModelTypeFields {
  char const* model_type;
  char const* num_experts;
  char const* experts_per_token[2];  // the first one present is read
  char const* intermediate_size;
  TopkNormalisation topk_normalisation;
  LayerPattern layer_pattern;
};

constexpr ModelTypeFields kModelTypes[] = {
    {"qwen3_moe", "num_experts", {"num_experts_per_tok", nullptr}, "moe_intermediate_size",
     TopkNormalisation::kFieldDefaultFalse, LayerPattern::kQwenSparseStep},
    {"mixtral", "num_local_experts", {"num_experts_per_tok", nullptr}, "intermediate_size",
     TopkNormalisation::kAlways, LayerPattern::kEveryLayer},
    {"deepseek_v3", "n_routed_experts", {"num_experts_per_tok", nullptr}, "moe_intermediate_size",
     TopkNormalisation::kFieldRequired, LayerPattern::kDeepSeekFirstDense},
    {"gpt_oss", "num_local_experts", {"experts_per_token", "num_experts_per_tok"}, "intermediate_size",
     TopkNormalisation::kAlways, LayerPattern::kEveryLayer},
};

// Typed reads of config fields; messages name the source and the field.
class FieldReader {
 public:
  FieldReader(Json const& object, std::string const& source) : object_(object), source_(source) {}

  bool has(char const* key) const { return object_.contains(key) && !object_[key].is_null(); }

  // An integer in [min_value, max_value]. A refusal states the whole range, so that a value beyond an int's reach
  // is not told only that it must be >= min_value.
  Status integer(char const* key, int min_value, int* value, int max_value = std::numeric_limits<int>::max()) const {
    if (!has(key)) return invalid_argument(source_, ": field \"", key, "\" is missing");
    Json const& item = object_[key];
    bool in_range = false;
    if (item.is_number_unsigned()) {  // as uint64_t: values from 2^63 on would wrap as int64_t
      uint64_t const number = item.get<uint64_t>();
      in_range = number >= uint64_t(std::max(min_value, 0)) && number <= uint64_t(max_value);
    } else if (item.is_number_integer()) {
      in_range = item.get<int64_t>() >= min_value && item.get<int64_t>() <= max_value;
    }
    if (!in_range) {
      return invalid_argument(source_, ": field \"", key, "\" must be an integer in [", min_value, ", ", max_value,
                              "], got ", describe(item));
    }
    *value = int(item.get<int64_t>());
    return Status::Ok();
  }

  Status integer_or(char const* key, int fallback, int min_value, int* value) const {
    if (!has(key)) {
      *value = fallback;
      return Status::Ok();
    }
    return integer(key, min_value, value);
  }

  Status boolean(char const* key, bool* value) const {
    if (!has(key)) return invalid_argument(source_, ": field \"", key, "\" is missing");
    if (!object_[key].is_boolean()) {
      return invalid_argument(source_, ": field \"", key, "\" must be true or false, got ", describe(object_[key]));
    }
    *value = object_[key].get<bool>();
    return Status::Ok();
  }

  Status boolean_or(char const* key, bool fallback, bool* value) const {
    if (!has(key)) {
      *value = fallback;
      return Status::Ok();
    }
    return boolean(key, value);
  }

  Status positive_number(char const* key, double* value) const {
    if (!has(key)) return invalid_argument(source_, ": field \"", key, "\" is missing");
    Json const& item = object_[key];
    if (!item.is_number() || !(item.get<double>() > 0.0)) {
      return invalid_argument(source_, ": field \"", key, "\" must be a positive number, got ", describe(item));
    }
    *value = item.get<double>();
    return Status::Ok();
  }

  Json const& operator[](char const* key) const { return object_[key]; }
  std::string const& source() const { return source_; }

 private:
  Json const& object_;
  std::string const& source_;
};

Status parse_moe_layers(FieldReader const& fields, LayerPattern pattern, MoeConfig* moe) {
  moe->is_moe_layer.assign(size_t(moe->num_layers), true);
  if (pattern == LayerPattern::kQwenSparseStep) {
    int sparse_step = 1;
    W4A8_RETURN_IF_ERROR(fields.integer_or("decoder_sparse_step", 1, 1, &sparse_step));
    std::set<int64_t> dense_layers;
    if (fields.has("mlp_only_layers")) {
      Json const& list = fields["mlp_only_layers"];
      if (!list.is_array()) {
        return invalid_argument(fields.source(), ": field \"mlp_only_layers\" must be a list, got ", describe(list));
      }
      for (Json const& layer : list) {
        if (!layer.is_number_integer() || layer.get<int64_t>() < 0 || layer.get<int64_t>() >= moe->num_layers) {
          return invalid_argument(fields.source(), ": field \"mlp_only_layers\" holds ", describe(layer),
                                  ", not a layer index in [0, ", moe->num_layers, ")");
        }
        dense_layers.insert(layer.get<int64_t>());
      }
    }
    for (int l = 0; l < moe->num_layers; ++l) {
      moe->is_moe_layer[size_t(l)] = dense_layers.count(l) == 0 && (l + 1) % sparse_step == 0;
    }
  } else if (pattern == LayerPattern::kDeepSeekFirstDense) {
    int first_moe_layer = 0;
    int layer_frequency = 1;
    W4A8_RETURN_IF_ERROR(fields.integer("first_k_dense_replace", 0, &first_moe_layer));
    W4A8_RETURN_IF_ERROR(fields.integer_or("moe_layer_freq", 1, 1, &layer_frequency));
    for (int l = 0; l < moe->num_layers; ++l) {
      moe->is_moe_layer[size_t(l)] = l >= first_moe_layer && l % layer_frequency == 0;
    }
    if (first_moe_layer >= moe->num_layers) {
      return invalid_argument(fields.source(), ": first_k_dense_replace=", first_moe_layer, " makes all ",
                              moe->num_layers, " layers (num_hidden_layers) dense: no MoE layer");
    }
  }
  // A model whose every layer is dense has nothing this library serves; the MoE layers are the point of reading it.
  if (std::find(moe->is_moe_layer.begin(), moe->is_moe_layer.end(), true) == moe->is_moe_layer.end()) {
    char const* const fields_read = pattern == LayerPattern::kQwenSparseStep
                                        ? "decoder_sparse_step and mlp_only_layers"
                                        : "first_k_dense_replace and moe_layer_freq";
    return invalid_argument(fields.source(), ": ", fields_read, " leave no MoE layer among the ", moe->num_layers,
                            " layers (num_hidden_layers)");
  }
  return Status::Ok();
}

Status parse_deepseek_router(FieldReader const& fields, MoeConfig* moe) {
  W4A8_RETURN_IF_ERROR(fields.integer("n_shared_experts", 0, &moe->num_shared_experts));
  W4A8_RETURN_IF_ERROR(fields.integer("n_group", 1, &moe->num_expert_groups));
  W4A8_RETURN_IF_ERROR(fields.integer("topk_group", 1, &moe->topk_groups));
  W4A8_RETURN_IF_ERROR(fields.positive_number("routed_scaling_factor", &moe->routed_scaling_factor));
  moe->scoring = RouterScoring::kSigmoid;
  if (fields.has("scoring_func")) {
    Json const& scoring = fields["scoring_func"];
    if (scoring == "softmax") {
      moe->scoring = RouterScoring::kSoftmax;
    } else if (scoring != "sigmoid") {
      return not_supported(fields.source(), ": field \"scoring_func\" is ", describe(scoring),
                           "; known: \"sigmoid\", \"softmax\"");
    }
  }
  if (moe->num_experts % moe->num_expert_groups != 0 || moe->topk_groups > moe->num_expert_groups) {
    return invalid_argument(fields.source(), ": n_group=", moe->num_expert_groups, ", topk_group=",
                            moe->topk_groups, " do not fit ", moe->num_experts,
                            " experts (n_group must divide them, topk_group <= n_group)");
  }
  // Group-limited routing picks the top-k among the experts of the topk_group best groups only.
  int64_t const reachable = int64_t(moe->topk_groups) * (moe->num_experts / moe->num_expert_groups);
  if (moe->experts_per_token > reachable) {
    return invalid_argument(fields.source(), ": num_experts_per_tok=", moe->experts_per_token, " exceeds the ",
                            reachable, " experts group-limited routing can choose from (topk_group * n_routed_experts",
                            " / n_group = ", moe->topk_groups, " * ", moe->num_experts, " / ",
                            moe->num_expert_groups, ")");
  }
  return Status::Ok();
}

Status parse_moe(FieldReader const& fields, MoeConfig* moe) {
  if (!fields.has("model_type") || !fields["model_type"].is_string()) {
    return invalid_argument(fields.source(), ": field \"model_type\" (a string) is missing");
  }
  moe->model_type = fields["model_type"].get<std::string>();
  ModelTypeFields const* row = nullptr;
  std::string known;
  for (auto const& candidate : kModelTypes) {
    if (moe->model_type == candidate.model_type) row = &candidate;
    known += (known.empty() ? "" : ", ") + std::string(candidate.model_type);
  }
  if (row == nullptr) {
    return not_supported(fields.source(), ": model_type \"", moe->model_type, "\" is not a known MoE model (known: ",
                         known, ")");
  }

  W4A8_RETURN_IF_ERROR(fields.integer("num_hidden_layers", 1, &moe->num_layers, kMaxLayers));
  W4A8_RETURN_IF_ERROR(fields.integer("hidden_size", 1, &moe->hidden_size));
  W4A8_RETURN_IF_ERROR(fields.integer(row->num_experts, 1, &moe->num_experts));
  W4A8_RETURN_IF_ERROR(fields.integer(row->intermediate_size, 1, &moe->intermediate_size));
  char const* topk_key = row->experts_per_token[0];
  if (!fields.has(topk_key) && row->experts_per_token[1] != nullptr) topk_key = row->experts_per_token[1];
  W4A8_RETURN_IF_ERROR(fields.integer(topk_key, 1, &moe->experts_per_token));
  if (moe->experts_per_token > moe->num_experts) {
    return invalid_argument(fields.source(), ": ", topk_key, "=", moe->experts_per_token, " exceeds ",
                            row->num_experts, "=", moe->num_experts);
  }

  switch (row->topk_normalisation) {
    case TopkNormalisation::kAlways: moe->norm_topk_prob = true; break;
    case TopkNormalisation::kFieldDefaultFalse:
      W4A8_RETURN_IF_ERROR(fields.boolean_or("norm_topk_prob", false, &moe->norm_topk_prob));
      break;
    case TopkNormalisation::kFieldRequired:
      W4A8_RETURN_IF_ERROR(fields.boolean("norm_topk_prob", &moe->norm_topk_prob));
      break;
  }
  if (row->layer_pattern == LayerPattern::kDeepSeekFirstDense) W4A8_RETURN_IF_ERROR(parse_deepseek_router(fields, moe));
  if (moe->model_type == "gpt_oss") {  // transformers' GptOssConfig default
    moe->swiglu_limit = kGptOssSwigluLimit;
    if (fields.has("swiglu_limit")) W4A8_RETURN_IF_ERROR(fields.positive_number("swiglu_limit", &moe->swiglu_limit));
  }
  return parse_moe_layers(fields, row->layer_pattern, moe);
}

// gpt-oss's block: {"quant_method": "mxfp4", "modules_to_not_convert": [...]}; the experts are the converted modules.
bool is_mxfp4(Json const& config) { return config.is_object() && config.value("quant_method", Json()) == "mxfp4"; }

Status parse_config_text(std::string const& text, std::string const& source, ModelConfig* config) {
  Json root;
  std::string reason;
  if (!checkpoint::parse_json(text, &root, &reason)) return invalid_argument(source, ": ", reason);
  if (!root.is_object()) return invalid_argument(source, ": must be a JSON object, got ", describe(root));
  ModelConfig parsed;
  W4A8_RETURN_IF_ERROR(parse_moe(FieldReader(root, source), &parsed.moe));
  if (root.contains("quantization_config") && !root["quantization_config"].is_null()) {
    if (is_mxfp4(root["quantization_config"])) {
      parsed.mxfp4 = true;
    } else {
      W4A8_RETURN_IF_ERROR(checkpoint::check_w4a8_scheme(source, root["quantization_config"]));
      W4A8_RETURN_IF_ERROR(checkpoint::check_w4a8_serves(source, parsed.moe.model_type));
      parsed.w4a8 = true;
    }
  }
  *config = std::move(parsed);
  return Status::Ok();
}

}  // namespace

Status parse_model_config(std::string const& json_text, std::string const& source, ModelConfig* config) {
  if (config == nullptr) return invalid_argument("parse_model_config: config is null");
  return checkpoint::guard_exceptions(source, [&] { return parse_config_text(json_text, source, config); });
}

Status read_model_config(std::string const& path, ModelConfig* config) {
  if (config == nullptr) return invalid_argument("read_model_config: config is null");
  return checkpoint::guard_exceptions(path, [&] {
    std::string text;
    W4A8_RETURN_IF_ERROR(checkpoint::read_text_file(path, checkpoint::kMaxConfigBytes, &text));
    return parse_config_text(text, path, config);
  });
}

}  // namespace w4a8moe
