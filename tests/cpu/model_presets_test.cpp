// The model presets the program and the benchmarks share: valid layer shapes, and the benchmark models as the
// results and notes name them.
#include <gtest/gtest.h>

#include "model_presets.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::tools {
namespace {

TEST(ModelPresets, EveryPresetIsAValidLayerAndItsRanksDivideTheExperts) {
  for (auto const& preset : model_presets()) {
    SCOPED_TRACE(preset.name);
    EXPECT_TRUE(validate_moe_shape(preset.shape).ok());
    EXPECT_EQ(preset.shape.num_local_experts, preset.shape.num_experts);
    EXPECT_EQ(preset.shape.num_experts % preset.default_ep_ranks, 0);
    EXPECT_EQ(find_model_preset(preset.name), &preset);
    if (preset.gpt_oss) {  // MXFP4 experts: whole 32-K scale blocks in both GEMMs
      MoeShape const& s = preset.shape;
      EXPECT_TRUE(validate_weight_shape({s.num_experts, 2 * s.inter, s.hidden, 128}, PackedLayout::kMxfp4).ok());
      EXPECT_TRUE(validate_weight_shape({s.num_experts, s.hidden, s.inter, 128}, PackedLayout::kMxfp4).ok());
    }
  }
  ModelPreset const* gpt_oss = find_model_preset("gpt-oss-120b");
  ASSERT_NE(gpt_oss, nullptr);
  EXPECT_TRUE(gpt_oss->gpt_oss);
  EXPECT_EQ(gpt_oss->shape.hidden, 2880);
  EXPECT_EQ(gpt_oss->shape.top_k, 4);
  EXPECT_FALSE(find_model_preset("qwen3-30b-a3b")->gpt_oss);
  EXPECT_EQ(find_model_preset("gpt-oss"), nullptr);
  EXPECT_NE(model_preset_names().find("deepseek-v3"), std::string::npos);
}

TEST(ModelPresets, BenchmarkModels) {
  ASSERT_EQ(benchmark_models().size(), 3u);
  BenchModel const* rank = find_benchmark_model("deepseek-v3-ep8");
  ASSERT_NE(rank, nullptr);
  MoeShape const expected{256, 32, 8, 7168, 2048};
  EXPECT_EQ(rank->shape.num_experts, expected.num_experts);
  EXPECT_EQ(rank->shape.num_local_experts, expected.num_local_experts);
  EXPECT_EQ(rank->shape.top_k, expected.top_k);
  EXPECT_EQ(rank->shape.hidden, expected.hidden);
  EXPECT_EQ(rank->shape.inter, expected.inter);
  EXPECT_EQ(find_benchmark_model("qwen3-30b-a3b")->shape.inter, 768);
  EXPECT_EQ(find_benchmark_model("mixtral-8x7b")->shape.top_k, 2);
  EXPECT_EQ(find_benchmark_model("deepseek-v3"), nullptr);  // the benchmarks run one rank
}

}  // namespace
}  // namespace w4a8moe::tools
