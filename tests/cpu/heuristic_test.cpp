// The config heuristic: row estimates, and the choices it makes across the regimes that matter.
#include <gtest/gtest.h>

#include <numeric>

#include "gemm/heuristic.h"
#include "gemm/registry.h"

namespace w4a8moe::gemm {
namespace {

std::vector<GemmConfig> all_configs() {
  std::vector<GemmConfig> configs;
  for (auto const& entry : gemm_registry()) configs.push_back(entry.config);
  return configs;
}

HeuristicInput qwen3_gemm1(int64_t tokens) {  // E=128, top-8, H=2048, 2I=1536
  HeuristicInput input;
  input.n = 1536;
  input.k = 2048;
  input.num_experts = 128;
  input.total_rows = tokens * 8;
  return input;
}

TEST(Heuristic, UniformEstimateCountsDistinctExperts) {
  auto input = qwen3_gemm1(1);  // 8 rows over 128 experts: almost surely 8 experts with one row each
  auto rows = estimate_rows_per_active_expert(input);
  EXPECT_EQ(std::accumulate(rows.begin(), rows.end(), int64_t(0)), 8);
  EXPECT_EQ(rows.size(), 8u);
  input = qwen3_gemm1(8192);  // 65536 rows: every expert, 512 each
  rows = estimate_rows_per_active_expert(input);
  EXPECT_EQ(rows.size(), 128u);
  EXPECT_EQ(rows.front(), 512);
}

TEST(Heuristic, ExactRowsWinOverEstimates) {
  auto input = qwen3_gemm1(16);
  input.rows_per_expert.assign(128, 0);
  input.rows_per_expert[5] = 128;
  auto const rows = estimate_rows_per_active_expert(input);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], 128);
}

TEST(Heuristic, MaxRowsHintMakesOneHotExpert) {
  auto input = qwen3_gemm1(64);  // 512 rows
  input.max_rows_per_expert = 300;
  auto const rows = estimate_rows_per_active_expert(input);
  EXPECT_EQ(rows.front(), 300);
  EXPECT_EQ(std::accumulate(rows.begin(), rows.end(), int64_t(0)), 512);
}

TEST(Heuristic, DecodePicksNarrowTokenTiles) {
  auto const config = select_config(qwen3_gemm1(4), all_configs());
  EXPECT_EQ(config.tile_n, 16) << config.name();
}

TEST(Heuristic, PrefillPicksLargeTiles) {
  auto const config = select_config(qwen3_gemm1(8192), all_configs());
  EXPECT_GE(config.tile_m * config.tile_n, 128 * 128) << config.name();
}

TEST(Heuristic, PredictedTimeGrowsWithRows) {
  GemmConfig const config{128, 64, 1, 1, Schedule::kCooperative};
  double previous = 0;
  for (int64_t tokens : {1, 16, 128, 1024, 8192}) {
    auto const input = qwen3_gemm1(tokens);
    double const us = predicted_time_us(config, input, estimate_rows_per_active_expert(input));
    EXPECT_GT(us, previous);
    previous = us;
  }
}

TEST(Heuristic, ChoiceIsARegisteredConfig) {
  for (int64_t tokens : {1, 4, 16, 64, 128, 512, 1024, 4096, 8192}) {
    auto const config = select_config(qwen3_gemm1(tokens), all_configs());
    EXPECT_NE(find_gemm_kernel(config.name()), nullptr) << config.name();
  }
}

TEST(Registry, NamesAreCanonicalAndUnique) {
  auto const& registry = gemm_registry();
  ASSERT_FALSE(registry.empty());
  for (size_t i = 0; i < registry.size(); ++i) {
    EXPECT_EQ(registry[i].name, registry[i].config.name());
    EXPECT_EQ(find_gemm_kernel(registry[i].name), &registry[i]);
    for (size_t j = i + 1; j < registry.size(); ++j) EXPECT_NE(registry[i].name, registry[j].name);
  }
  EXPECT_EQ(find_gemm_kernel("64x8_1x1_coop"), nullptr);
  EXPECT_EQ((GemmConfig{128, 16, 1, 1, Schedule::kCooperative}.name()), "128x16_1x1_coop");
  EXPECT_EQ((GemmConfig{128, 128, 2, 1, Schedule::kPingpong}.name()), "128x128_2x1_pp");
}

}  // namespace
}  // namespace w4a8moe::gemm
