// The launch plans of the streaming kernels: chunk counts, grid, the K split over clusters, spreading small grids.
#include <gtest/gtest.h>

#include "gemm/stream_plan.h"

namespace w4a8moe::gemm {
namespace {

constexpr int kSms = 132;
constexpr int kBlocksPerSm = 4;
constexpr size_t kRing = 4096;

StreamLaunchPlan plan(int experts, int n, int k, int64_t rows, int64_t expected_rows = 0, int chunk_rows = 8) {
  return plan_stream_launch({experts, n, k, 128}, rows, expected_rows > 0 ? expected_rows : rows, kSms, chunk_rows,
                            kBlocksPerSm, kRing);
}

// Mixtral-8x7B's and DeepSeek-V3's GEMM1 (32 and 56 groups) and Mixtral's GEMM2 (112) take the one copy; Qwen3-30B's
// GEMMs (16 and 6) and DeepSeek-V3's GEMM2 (16) the four.
TEST(StreamPlan, WeightsInOneTensorCopyFromThirtyTwoGroups) {
  for (int groups : {1, 6, 16, 31}) EXPECT_FALSE(gemm::weights_in_one_tensor_copy(groups)) << groups;
  for (int groups : {32, 56, 112}) EXPECT_TRUE(gemm::weights_in_one_tensor_copy(groups)) << groups;
}

TEST(StreamPlan, ChunksOnePerActiveExpertPlusFullChunks) {
  EXPECT_EQ(max_chunks(8, 128, 8), 8);    // 8 rows over 128 experts: at most 8 experts, one chunk each
  EXPECT_EQ(max_chunks(8, 8, 8), 8);      // never a ninth, empty chunk
  EXPECT_EQ(max_chunks(40, 4, 8), 8);     // 4 partial chunks + 36 / 8 full ones
  EXPECT_EQ(max_chunks(0, 4, 8), 0);
  EXPECT_EQ(grid_chunks(0, 0, 4, 8), 1);
  EXPECT_EQ(grid_chunks(1000, 8, 128, 8), 16);      // twice the expected chunks, at least 16
  EXPECT_EQ(grid_chunks(1 << 24, 1 << 24, 4, 8), 65535);
}

TEST(StreamPlan, SplitsKOnlyWhenTheTilesCannotFillTheSms) {
  // DeepSeek-V3 GEMM1 on an expert-parallel rank at 1 token: 1 expected expert x 64 tiles: 8 K slices.
  auto p = plan(32, 4096, 7168, 8, 1);
  EXPECT_EQ(p.tiles, 64);
  EXPECT_EQ(p.splits, 8);
  EXPECT_FALSE(p.persistent);
  // Qwen3-30B-A3B GEMM1 at 1 token: 8 experts x 24 tiles = 192 blocks; 2 slices fill 384 of 528 slots.
  EXPECT_EQ(plan(128, 1536, 2048, 8).splits, 2);
  // At 16 tokens (128 rows, ~81 experts) the tiles alone fill the SMs.
  EXPECT_EQ(plan(128, 1536, 2048, 128).splits, 1);
  // Each slice keeps at least two 128-K groups: K = 768 (6 groups) splits in 2, K = 384 not at all ...
  EXPECT_EQ(plan(128, 2048, 768, 8).splits, 2);
  EXPECT_EQ(plan(128, 2048, 384, 8).splits, 1);
  // ... and a cluster has at most 8 blocks.
  EXPECT_EQ(plan(1, 64, 16384, 1).splits, 8);
}

TEST(StreamPlan, SplitsOnlyAsFarAsEveryClusterStaysResident) {
  // Mixtral-8x7B GEMM2 at 1 token: 2 experts x 64 tiles, K = 112 groups. Counting every slot, 4 slices (512 blocks of
  // 528); but 124 clusters of 4 fit at once (496 blocks): the last 4 would run after the others, so 2 slices.
  ExpertWeightShape const mixtral_down{8, 4096, 14336, 128};
  EXPECT_EQ(plan_stream_launch(mixtral_down, 2, 2, kSms, 8, kBlocksPerSm, kRing).splits, 4);
  ClusterResidency residency;
  residency.blocks_in_clusters_of[2] = 528;
  residency.blocks_in_clusters_of[4] = 496;
  residency.blocks_in_clusters_of[8] = 448;
  EXPECT_EQ(plan_stream_launch(mixtral_down, 2, 2, kSms, 8, kBlocksPerSm, kRing, 64, 8, residency).splits, 2);
  // DeepSeek-V3 GEMM1 at 1 token: 64 tiles in 8 slices are 512 blocks, more than 448: 4 slices.
  ExpertWeightShape const deepseek_up{32, 4096, 7168, 128};
  EXPECT_EQ(plan_stream_launch(deepseek_up, 8, 1, kSms, 8, kBlocksPerSm, kRing, 64, 8, residency).splits, 4);
  // An unknown size (0) counts every slot.
  residency.blocks_in_clusters_of[8] = 0;
  EXPECT_EQ(plan_stream_launch(deepseek_up, 8, 1, kSms, 8, kBlocksPerSm, kRing, 64, 8, residency).splits, 8);
}

TEST(StreamPlan, PersistentWorkersForShortItemsOrAtMostTwoBlocksAnSm) {
  // Qwen3-30B-A3B GEMM2 (6 groups) at 16 tokens: up to 128 chunks x 32 tiles, many per block: one wave of persistent
  // workers and no shared memory beyond the ring (the wave fills every SM).
  auto const p = plan(128, 2048, 768, 128);
  EXPECT_TRUE(p.persistent);
  EXPECT_EQ(p.workers, kSms * kBlocksPerSm);
  EXPECT_EQ(p.blocks, p.workers);
  EXPECT_EQ(p.shared_bytes, kRing);
  // Qwen3 GEMM1 (16 groups) at 4 tokens: 32 chunks x 24 tiles is 1.45 items per worker, too few to deal evenly.
  EXPECT_FALSE(plan(128, 1536, 2048, 32).persistent);
  EXPECT_TRUE(plan(128, 1536, 2048, 128).persistent);
  // Mixtral GEMM1 (32 groups): never, however many items ...
  EXPECT_FALSE(plan(8, 28672, 4096, 1024).persistent);
  // ... but always with at most two blocks an SM (no third block covers the gap a block leaves when it ends):
  // Mixtral GEMM1 at 1024 tokens on 128-row chunks of 128-channel tiles, one block an SM.
  auto const wide = plan_stream_launch({8, 28672, 4096, 128}, 2048, 2048, kSms, 128, 1, kRing, 128, 1);
  EXPECT_TRUE(wide.persistent);
  EXPECT_EQ(wide.workers, kSms);
  EXPECT_EQ(wide.blocks, kSms);
  EXPECT_TRUE(plan_stream_launch({8, 28672, 4096, 128}, 2048, 2048, kSms, 64, 2, kRing).persistent);
  EXPECT_FALSE(plan_stream_launch({8, 28672, 4096, 128}, 2048, 2048, kSms, 48, 3, kRing).persistent);
  // Too few items for a static deal either way (1.5 per worker): DeepSeek-V3 EP8 GEMM1 at 1 token, 32 tiles.
  EXPECT_FALSE(plan_stream_launch({32, 4096, 7168, 128}, 1, 1, kSms, 128, 1, kRing, 128, 1).persistent);
  // One item per block otherwise: at 1 token, 8 chunks x 24 tiles in two K slices; the grid covers up to 16 chunks,
  // and the 384 blocks with work are spread at most 3 to an SM.
  auto const q = plan(128, 1536, 2048, 8);
  EXPECT_FALSE(q.persistent);
  EXPECT_EQ(q.workers, 8 * 24);
  EXPECT_EQ(q.blocks, 8 * 24 * 2);
  EXPECT_GT(4 * q.shared_bytes, kSharedMemoryPerSm);
  EXPECT_LE(3 * q.shared_bytes, kSharedMemoryPerSm);
}

TEST(StreamPlan, GridCoversUniformRoutingWhereTheBoundOvercounts) {
  // gpt-oss-120b at 1024 tokens (4096 rows, 128 experts, ~32 rows each) on 48-row chunks: one chunk an expert under
  // uniform routing (32 + 2.5 sqrt(32) < 48), where the bound counts 128 + 3968 / 48 = 210.
  EXPECT_EQ(uniform_routing_chunks(4096, 128, 48), 128);
  EXPECT_EQ(max_chunks(4096, 128, 48), 210);
  auto const gpt_oss = plan_stream_launch({128, 5760, 2944, 128}, 4096, 4096, kSms, 48, 3, kRing);
  EXPECT_FALSE(gpt_oss.persistent);
  EXPECT_EQ(gpt_oss.workers, 128 * 90);
  // At 2048 tokens (64 rows an expert: two chunks) uniform routing's 256 is over 3/4 of the bound's 296: kept.
  EXPECT_EQ(uniform_routing_chunks(8192, 128, 48), 256);
  EXPECT_EQ(plan_stream_launch({128, 5760, 2944, 128}, 8192, 8192, kSms, 48, 3, kRing).workers, 296 * 90);
  // Few large experts (Mixtral at 1024 tokens, 256 rows each): 56 against the bound's 50, kept.
  EXPECT_EQ(uniform_routing_chunks(2048, 8, 48), 56);
  EXPECT_EQ(plan_stream_launch({8, 28672, 4096, 128}, 2048, 2048, kSms, 48, 3, kRing).workers, 50 * 448);
  // Fewer rows than experts: a chunk a row, as the bound counts; gpt-oss at 128 tokens on 8-row chunks (4 rows an
  // expert, 4 + 2.5 * 2 > 8): 256 against the bound's 176, kept.
  EXPECT_EQ(uniform_routing_chunks(8, 128, 8), 8);
  EXPECT_EQ(uniform_routing_chunks(512, 128, 8), 256);
  EXPECT_EQ(uniform_routing_chunks(0, 128, 8), 1);
}

TEST(StreamPlan, GridOfAWaveWhereTheExpectedChunksFitInOne) {
  // DeepSeek-V3 GEMM1 on an expert-parallel rank at 4 tokens: 32 rows could be local, 4 are expected. 16 chunks of 64
  // tiles in pairs of K slices were 2048 blocks (3.9 waves, most of them finding no chunk); now the 512 of one wave.
  auto const ep_rank = plan(32, 4096, 7168, 32, 4);
  EXPECT_EQ(ep_rank.splits, 2);
  EXPECT_FALSE(ep_rank.persistent);
  EXPECT_EQ(ep_rank.blocks, 512);
  EXPECT_LE(ep_rank.blocks, int64_t(kSms) * kBlocksPerSm);
  // Expected chunks past a wave keep their blocks: Mixtral-8x7B GEMM1 at 16 tokens, 11 chunks of 448 tiles.
  EXPECT_EQ(plan(8, 28672, 4096, 32).workers, 11 * 448);
}

TEST(StreamPlan, SpreadsGridsOfLessThanAWave) {
  // 64 working blocks on 132 SMs: one per SM, so the shared memory leaves room for one block only.
  size_t const bytes = spread_shared_bytes(64, kSms, kBlocksPerSm, kRing);
  EXPECT_GT(2 * bytes, kSharedMemoryPerSm);
  // A full wave needs no spreading: the ring alone.
  EXPECT_EQ(spread_shared_bytes(int64_t(kSms) * kBlocksPerSm, kSms, kBlocksPerSm, kRing), kRing);
  // Two blocks per SM wanted: room for two, not three.
  size_t const two = spread_shared_bytes(2 * kSms, kSms, kBlocksPerSm, kRing);
  EXPECT_LE(2 * two, kSharedMemoryPerSm);
  EXPECT_GT(3 * two, kSharedMemoryPerSm);
}

TEST(StreamPlan, DealsItemsPerSmWhereUnsplitWithAnItemAnSm) {
  constexpr size_t kSmBlock = 4 * kRing;
  // DeepSeek-V3 EP8 GEMM1 at 16 tokens: up to 16 chunks x 64 tiles, K unsplit; one block an SM of four workers,
  // with more than half an SM's shared memory so that no SM takes two.
  auto const deepseek = deal_per_sm(plan(32, 4096, 7168, 16), kSms, kBlocksPerSm, kSmBlock);
  EXPECT_EQ(deepseek.items, 16 * 64);
  EXPECT_EQ(deepseek.splits, 1);
  EXPECT_TRUE(deepseek.persistent);
  EXPECT_EQ(deepseek.workers_per_block, kBlocksPerSm);
  EXPECT_EQ(deepseek.blocks, kSms);
  EXPECT_EQ(deepseek.workers, kSms * kBlocksPerSm);
  EXPECT_GT(2 * deepseek.shared_bytes, kSharedMemoryPerSm);
  // The rings' bytes where they are more.
  size_t const large = kSharedMemoryPerSm - 8 * 1024;
  EXPECT_EQ(deal_per_sm(plan(32, 4096, 7168, 16), kSms, kBlocksPerSm, large).shared_bytes, large);
  // Unchanged: K split (DeepSeek-V3 at 1 token), a kernel of one worker a block, fewer items than SMs (two groups do
  // not split; 2 chunks x 16 tiles).
  auto const split = plan(32, 4096, 7168, 8, 1);
  ASSERT_GT(split.splits, 1);
  EXPECT_EQ(deal_per_sm(split, kSms, kBlocksPerSm, kSmBlock).workers_per_block, 1);
  EXPECT_EQ(deal_per_sm(split, kSms, kBlocksPerSm, kSmBlock).blocks, split.blocks);
  EXPECT_EQ(deal_per_sm(plan(32, 4096, 7168, 16), kSms, 1, kSmBlock).workers_per_block, 1);
  auto const few = plan(8, 1024, 256, 2);
  ASSERT_EQ(few.splits, 1);
  ASSERT_EQ(few.items, 32);
  EXPECT_EQ(deal_per_sm(few, kSms, kBlocksPerSm, kSmBlock).workers_per_block, 1);
  EXPECT_EQ(deal_per_sm(few, kSms, kBlocksPerSm, kSmBlock).blocks, few.blocks);
}

TEST(StreamPlan, WorkerLaunchSplitsKOnlyWithOneWarpgroupAndDealsWhereABlockHoldsSeveral) {
  constexpr size_t kSmBlock = 4 * kRing;
  ExpertWeightShape const deepseek_up{32, 4096, 7168, 128};
  // One warpgroup, 64-channel items: at 1 token K is split over clusters as plan_stream_launch splits it, and the
  // split plan is not dealt.
  auto const split = plan_worker_launch(deepseek_up, 8, 1, kSms, 8, 1, kBlocksPerSm, kRing, kBlocksPerSm, kSmBlock);
  EXPECT_EQ(split.tiles, 64);
  EXPECT_EQ(split.splits, plan(32, 4096, 7168, 8, 1).splits);
  EXPECT_GT(split.splits, 1);
  EXPECT_EQ(split.workers_per_block, 1);
  // At 16 tokens, unsplit with an item an SM: dealt per SM, as deal_per_sm deals plan_stream_launch's plan.
  auto const dealt = plan_worker_launch(deepseek_up, 16, 16, kSms, 8, 1, kBlocksPerSm, kRing, kBlocksPerSm, kSmBlock);
  EXPECT_EQ(dealt.workers_per_block, kBlocksPerSm);
  EXPECT_EQ(dealt.blocks, kSms);
  EXPECT_EQ(dealt.shared_bytes, deal_per_sm(plan(32, 4096, 7168, 16), kSms, kBlocksPerSm, kSmBlock).shared_bytes);
  // A kernel that holds one worker a block is never dealt.
  EXPECT_EQ(plan_worker_launch(deepseek_up, 16, 16, kSms, 8, 1, kBlocksPerSm, kRing, 1, kRing).workers_per_block, 1);
  // Two warpgroups: 128-channel items, and K is never split, however few the items.
  auto const wide = plan_worker_launch(deepseek_up, 8, 1, kSms, 128, 2, 1, kRing, 1, kRing);
  EXPECT_EQ(wide.tiles, 32);
  EXPECT_EQ(wide.splits, 1);
  EXPECT_EQ(wide.workers_per_block, 1);
}

TEST(StreamPlan, SplitKConfigsTakeTheSlicesAsTheWorkersOfOneBlock) {
  constexpr size_t kSmBlock = 4 * kRing + 8 * 1024;
  // Mixtral-8x7B GEMM2 at 1 token: clusters would split K in 4 (2 where they cannot all stay resident); in one block
  // an SM its four workers are the slices of one item each: 128 items, one block an item, no cluster.
  ExpertWeightShape const mixtral_down{8, 4096, 14336, 128};
  auto const clusters = plan_worker_launch(mixtral_down, 2, 2, kSms, 8, 1, kBlocksPerSm, kRing, kBlocksPerSm, kSmBlock);
  ASSERT_EQ(clusters.splits, 4);
  auto const in_block = split_k_in_block(clusters, 112, kBlocksPerSm, kSmBlock);
  EXPECT_EQ(in_block.splits, 1);
  EXPECT_EQ(in_block.block_splits, kBlocksPerSm);
  EXPECT_EQ(in_block.workers_per_block, kBlocksPerSm);
  EXPECT_EQ(in_block.items, 128);
  EXPECT_EQ(in_block.blocks, clusters.workers);
  EXPECT_GE(in_block.blocks, in_block.items);
  EXPECT_GT(2 * in_block.shared_bytes, kSharedMemoryPerSm);  // one block an SM
  EXPECT_GE(in_block.shared_bytes, kSmBlock);
  // Short K (Qwen3 GEMM2 at 1 token: 2 slices of 3 groups): a block an item; split plans are never persistent.
  auto const short_k = plan_worker_launch({128, 2048, 768, 128}, 8, 8, kSms, 8, 1, kBlocksPerSm, kRing, kBlocksPerSm,
                                          kSmBlock);
  ASSERT_GT(short_k.splits, 1);
  EXPECT_FALSE(short_k.persistent);
  EXPECT_EQ(split_k_in_block(short_k, 6, kBlocksPerSm, kSmBlock).blocks, short_k.workers);
  EXPECT_EQ(split_k_in_block(short_k, 6, kBlocksPerSm, kSmBlock).blocks, short_k.items);
  // Dealt per SM (Mixtral GEMM2 at 16 tokens, 512 items): the same block an SM and the same items, each now split K
  // over the block's four workers, so the grid's workers are its blocks.
  auto const dealt = plan_worker_launch(mixtral_down, 32, 32, kSms, 8, 1, kBlocksPerSm, kRing, kBlocksPerSm, kSmBlock);
  ASSERT_EQ(dealt.splits, 1);
  ASSERT_EQ(dealt.workers_per_block, kBlocksPerSm);
  auto const dealt_slices = split_k_in_block(dealt, 112, kBlocksPerSm, kSmBlock);
  EXPECT_EQ(dealt_slices.splits, 1);
  EXPECT_EQ(dealt_slices.block_splits, kBlocksPerSm);
  EXPECT_EQ(dealt_slices.workers_per_block, kBlocksPerSm);
  EXPECT_TRUE(dealt_slices.persistent);
  EXPECT_EQ(dealt_slices.items, dealt.items);
  EXPECT_EQ(dealt_slices.blocks, kSms);
  EXPECT_EQ(dealt_slices.workers, kSms);
  EXPECT_GE(dealt_slices.shared_bytes, kSmBlock);
  // Fewer groups than workers (K = 384) would leave a worker without a share of its items: as it was.
  auto const three_groups = plan_worker_launch({8, 4096, 384, 128}, 512, 512, kSms, 8, 1, kBlocksPerSm, kRing,
                                               kBlocksPerSm, kSmBlock);
  ASSERT_EQ(three_groups.workers_per_block, kBlocksPerSm);
  EXPECT_EQ(split_k_in_block(three_groups, 3, kBlocksPerSm, kSmBlock).block_splits, 1);
  // One unsplit item a block (2 rows of K = 256: 32 items, too few to deal, of 2 groups, too few to split) stays as
  // it is, and so does a kernel of one worker a block.
  auto const single = plan_worker_launch({16, 1024, 256, 128}, 2, 2, kSms, 8, 1, kBlocksPerSm, kRing, kBlocksPerSm,
                                         kSmBlock);
  ASSERT_EQ(single.workers_per_block, 1);
  ASSERT_EQ(single.splits, 1);
  EXPECT_EQ(split_k_in_block(single, 2, kBlocksPerSm, kSmBlock).block_splits, 1);
  EXPECT_EQ(split_k_in_block(single, 2, kBlocksPerSm, kSmBlock).blocks, single.blocks);
  EXPECT_EQ(split_k_in_block(clusters, 112, 1, kSmBlock).splits, clusters.splits);
}

// The decode kernel's grid: 8 warps a block, 3 blocks per SM (one token tile).
TEST(DecodePlan, SplitsKToFillAWaveAndSpreadsSmallGrids) {
  // Qwen3 GEMM1 at 1 token: 8 experts x 96 stripes, 16 groups -> 4 splits, 2 stripes a block, 48 x 8 blocks (a
  // full wave of 3 per SM: no spreading).
  auto const qwen3 = plan_decode_launch({128, 1536, 2048, 128}, 8, 8, kSms, 8, 8, 3);
  EXPECT_EQ(qwen3.splits, 4);
  EXPECT_EQ(qwen3.stripes_per_block, 2);
  EXPECT_EQ(qwen3.grid_x, 48);
  EXPECT_EQ(qwen3.grid_y, 8);
  EXPECT_EQ(qwen3.shared_bytes, 0u);
  // DeepSeek-V3 EP8 GEMM1 at 1 token: one expert's 256 stripes over 56 groups -> 8 splits, one stripe a block;
  // 256 blocks are two per SM, so the shared memory leaves room for two, not three.
  auto const deepseek = plan_decode_launch({32, 4096, 7168, 128}, 1, 1, kSms, 8, 8, 3);
  EXPECT_EQ(deepseek.splits, 8);
  EXPECT_EQ(deepseek.stripes_per_block, 1);
  EXPECT_EQ(deepseek.grid_x, 256);
  EXPECT_EQ(deepseek.grid_y, 1);
  EXPECT_LE(2 * deepseek.shared_bytes, kSharedMemoryPerSm);
  EXPECT_GT(3 * deepseek.shared_bytes, kSharedMemoryPerSm);
  // Where the expected chunks fit in a wave, the grid is at most that wave (one chunk row here, where 8 could hold
  // rows); the blocks loop over the rest.
  EXPECT_EQ(plan_decode_launch({32, 4096, 7168, 128}, 8, 1, kSms, 8, 8, 3).grid_y, 1);
  // More rows than a wave's (a rank expecting 4 where 40 could come: 4 chunk rows of 128 blocks pass the 396 slots):
  // the grid covers at least 16 chunks, and the blocks loop over the rest.
  auto const more = plan_decode_launch({32, 4096, 7168, 128}, 40, 4, kSms, 8, 8, 3);
  EXPECT_EQ(more.grid_y, 16);
}

// A row of blocks wider than a wave (one SM, one block an SM: 8 blocks of 8 stripes): one expected chunk still caps the
// grid at one chunk row, as the wgmma kernel's plan does (chunks_capped_at_a_wave counts such a wave as one row).
TEST(DecodePlan, OneChunkRowWhereARowOfBlocksPassesAWave) {
  auto const plan = plan_decode_launch({8, 1024, 1024, 128}, 64, 1, 1, 8, 8, 1);
  EXPECT_GT(plan.grid_x, 1);
  EXPECT_EQ(plan.grid_y, 1);
}

// The decode kernel lets the next kernel launch as it starts only after the layer's routing (offsets_before_wait) and
// where the rank expects at most two rows: DeepSeek-V3 EP8 at 1-2 tokens, not Qwen3-30B-A3B's 8 rows at 1 token, and
// never in a GEMM of its own (the kernel before it may be anything).
TEST(DecodePlan, NextKernelLaunchesEarlyOnlyAfterTheRoutingForFewRows) {
  EXPECT_TRUE(decode_launches_next_early(true, 0));
  EXPECT_TRUE(decode_launches_next_early(true, 1));
  EXPECT_TRUE(decode_launches_next_early(true, kEarlyLaunchExpectedRows));
  EXPECT_FALSE(decode_launches_next_early(true, kEarlyLaunchExpectedRows + 1));
  EXPECT_FALSE(decode_launches_next_early(true, 8));
  EXPECT_FALSE(decode_launches_next_early(false, 1));
}

TEST(StripeKSplits, FillAWaveAndCapTheGroupsAWarpStreams) {
  int64_t const wave = 132 * 2 * 8;  // 2112 warps: the one-launch layer's grid on 132 SMs
  // Qwen3 at 1 token, 8 experts. GEMM1: 8 x 48 gate/up pairs over 16 groups -> 4 splits (1536 warps, 4 groups each).
  EXPECT_EQ(stripe_k_splits(8 * 48, 16, wave), 4);
  // GEMM2: 8 x 128 stripes over 6 groups -> 2 splits (2048 warps).
  EXPECT_EQ(stripe_k_splits(8 * 128, 6, wave), 2);
  // Mixtral GEMM2 at 1 token, 2 experts x 256 stripes over 112 groups: a wave at 4 splits, but 28 groups a warp
  // is too long a chain: 8 splits (14 groups).
  EXPECT_EQ(stripe_k_splits(2 * 256, 112, wave), 8);
  // Many items: no split; at most one warp per group; never more than the block's warps.
  EXPECT_EQ(stripe_k_splits(8 * 1024, 16, wave), 1);
  EXPECT_EQ(stripe_k_splits(1, 2, wave), 2);
  EXPECT_EQ(stripe_k_splits(1, 1024, wave), 8);
}

}  // namespace
}  // namespace w4a8moe::gemm
