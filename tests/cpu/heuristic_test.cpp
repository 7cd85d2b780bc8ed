// The config heuristic: row estimates, and the choices it makes across the regimes the H100 sweep measured.
#include <gtest/gtest.h>

#include <numeric>

#include "gemm/built_arrays.h"
#include "gemm/heuristic.h"
#include "gemm/registry.h"

namespace w4a8moe::gemm {
namespace {

HeuristicInput gemm_input(int n, int k, int experts, int top_k, int64_t tokens) {
  HeuristicInput input;
  input.n = n;
  input.k = k;
  input.num_experts = experts;
  input.total_rows = tokens * top_k;
  return input;
}

HeuristicInput qwen3_gemm1(int64_t tokens) { return gemm_input(1536, 2048, 128, 8, tokens); }
HeuristicInput qwen3_gemm2(int64_t tokens) { return gemm_input(2048, 768, 128, 8, tokens); }
HeuristicInput mixtral_gemm1(int64_t tokens) { return gemm_input(28672, 4096, 8, 2, tokens); }
HeuristicInput mixtral_gemm2(int64_t tokens) { return gemm_input(4096, 14336, 8, 2, tokens); }
HeuristicInput deepseek_ep8_gemm1(int64_t tokens) { return gemm_input(4096, 7168, 32, 1, tokens); }
HeuristicInput deepseek_ep8_gemm2(int64_t tokens) { return gemm_input(7168, 2048, 32, 1, tokens); }

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

TEST(Heuristic, RowWeightedMeanFollowsHotExperts) {
  EXPECT_DOUBLE_EQ(row_weighted_rows_per_expert({4, 4, 4, 4}), 4.0);
  EXPECT_DOUBLE_EQ(row_weighted_rows_per_expert({100, 1, 1, 1}), (10000.0 + 3) / 103);
  EXPECT_DOUBLE_EQ(row_weighted_rows_per_expert({}), 0.0);
}

// The table's picks on cases of the H100 sweeps (bench/results/2026-11-26-h100-80gb-hbm3-sweep.json, and for the
// 256-row token tiles bench/NOTES.md §76), each the sweep's fastest config or within 5 % of it; the decode cases the
// streaming kernel took since (up to 12 rows per expert) are below.
TEST(Heuristic, FollowsTheH100Sweep) {
  EXPECT_EQ(select_config(qwen3_gemm2(1024)).name(), "128x128_2x1_pp");
  EXPECT_EQ(select_config(qwen3_gemm1(2048)).name(), "256x128_2x1_coop");  // 128 rows an expert
  EXPECT_EQ(select_config(qwen3_gemm1(4096)).name(), "128x256_2x1_coop");  // 256 rows, N 1536 (§76)
  EXPECT_EQ(select_config(mixtral_gemm1(1024)).name(), "256x128_2x1_coop");  // 256 rows, but N 28672
  EXPECT_EQ(select_config(mixtral_gemm2(1024)).name(), "128x256_2x1_coop");  // 256 rows, N 4096
  EXPECT_EQ(select_config(qwen3_gemm2(512)).name(), "128x64_1x1_pp");
  EXPECT_EQ(select_config(qwen3_gemm2(8192)).name(), "128x128_2x1_pp");
  EXPECT_EQ(select_config(mixtral_gemm1(128)).name(), "256x64_1x1_coop");
  EXPECT_EQ(select_config(mixtral_gemm1(8192)).name(), "128x256_2x1_coop");
  EXPECT_EQ(select_config(qwen3_gemm1(8192)).name(), "128x256_2x1_coop");
}

// The streaming kernels where they measured faster (bench/NOTES.md §6-8, §48, §55, §57, §61, §78, §127): the wgmma
// kernel up to 26 rows per expert (row-weighted; 10 for large experts of short K) wherever its items need no K split,
// its split-K config where K splits into slices of at least 16 groups over items for most SMs, the cluster split where
// its slices keep 16 groups or its items fill 2.5 waves, in 16-row chunks past 6 rows and 32-row chunks past 10; the
// decode kernel up to 1.3 rows per expert of at most 2^26 weights where K must be split finer, or where experts of
// at most 2^22 weights need no split but their items come fewer than 4 waves; CUTLASS for more rows.
TEST(Heuristic, StreamingKernelsUpToTwentySixRowsPerExpert) {
  // 1 token: 8 rows over 128 experts, 192 (GEMM1) or 256 (GEMM2) tiles of 64 channels for 528 resident blocks.
  EXPECT_EQ(select_config(qwen3_gemm1(1)).name(), "16x8_1x1_decode");
  EXPECT_EQ(select_config(qwen3_gemm2(1)).name(), "16x8_1x1_decode");
  // 2 tokens: 16 rows, 384 and 512 tiles of small experts without a split, under 4 waves.
  EXPECT_EQ(select_config(qwen3_gemm1(2)).name(), "16x8_1x1_decode");
  EXPECT_EQ(select_config(qwen3_gemm2(2)).name(), "16x8_1x1_decode");
  // 4 tokens: 32 rows, 768 and 1024 tiles.
  EXPECT_EQ(select_config(qwen3_gemm1(4)).name(), "64x8_stream");
  EXPECT_EQ(select_config(qwen3_gemm2(4)).name(), "64x8_stream");
  // K split into the four workers of one block where each slice keeps at least 16 groups and the items fill three
  // quarters of the SMs (Mixtral GEMM2 at 1 and 2 tokens: 2-4 experts x 64 tiles, slices of 28 groups).
  EXPECT_EQ(select_config(mixtral_gemm2(1)).name(), "64x8_splitk_stream");
  EXPECT_EQ(select_config(mixtral_gemm2(2)).name(), "64x8_splitk_stream");
  // Slices of 14 groups (DeepSeek-V3 EP8 GEMM1, K = 56 groups): the decode kernel's finer split at 1-2 experts (64
  // and 128 tiles), the cluster split into slices of 28 at 4 (256 tiles).
  EXPECT_EQ(select_config(deepseek_ep8_gemm1(1)).name(), "16x8_1x1_decode");
  EXPECT_EQ(select_config(deepseek_ep8_gemm1(2)).name(), "16x8_1x1_decode");
  EXPECT_EQ(select_config(deepseek_ep8_gemm1(4)).name(), "64x8_stream");
  // Unsplit items for fewer than 4 waves, but experts of 15-29M weights (bench/NOTES.md §126-§127).
  EXPECT_EQ(select_config(deepseek_ep8_gemm2(3)).name(), "64x8_stream");  // 336 tiles
  EXPECT_EQ(select_config(deepseek_ep8_gemm2(4)).name(), "64x8_stream");  // 448 tiles
  EXPECT_EQ(select_config(deepseek_ep8_gemm1(6)).name(), "64x8_stream");  // 384 tiles
  // Mixtral's 117M-weight GEMM1 experts at 1 token: 2 x 448 tiles, no split.
  EXPECT_EQ(select_config(mixtral_gemm1(1)).name(), "64x8_stream");
  // 8-row chunks up to 2 rows per expert wherever K needs no split, whatever K: Qwen3 at 8-24 tokens (1.4-2 rows),
  // DeepSeek-V3 EP8 at 16-48 local rows (1.4-2 rows, GEMM1's K = 56 groups), Mixtral at 4 tokens (1.75 rows; GEMM2's
  // K is 112 groups).
  for (auto const& input : {qwen3_gemm1(8), qwen3_gemm1(16), qwen3_gemm1(24), qwen3_gemm2(16), qwen3_gemm2(24),
                            deepseek_ep8_gemm1(16), deepseek_ep8_gemm2(16), deepseek_ep8_gemm1(48),
                            deepseek_ep8_gemm2(48), mixtral_gemm1(4), mixtral_gemm2(4)}) {
    EXPECT_EQ(select_config(input).name(), "64x8_stream");
  }
  // 16-row chunks from 2 to 10 rows (bench/NOTES.md §85): Qwen3 at 32-128 tokens, DeepSeek-V3 EP8 at 64-256 local
  // rows, Mixtral at 8-16 tokens (2.4-4 rows).
  for (auto const& input : {qwen3_gemm1(32), qwen3_gemm1(64), qwen3_gemm2(64), qwen3_gemm1(128), qwen3_gemm2(128),
                            deepseek_ep8_gemm1(64), deepseek_ep8_gemm2(64), deepseek_ep8_gemm1(128),
                            deepseek_ep8_gemm2(128), deepseek_ep8_gemm1(256), deepseek_ep8_gemm2(256), mixtral_gemm1(8),
                            mixtral_gemm2(8), mixtral_gemm1(16), mixtral_gemm2(16)}) {
    EXPECT_EQ(select_config(input).name(), "64x16_stream");
  }
  // 32-row chunks from 10 to 26 rows (bench/NOTES.md §78): Qwen3 at 192-384 tokens, DeepSeek-V3 EP8 GEMM2 at 384-768,
  // Mixtral GEMM2 (K of 112 groups) at 48-64, while an expert's rows fit one chunk (§98).
  for (auto const& input : {qwen3_gemm1(192), qwen3_gemm2(192), qwen3_gemm1(384), qwen3_gemm2(384),
                            deepseek_ep8_gemm2(384), deepseek_ep8_gemm2(768), mixtral_gemm2(48), mixtral_gemm2(64)}) {
    EXPECT_EQ(select_config(input).name(), "64x32_stream");
  }
  // CUTLASS past 26 rows (Qwen3 at 512 tokens, Mixtral GEMM2 at 128), and past 10 for large experts of short K, whose
  // 256-channel tiles read faster than the 32-row chunks (Mixtral GEMM1 at 48-96 tokens, DeepSeek-V3 EP8 GEMM1 at
  // 384-768), and for long K past one chunk's rows (Mixtral GEMM2 at 96 tokens, §98).
  for (auto const& input : {qwen3_gemm1(512), qwen3_gemm2(512), mixtral_gemm2(128), mixtral_gemm1(48),
                            mixtral_gemm1(96), deepseek_ep8_gemm1(384), deepseek_ep8_gemm1(768), mixtral_gemm2(96)}) {
    Schedule const schedule = select_config(input).schedule;
    EXPECT_TRUE(schedule == Schedule::kCooperative || schedule == Schedule::kPingpong) << select_config(input).name();
  }
}

// Long K (Mixtral GEMM2, 112 groups): 256-channel cooperative tiles from the streaming kernel's ~20 to 48 rows per
// expert once 128-channel tiles overfill a wave (H100 and H200 sweeps, bench/NOTES.md §9g, §98); below, the streaming
// kernel where it needs no K split (§48, §57, §78), its split-K config where it does (§61).
TEST(Heuristic, LongKTakesCooperative256ChannelTiles) {
  EXPECT_EQ(select_config(mixtral_gemm2(2)).name(), "64x8_splitk_stream");  // ~3 experts: K split in blocks
  EXPECT_EQ(select_config(mixtral_gemm2(4)).name(), "64x8_stream");       // ~5 experts, 1.75 rows
  EXPECT_EQ(select_config(mixtral_gemm2(8)).name(), "64x16_stream");      // ~7 experts, 2.4 rows
  EXPECT_EQ(select_config(mixtral_gemm2(32)).name(), "64x16_stream");     // 8 rows per expert
  EXPECT_EQ(select_config(mixtral_gemm2(64)).name(), "64x32_stream");     // 16
  EXPECT_EQ(select_config(mixtral_gemm2(80)).name(), "64x32_stream");     // 20: 31 rows at 2.5 sd, one chunk
  EXPECT_EQ(select_config(mixtral_gemm2(96)).name(), "256x64_1x1_coop");  // 24: 36, past one chunk
  EXPECT_EQ(select_config(mixtral_gemm2(128)).name(), "256x64_1x1_coop");  // 32
  EXPECT_EQ(select_config(mixtral_gemm2(512)).name(), "128x128_2x1_pp");   // 128: past the rule
}

TEST(Heuristic, SkewHintsMoveTowardsLargerTiles) {
  auto input = qwen3_gemm1(16);  // 128 rows: ~81 experts with 1-2 rows each
  EXPECT_EQ(select_config(input).tile_n, 8);
  input.max_rows_per_expert = 100;  // one hot expert holds most rows
  EXPECT_GT(select_config(input).tile_n, 16);
}

TEST(Heuristic, EveryChoiceIsRegistered) {
  for (auto const& make : {qwen3_gemm1, qwen3_gemm2, mixtral_gemm1, mixtral_gemm2, deepseek_ep8_gemm1,
                           deepseek_ep8_gemm2}) {
    for (int64_t tokens : {1, 4, 16, 64, 128, 512, 1024, 4096, 8192}) {
      auto const config = select_config(make(tokens));
      EXPECT_NE(find_gemm_kernel(config.name()), nullptr) << config.name();
    }
  }
}

// The exact-scale layout's chunk sizes by rows per expert, and only its own configs.
TEST(Heuristic, ExactLayoutChunksGrowWithRowsPerExpert) {
  auto pick = [](int64_t rows_per_expert) {
    HeuristicInput input;
    input.n = 1536;
    input.k = 2048;
    input.num_experts = 128;
    input.rows_per_expert.assign(128, rows_per_expert);
    return select_exact_config(input).name();
  };
  EXPECT_EQ(pick(1), "64x8_exact");
  EXPECT_EQ(pick(7), "64x8_exact");
  EXPECT_EQ(pick(8), "64x16_exact");
  EXPECT_EQ(pick(14), "64x16_exact");
  EXPECT_EQ(pick(15), "64x32_exact");
  EXPECT_EQ(pick(28), "64x32_exact");
  EXPECT_EQ(pick(29), "64x48_exact");
  EXPECT_EQ(pick(48), "64x48_exact");
  EXPECT_EQ(pick(49), "128x128_exact");
  EXPECT_EQ(pick(4096), "128x128_exact");
  for (int64_t rows : {1, 8, 32, 512}) {
    auto const* entry = find_gemm_kernel(pick(rows));
    ASSERT_NE(entry, nullptr);
    EXPECT_EQ(entry->config.layout(), PackedLayout::kExactScales);
  }
  for (auto const& name : gemm_config_names(PackedLayout::kExactScales)) {
    EXPECT_EQ(find_gemm_kernel(name)->config.schedule, Schedule::kExact) << name;
  }
  for (auto const& name : gemm_config_names()) {
    EXPECT_NE(find_gemm_kernel(name)->config.schedule, Schedule::kExact) << name;
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
  EXPECT_EQ((GemmConfig{16, 8, 1, 1, Schedule::kDecode}.name()), "16x8_1x1_decode");
  EXPECT_EQ((GemmConfig{64, 8, 1, 1, Schedule::kStream}.name()), "64x8_stream");
  EXPECT_EQ((GemmConfig{128, 64, 1, 1, Schedule::kExact}.name()), "128x64_exact");
}

// The MoE layer's one-block routing fills per-expert arrays only for configs that read them: not the streaming
// kernels.
TEST(Registry, OnlyCutlassConfigsReadExpertArrays) {
  GroupedGemmArgs args;
  args.shape = {8, 256, 256, kGroupSize};
  for (auto const& entry : gemm_registry()) {
    args.config = entry.name;
    Schedule const schedule = entry.config.schedule;
    bool const cutlass = schedule == Schedule::kCooperative || schedule == Schedule::kPingpong;
    EXPECT_EQ(reads_expert_arrays(args), cutlass) << entry.name;
  }
  args.config = "16x8_1x1_decode";
  EXPECT_FALSE(reads_expert_arrays(args));
  args.config = "64x8_stream";
  EXPECT_FALSE(reads_expert_arrays(args));
}

}  // namespace
}  // namespace w4a8moe::gemm
