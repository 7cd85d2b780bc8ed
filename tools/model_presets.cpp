#include "model_presets.h"

namespace w4a8moe::tools {

std::vector<ModelPreset> const& model_presets() {
  static std::vector<ModelPreset> const presets = {
      {"qwen3-30b-a3b", {128, 128, 8, 2048, 768}, 1},   {"qwen3-235b-a22b", {128, 128, 8, 4096, 1536}, 1},
      {"deepseek-v3", {256, 256, 8, 7168, 2048}, 8},    {"mixtral-8x7b", {8, 8, 2, 4096, 14336}, 1},
      {"llama4-scout", {16, 16, 1, 5120, 8192}, 1},
      {"gpt-oss-20b", {32, 32, 4, 2880, 2880}, 1, true}, {"gpt-oss-120b", {128, 128, 4, 2880, 2880}, 1, true},
  };
  return presets;
}

ModelPreset const* find_model_preset(std::string const& name) {
  for (auto const& preset : model_presets()) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

std::string model_preset_names() {
  std::string names;
  for (auto const& preset : model_presets()) names += (names.empty() ? "" : " ") + preset.name;
  return names;
}

MoeShape rank_shape(MoeShape shape, int ranks) {
  shape.num_local_experts = shape.num_experts / ranks;
  return shape;
}

std::vector<BenchModel> const& benchmark_models() {
  static std::vector<BenchModel> const models = [] {
    std::vector<BenchModel> m;
    m.push_back({"qwen3-30b-a3b", find_model_preset("qwen3-30b-a3b")->shape});
    m.push_back({"deepseek-v3-ep8", rank_shape(find_model_preset("deepseek-v3")->shape, 8)});
    m.push_back({"mixtral-8x7b", find_model_preset("mixtral-8x7b")->shape});
    return m;
  }();
  return models;
}

BenchModel const* find_benchmark_model(std::string const& name) {
  for (auto const& model : benchmark_models()) {
    if (model.name == name) return &model;
  }
  return nullptr;
}

}  // namespace w4a8moe::tools
