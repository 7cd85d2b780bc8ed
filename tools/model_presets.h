// The model presets of the command-line program and of the GEMM and layer benchmarks, stated once.
#pragma once

#include <string>
#include <vector>

#include "w4a8moe/moe.h"

namespace w4a8moe::tools {

struct ModelPreset {
  std::string name;
  MoeShape shape;        // every expert local
  int default_ep_ranks;  // the program's default expert parallelism: DeepSeek-V3 runs as one rank of 8
  bool gpt_oss = false;  // MXFP4 experts with gpt-oss's clamped SwiGLU and expert biases (else int4 W4A8, SiLU)
};

// qwen3-30b-a3b, qwen3-235b-a22b, deepseek-v3, mixtral-8x7b, llama4-scout; gpt-oss-20b and gpt-oss-120b (MXFP4).
std::vector<ModelPreset> const& model_presets();
ModelPreset const* find_model_preset(std::string const& name);  // nullptr: no such preset
std::string model_preset_names();                                // space-separated, for help texts

// One of `ranks` expert-parallel ranks of a layer: num_experts / ranks of its experts are local.
MoeShape rank_shape(MoeShape shape, int ranks);

// The benchmarks' models: Qwen3-30B-A3B, one DeepSeek-V3 rank of 8 (32 of 256 experts local, "deepseek-v3-ep8"),
// Mixtral-8x7B.
struct BenchModel {
  std::string name;
  MoeShape shape;
};
std::vector<BenchModel> const& benchmark_models();
BenchModel const* find_benchmark_model(std::string const& name);  // nullptr: no such model

}  // namespace w4a8moe::tools
