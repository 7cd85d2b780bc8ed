// moe_forward's plans remembered per call shape: the same plan as plan_moe, one entry per distinct arguments, safe
// from several threads, and bounded.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "moe/plan_cache.h"

namespace w4a8moe::moe {
namespace {

MoeShape const kQwen3{128, 128, 8, 2048, 768};
MoeShape const kDeepSeekEp8{256, 32, 8, 7168, 2048};

void expect_same_plan(MoePlan const& a, MoePlan const& b) {
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.one_launch, b.one_launch);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.expected_local_rows, b.expected_local_rows);
  EXPECT_EQ(a.workspace.total, b.workspace.total);
  EXPECT_EQ(a.workspace.gemm2_out, b.workspace.gemm2_out);
  EXPECT_EQ(a.one_block_routing, b.one_block_routing);
  EXPECT_EQ(a.gemm1.config, b.gemm1.config);
  EXPECT_EQ(a.gemm1.arrays_from_routing, b.gemm1.arrays_from_routing);
  EXPECT_EQ(a.gemm2.config, b.gemm2.config);
  EXPECT_EQ(a.gemm2.shape.n, b.gemm2.shape.n);
  EXPECT_EQ(a.group_sums, b.group_sums);
}

TEST(PlanCache, RemembersThePlanOfEachDistinctCall) {
  MoePlanOptions exact;
  exact.layout = PackedLayout::kExactScales;
  MoePlanOptions forced;
  forced.gemm1_config = "128x16_1x1_coop";
  for (MoeShape const& shape : {kQwen3, kDeepSeekEp8}) {
    for (int64_t tokens : {1, 5, 16, 128, 8192}) {
      for (MoePlanOptions const& options : {MoePlanOptions{}, exact, forced}) {
        SCOPED_TRACE(std::to_string(shape.num_experts) + " experts, " + std::to_string(tokens) + " tokens");
        expect_same_plan(remembered_plan_moe(shape, tokens, 0, options), plan_moe(shape, tokens, 0, options));
        size_t const count = remembered_plan_count();
        expect_same_plan(remembered_plan_moe(shape, tokens, 0, options), plan_moe(shape, tokens, 0, options));
        EXPECT_EQ(remembered_plan_count(), count) << "the second call is remembered";
      }
    }
  }
  // What differs in any argument is a plan of its own: the workspace of max_tokens, the caller's config.
  MoePlan const small = remembered_plan_moe(kQwen3, 16, 0, {});
  MoePlan const large = remembered_plan_moe(kQwen3, 16, 8192, {});
  EXPECT_LT(small.workspace.total, large.workspace.total);
  EXPECT_EQ(remembered_plan_moe(kQwen3, 16, 0, forced).gemm1.config, "128x16_1x1_coop");
  EXPECT_NE(remembered_plan_moe(kQwen3, 16, 0, {}).gemm1.config, "128x16_1x1_coop");
}

TEST(PlanCache, ThreadsGetTheSamePlans) {
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &mismatches] {
      for (int64_t tokens = 1; tokens <= 200; ++tokens) {
        MoePlan const plan = remembered_plan_moe(t % 2 ? kQwen3 : kDeepSeekEp8, tokens, 256, {});
        MoePlan const fresh = plan_moe(t % 2 ? kQwen3 : kDeepSeekEp8, tokens, 256, {});
        if (plan.gemm1.config != fresh.gemm1.config || plan.workspace.total != fresh.workspace.total ||
            plan.one_launch != fresh.one_launch) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(PlanCache, ForgetsAllPastItsBound) {
  for (int64_t tokens = 1; tokens <= int64_t(kMaxRememberedPlans) + 10; ++tokens) {
    remembered_plan_moe(kQwen3, tokens, 0, {});
    ASSERT_LE(remembered_plan_count(), kMaxRememberedPlans);
  }
  expect_same_plan(remembered_plan_moe(kQwen3, 3, 0, {}), plan_moe(kQwen3, 3, 0, {}));
}

}  // namespace
}  // namespace w4a8moe::moe
