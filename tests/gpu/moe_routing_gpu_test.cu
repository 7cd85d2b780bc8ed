// The routing kernels on the GPU against the CPU reference, bit for bit: the router's top-k (weights within float
// rounding), the router fused with the sort and apart from it on both sides of each limit, the sort of given ids
// through the public entry point (moe_routing) in one block and in chunks, with and without an expert map.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gpu_test_util.h"
#include "moe/moe_kernels.h"
#include "moe_test_layer.h"  // fresh_rng
#include "reference/moe_reference.h"
#include "w4a8moe/moe.h"

namespace w4a8moe {
namespace {

using testing::DeviceBuffer;
using testing::fresh_rng;

// Top-k weights, relative. Both sides compute in float: expf (GPU, 2 ulp) against std::exp, and the 128-term sum in
// a tree (warp shuffles) against a sequential sum, whose rounding error alone can reach tens of ulp. The earlier
// bound, 1e-6 (about 8 ulp), failed about one run in three on the H100. 64 ulp (2^-17); a wrong expert or a wrong
// normalisation is off by percent.
constexpr float kSoftmaxWeightTolerance = 7.7e-6f;

TEST(MoeRouting, TopKSoftmaxMatchesReference) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  int64_t const tokens = 500;
  int const experts = 128, k = 8;
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(size_t(tokens) * experts);
  for (auto& x : logits) x = normal(rng);
  for (int e = 0; e < experts; ++e) logits[e] = float(e % 4);  // token 0: ties everywhere
  DeviceBuffer d_logits(logits), ids(size_t(tokens) * k * 4), weights(size_t(tokens) * k * 4);
  for (bool renormalize : {true, false}) {
    moe::RoutingProblem problem;
    problem.tokens = tokens;
    problem.experts = experts;
    problem.top_k = k;
    moe::Router const router{d_logits.get(), LogitsType::kFP32, renormalize, ids.as<int32_t>(), weights.as<float>()};
    ASSERT_CUDA(moe::launch_topk_softmax(problem, router));
    ASSERT_CUDA(cudaDeviceSynchronize());
    auto const expected = reference::topk_softmax(logits, tokens, experts, k, renormalize);
    EXPECT_EQ(ids.to_host<int32_t>(), expected.ids);
    auto const got = weights.to_host<float>();
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], expected.weights[i], kSoftmaxWeightTolerance * expected.weights[i] + 1e-9f);
    }
  }
}

// The router and the sort from logits: fused into one warp's sort up to kFewRoutingSlots slots, into one block up
// to kFusedRouterTokens tokens (128 experts, 4 logits a lane) or kFusedRouterLaneLogits / 8 (256 experts), the router
// then the one-block sort up to kOneBlockRoutingSlots slots, separate kernels past it: the same ids, weights and
// routing as the reference on both sides of each limit.
TEST(MoeRouting, RouterAndSortMatchReferenceOnBothPaths) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  std::normal_distribution<float> normal(0.0f, 2.0f);
  struct Case {
    int experts, k;
    int64_t tokens;
  };
  int const few = moe::kFewRoutingSlots;
  std::vector<Case> const cases = {
      {128, 8, 1}, {128, 8, few / 8}, {128, 8, few / 8 + 1}, {128, 8, moe::kFusedRouterTokens},
      {128, 8, moe::kFusedRouterTokens + 1}, {128, 8, moe::kOneBlockRoutingSlots / 8},
      {128, 8, moe::kOneBlockRoutingSlots / 8 + 1}, {256, 8, moe::kFusedRouterLaneLogits / 8},
      {256, 8, moe::kFusedRouterLaneLogits / 8 + 1}, {256, 8, 1}, {8, 2, few / 2}, {8, 2, few / 2 + 1}};
  for (auto [experts, k, tokens] : cases) {
    for (int local : {experts, std::min(48, experts / 2)}) {
      SCOPED_TRACE("experts " + std::to_string(experts) + ", top " + std::to_string(k) + ", tokens " +
                   std::to_string(tokens) + ", local experts " + std::to_string(local));
      std::vector<float> logits(size_t(tokens) * experts);
      for (auto& x : logits) x = normal(rng);
      std::vector<int32_t> map;
      if (local < experts) {  // local id i is global expert 2i + 1
        ASSERT_LT(2 * (local - 1) + 1, experts) << "too many local experts for the map of every odd expert";
        map.assign(experts, -1);
        for (int i = 0; i < local; ++i) map[2 * i + 1] = i;
      }
      auto const topk = reference::topk_softmax(logits, tokens, experts, k, true);
      auto const expected = reference::routing_data(topk.ids, tokens, k, experts, local, map);
      size_t const slots = size_t(tokens) * k;
      DeviceBuffer d_logits(logits), d_map(map.empty() ? std::vector<int32_t>{0} : map);
      DeviceBuffer ids(slots * 4), weights(slots * 4), dest(slots * 4), row_slot(slots * 4), offsets((local + 1) * 8);
      DeviceBuffer scratch(moe_routing_workspace_bytes(MoeShape{experts, local, k, 128, 128}, tokens));
      for (auto* buffer : {&ids, &weights, &dest, &row_slot, &offsets}) {
        ASSERT_CUDA(cudaMemset(buffer->get(), 0xFF, buffer->bytes()));
      }
      moe::RoutingProblem problem;
      problem.tokens = tokens;
      problem.experts = experts;
      problem.top_k = k;
      problem.local_experts = local;
      problem.expert_map = map.empty() ? nullptr : d_map.as<int32_t>();
      problem.chunk_counts = scratch.as<int32_t>();
      problem.offsets = offsets.as<int64_t>();
      problem.dest_row = dest.as<int32_t>();
      problem.row_slot = row_slot.as<int32_t>();
      moe::Router const router{d_logits.get(), LogitsType::kFP32, true, ids.as<int32_t>(), weights.as<float>()};
      ASSERT_CUDA(moe::launch_topk_and_routing(problem, router));
      ASSERT_CUDA(cudaDeviceSynchronize());
      EXPECT_EQ(ids.to_host<int32_t>(), topk.ids);
      auto const got = weights.to_host<float>();
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], topk.weights[i], kSoftmaxWeightTolerance * topk.weights[i] + 1e-9f);
      }
      EXPECT_EQ(offsets.to_host<int64_t>(), expected.offsets);
      EXPECT_EQ(dest.to_host<int32_t>(), expected.dest_row);
      auto const rows = row_slot.to_host<int32_t>();
      EXPECT_EQ(std::vector<int32_t>(rows.begin(), rows.begin() + expected.row_slot.size()), expected.row_slot);
    }
  }
}

// Given ids, through the public entry point, all experts local and a scattered expert map of `local` of them:
// offsets, dest_row and row_slot exactly as the reference's. Out-of-range ids are dropped. The workspace is
// `reused` where given (as an earlier call left it), else a fresh one poisoned.
void expect_routing_matches_reference(int64_t tokens, int experts, int k, int local, std::mt19937_64& rng,
                                      DeviceBuffer* reused = nullptr) {
  SCOPED_TRACE("tokens " + std::to_string(tokens) + ", experts " + std::to_string(experts) + ", local " +
               std::to_string(local));
  std::vector<int32_t> ids(size_t(tokens) * k);
  std::uniform_int_distribution<int> pick(0, experts - 1);
  for (auto& id : ids) id = pick(rng);
  if (!ids.empty()) {
    ids[5 % ids.size()] = -1;
    ids[17 % ids.size()] = experts + 35;
  }
  std::vector<int32_t> map;
  if (local < experts) {  // local id i is global expert 3i
    ASSERT_LT(3 * (local - 1), experts) << "too many local experts for the map of every third expert";
    map.assign(experts, -1);
    for (int i = 0; i < local; ++i) map[3 * i] = i;
  }
  auto const expected = reference::routing_data(ids, tokens, k, experts, local, map);
  DeviceBuffer d_ids(ids), d_map(map.empty() ? std::vector<int32_t>{0} : map);
  MoeShape const shape{experts, local, k, 128, 128};
  DeviceBuffer own(reused ? 0 : moe_routing_workspace_bytes(shape, tokens)), offsets((local + 1) * 8);
  DeviceBuffer& scratch = reused ? *reused : own;
  DeviceBuffer dest(size_t(tokens) * k * 4), slots(size_t(tokens) * k * 4);
  for (auto* buffer : {&offsets, &dest, &slots}) ASSERT_CUDA(cudaMemset(buffer->get(), 0xFF, buffer->bytes()));
  if (!reused) ASSERT_CUDA(cudaMemset(scratch.get(), 0xFF, scratch.bytes()));
  MoeRoutingArgs args;  // the public entry point
  args.shape = shape;
  args.num_tokens = tokens;
  args.topk_ids = d_ids.as<int32_t>();
  args.expert_map = map.empty() ? nullptr : d_map.as<int32_t>();
  args.expert_offsets = offsets.as<int64_t>();
  args.dest_row = dest.as<int32_t>();
  args.row_slot = slots.as<int32_t>();
  args.workspace = scratch.get();
  args.workspace_bytes = scratch.bytes();
  ASSERT_OK(moe_routing(args));
  ASSERT_CUDA(cudaDeviceSynchronize());
  EXPECT_EQ(offsets.to_host<int64_t>(), expected.offsets);
  EXPECT_EQ(dest.to_host<int32_t>(), expected.dest_row);
  auto const row_slot = slots.to_host<int32_t>();
  EXPECT_EQ(std::vector<int32_t>(row_slot.begin(), row_slot.begin() + expected.row_slot.size()), expected.row_slot);
}

class MoeRoutingIds : public ::testing::TestWithParam<int64_t> {};

// One warp up to kFewRoutingSlots slots (1 and 4 tokens of 8 slots), one block up to kOneBlockRoutingSlots (5, 50, 100
// and 1024 tokens), chunks past it (1025 tokens; 3001: several chunks, the last one partial).
TEST_P(MoeRoutingIds, RoutingDataMatchesReferenceExactly) {
  SKIP_WITHOUT_HOPPER();
  static_assert(moe::kFewRoutingSlots == 4 * 8, "the tokens above straddle the few-slots limit");
  auto rng = fresh_rng();
  for (int local : {64, 20}) expect_routing_matches_reference(GetParam(), 64, 8, local, rng);
}

// The one-block routing at its largest shared memory (kOneBlockRoutingMaxExperts local experts, a full batch of
// slots), and one local expert more, which takes the chunked path.
TEST(MoeRouting, OneBlockRoutingAtItsExpertLimit) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  int const experts = 4 * moe::kOneBlockRoutingMaxExperts;
  for (int local : {moe::kOneBlockRoutingMaxExperts, moe::kOneBlockRoutingMaxExperts + 1}) {
    expect_routing_matches_reference(moe::kOneBlockRoutingSlots / 8, experts, 8, local, rng);
  }
}

// The chunked path's counts and finished-block counter are reset by its own kernels (no memset before them): calls
// on the workspace the previous call left, with new ids and as many or fewer tokens, and one without any slot.
TEST(MoeRouting, ChunkedRoutingAgainOnItsWorkspace) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  int const experts = 128, k = 8, local = 40;  // the helper's map: local id i is global expert 3i
  int64_t const tokens = moe::kOneBlockRoutingSlots / k + 500;
  DeviceBuffer scratch(moe_routing_workspace_bytes(MoeShape{experts, local, k, 128, 128}, tokens));
  ASSERT_CUDA(cudaMemset(scratch.get(), 0xFF, scratch.bytes()));
  for (int64_t t : {tokens, tokens, tokens - 300}) {
    expect_routing_matches_reference(t, experts, k, local, rng, &scratch);
  }
  // More local experts than one block routes: every call takes the chunked path, also without tokens.
  int const many = moe::kOneBlockRoutingMaxExperts + 1;
  DeviceBuffer wide(moe_routing_workspace_bytes(MoeShape{many, many, k, 128, 128}, 64));
  ASSERT_CUDA(cudaMemset(wide.get(), 0xFF, wide.bytes()));
  for (int64_t t : {int64_t(64), int64_t(0), int64_t(3)}) {
    expect_routing_matches_reference(t, many, k, many, rng, &wide);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokens, MoeRoutingIds, ::testing::Values(1, 4, 5, 50, 100, 1024, 1025, 3001),
                         [](auto const& info) { return "T" + std::to_string(info.param); });

}  // namespace
}  // namespace w4a8moe
