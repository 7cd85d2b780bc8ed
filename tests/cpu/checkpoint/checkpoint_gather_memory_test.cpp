// Gathering allocates a layer's arrays only once every tensor they copy is found and checked, so a config.json
// claiming huge sizes cannot make a small checkpoint allocate gigabytes. Each gather runs in a child process whose
// address space is capped at 512 MB above what it already holds; there it must be refused for the tensor the
// checkpoint lacks, not for memory (the old order asked for 3 GB first).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>

#include "checkpoint_test_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::RawTensor;
using testing::TempDir;

constexpr char kHugeSizes[] = R"("hidden_size": 16384, "num_hidden_layers": 1, "num_experts_per_tok": 2)";

ModelConfig parse_ok(std::string const& json) {
  ModelConfig config;
  Status const status = parse_model_config(json, "config.json", &config);
  EXPECT_TRUE(status.ok()) << status.message();
  return config;
}

// Caps this process's address space at what it maps now plus `extra` bytes.
void cap_address_space(uint64_t extra) {
  uint64_t pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  rlimit limit{};
  getrlimit(RLIMIT_AS, &limit);
  rlim_t const wanted = rlim_t(pages * uint64_t(sysconf(_SC_PAGESIZE)) + extra);
  if (limit.rlim_max == RLIM_INFINITY || wanted < limit.rlim_max) limit.rlim_cur = wanted;
  setrlimit(RLIMIT_AS, &limit);
}

// Runs gather() in a child capped at 512 MB more; the child prints the refusal and exits 0 only for an invalid
// argument (a memory failure is kNotSupported "out of host memory").
void expect_refused_within_512_mb(std::function<Status()> const& gather, std::string const& message_pattern) {
  EXPECT_EXIT(
      {
        cap_address_space(uint64_t(512) << 20);
        Status const status = gather();
        std::fprintf(stderr, "%s\n", status.message().c_str());
        std::_Exit(status.code() == StatusCode::kInvalidArgument ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), message_pattern);
}

Checkpoint open_single(TempDir const& dir, std::vector<RawTensor> const& tensors) {
  testing::write_file(dir.file("model.safetensors"), testing::make_safetensors(tensors));
  Checkpoint checkpoint;
  Status const status = Checkpoint::open(dir.path().string(), &checkpoint);
  EXPECT_TRUE(status.ok()) << status.message();
  return checkpoint;
}

TEST(GatherMemoryDeathTest, W4A8ChecksEveryTensorBeforeAllocating) {
  TempDir dir;
  // The tensor gather probes for the naming convention, and nothing else.
  Checkpoint const checkpoint =
      open_single(dir, {{"model.layers.0.mlp.experts.0.gate_proj.weight_packed", "I32", {1, 1}, std::string(4, 0)}});
  ModelConfig const config = parse_ok(std::string(R"({"model_type": "qwen3_moe", )") + kHugeSizes +
                                      R"(, "num_experts": 8, "moe_intermediate_size": 16384,
      "quantization_config": {"quant_method": "compressed-tensors", "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"],
          "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 128},
          "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true}}}}})");
  expect_refused_within_512_mb(
      [&] {
        LayerExperts experts;
        return gather_layer_experts(checkpoint, config, 0, &experts);
      },
      "tensor 'model.layers.0.mlp.experts.0.gate_proj.weight_scale' is missing \\(expert 0 of layer 0\\)");
}

TEST(GatherMemoryDeathTest, Mxfp4ChecksEveryTensorBeforeAllocating) {
  TempDir dir;
  Checkpoint const checkpoint =
      open_single(dir, {{"model.layers.0.mlp.experts.gate_up_proj_blocks", "U8", {1, 1, 1, 16}, std::string(16, 0)}});
  ModelConfig const config = parse_ok(std::string(R"({"model_type": "gpt_oss", )") + kHugeSizes +
                                      R"(, "num_local_experts": 8, "intermediate_size": 16384,
      "quantization_config": {"quant_method": "mxfp4"}})");
  expect_refused_within_512_mb(
      [&] {
        Mxfp4LayerExperts experts;
        return gather_mxfp4_layer_experts(checkpoint, config, 0, &experts);
      },
      "tensor 'model.layers.0.mlp.experts.gate_up_proj_blocks': shape \\[1, 1, 1, 16\\], "
      "needs \\[8, 32768, 512, 16\\]");
}

}  // namespace
}  // namespace w4a8moe
