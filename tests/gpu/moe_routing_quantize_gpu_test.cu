// The permute + quantise in the routing's thread-block cluster (moe_kernels.h, RoutingQuantize) against the CPU
// reference and against the permute kernel it replaces, bit for bit: every local row's e4m3 bytes (zeros past H),
// its scale (times the top-k weight with the weight on the input) and the exact-scale layout's group sums, over
// poisoned buffers, from logits (the router in the routing block, and apart from it past 32 tokens) and from given
// ids, with an expert map that sends some slots to other ranks, bf16 and fp16, and tokens over 1 to 7 blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/float_formats.h"
#include "gpu_test_util.h"
#include "moe/moe_kernels.h"
#include "moe_test_layer.h"  // fresh_rng
#include "reference/moe_reference.h"
#include "w4a8moe/moe.h"

namespace w4a8moe {
namespace {

using testing::DeviceBuffer;
using testing::fresh_rng;

struct QuantizeCase {
  char const* name;
  int hidden;
  int64_t tokens;
  int experts, local, top_k;
  bool from_logits, fp16, weight_on_input, group_sums;
};

// What one path wrote: the routing and every row's quantised activations.
struct Written {
  std::vector<int32_t> dest_row;
  std::vector<uint8_t> act;
  std::vector<float> scales, sums;
};

// The routing, then the permute kernel (quantize_blocks 0) or the routing's cluster quantising (its plan's blocks).
Written run_path(QuantizeCase const& c, DeviceBuffer const& hidden, DeviceBuffer const& logits, DeviceBuffer const& ids,
                 DeviceBuffer const& weights, DeviceBuffer const& map, bool in_cluster) {
  int64_t const slots = c.tokens * c.top_k;
  int const padded = padded_k(c.hidden), groups = padded / 128;
  int64_t const sums_stride = (slots + 3) / 4 * 4;
  DeviceBuffer router_ids(slots * 4), router_weights(slots * 4), dest(slots * 4), row_slot(slots * 4);
  DeviceBuffer offsets((c.local + 1) * 8), act(slots * padded), scales(slots * 4), sums(sums_stride * groups * 4);
  DeviceBuffer scratch(moe_routing_workspace_bytes(MoeShape{c.experts, c.local, c.top_k, 128, 128}, c.tokens));
  for (auto* b : {&router_ids, &router_weights, &dest, &row_slot, &offsets, &act, &scales, &sums}) {
    EXPECT_EQ(cudaMemset(b->get(), 0xFF, b->bytes()), cudaSuccess);  // poison: NaN scales, 0xFF bytes
  }
  moe::RoutingProblem p;
  p.tokens = c.tokens;
  p.experts = c.experts;
  p.top_k = c.top_k;
  p.local_experts = c.local;
  p.expert_map = c.local < c.experts ? map.as<int32_t>() : nullptr;
  p.topk_ids = c.from_logits ? nullptr : ids.as<int32_t>();
  p.chunk_counts = scratch.as<int32_t>();
  p.offsets = offsets.as<int64_t>();
  p.dest_row = dest.as<int32_t>();
  p.row_slot = row_slot.as<int32_t>();
  float const* topk_weights = c.from_logits ? router_weights.as<float>() : weights.as<float>();
  ActivationType const type = c.fp16 ? ActivationType::kFP16 : ActivationType::kBF16;
  moe::GroupSumsOut const group_sums{c.group_sums ? sums.as<float>() : nullptr, sums_stride};
  if (in_cluster) {
    moe::RoutingQuantize& q = p.quantize;
    q.blocks = moe::routing_quantize_blocks(c.tokens, c.top_k, c.local, c.hidden);
    q.tokens_per_block = moe::routing_quantize_tokens_per_block(c.hidden);
    q.hidden = hidden.get();
    q.type = type;
    q.hidden_size = c.hidden;
    q.weight_on_input = c.weight_on_input;
    q.topk_weights = topk_weights;
    q.act = act.as<uint8_t>();
    q.act_scales = scales.as<float>();
    q.group_sums = group_sums;
    EXPECT_GT(q.blocks, 0) << "the case must take the cluster path";
  }
  if (c.from_logits) {
    moe::Router const router{logits.get(), LogitsType::kFP32, true, router_ids.as<int32_t>(),
                             router_weights.as<float>()};
    EXPECT_EQ(moe::launch_topk_and_routing(p, router), cudaSuccess);
  } else {
    EXPECT_EQ(moe::launch_routing(p), cudaSuccess);
  }
  if (!in_cluster) {
    EXPECT_EQ(moe::launch_permute_quantize(hidden.get(), type, c.tokens, c.hidden, c.top_k, dest.as<int32_t>(),
                                           p.expert_map != nullptr, topk_weights, c.weight_on_input,
                                           act.as<uint8_t>(), scales.as<float>(), group_sums, nullptr),
              cudaSuccess);
  }
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return {dest.to_host<int32_t>(), act.to_host<uint8_t>(), scales.to_host<float>(), sums.to_host<float>()};
}

void check_case(QuantizeCase const& c, std::mt19937_64& rng) {
  SCOPED_TRACE(c.name);
  int64_t const slots = c.tokens * c.top_k;
  int const padded = padded_k(c.hidden), groups = padded / 128;
  int64_t const sums_stride = (slots + 3) / 4 * 4;
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<uint16_t> hidden_bits(size_t(c.tokens) * c.hidden);
  std::vector<float> hidden(hidden_bits.size());
  for (size_t i = 0; i < hidden.size(); ++i) {  // values the activation type holds
    float const x = normal(rng) * (1.0f + float(i / c.hidden % 5));  // per-token magnitudes differ
    hidden_bits[i] = c.fp16 ? float_to_fp16(x) : float_to_bf16(x);
    hidden[i] = c.fp16 ? fp16_to_float(hidden_bits[i]) : bf16_to_float(hidden_bits[i]);
  }
  std::fill_n(hidden.begin(), c.hidden, 0.0f);  // token 0 all zeros: scale 0
  std::fill_n(hidden_bits.begin(), c.hidden, uint16_t(0));
  std::vector<float> logits(size_t(c.tokens) * c.experts), weights(slots);
  for (auto& x : logits) x = normal(rng);
  for (auto& w : weights) w = std::uniform_real_distribution<float>(0.1f, 1.0f)(rng);
  std::vector<int32_t> ids(slots), map(c.experts, -1);
  for (int64_t t = 0; t < c.tokens; ++t) {  // distinct ids a token
    std::vector<int32_t> pool(c.experts);
    for (int e = 0; e < c.experts; ++e) pool[e] = e;
    std::shuffle(pool.begin(), pool.end(), rng);
    std::copy_n(pool.begin(), c.top_k, ids.begin() + t * c.top_k);
  }
  for (int i = 0; i < c.local; ++i) map[(3 * i + 1) % c.experts] = i;  // scattered local experts
  DeviceBuffer d_hidden(hidden_bits), d_logits(logits), d_ids(ids), d_weights(weights), d_map(map);

  Written const apart = run_path(c, d_hidden, d_logits, d_ids, d_weights, d_map, false);
  Written const cluster = run_path(c, d_hidden, d_logits, d_ids, d_weights, d_map, true);
  ASSERT_EQ(cluster.dest_row, apart.dest_row);

  // The reference: the slots' rows from the CPU routing of the same ids (the router's, from logits), each token
  // quantised by reference::quantize_row.
  auto const topk = c.from_logits ? reference::topk_softmax(logits, c.tokens, c.experts, c.top_k, true)
                                  : reference::TopK{ids, weights};
  auto const routing = reference::routing_data(topk.ids, c.tokens, c.top_k, c.experts, c.local,
                                               c.local < c.experts ? map : std::vector<int32_t>{});
  ASSERT_EQ(cluster.dest_row, routing.dest_row);
  std::vector<uint8_t> q(padded);
  int bad_rows = 0, checked_rows = 0;
  for (int64_t s = 0; s < slots; ++s) {
    int32_t const row = routing.dest_row[s];
    if (row < 0) continue;
    int64_t const t = s / c.top_k;
    float scale;
    std::fill(q.begin(), q.end(), uint8_t(0));
    reference::quantize_row(hidden.data() + t * c.hidden, c.hidden, q.data(), &scale);
    if (c.weight_on_input) scale *= topk.weights[s];  // the GPU's product, one fp32 rounding
    bool ok = std::memcmp(cluster.act.data() + size_t(row) * padded, q.data(), padded) == 0 &&
              std::memcmp(apart.act.data() + size_t(row) * padded, q.data(), padded) == 0;
    // Scales: bit for bit between the paths; against the reference within the router weight's rounding.
    ok = ok && std::memcmp(&cluster.scales[row], &apart.scales[row], 4) == 0 &&
         std::fabs(cluster.scales[row] - scale) <= 1e-5f * scale;
    for (int g = 0; c.group_sums && g < groups; ++g) {
      float sum = 0.0f;
      for (int i = 0; i < 128; ++i) sum += e4m3_to_float(q[size_t(g) * 128 + i]);
      float const got = cluster.sums[size_t(g) * sums_stride + row];
      ok = ok && std::memcmp(&got, &apart.sums[size_t(g) * sums_stride + row], 4) == 0 &&
           std::fabs(got - sum / 64.0f) <= 1e-6f * (1.0f + std::fabs(sum));
    }
    bad_rows += !ok;
    ++checked_rows;
  }
  EXPECT_GT(checked_rows, 0);
  EXPECT_EQ(bad_rows, 0) << "rows (of " << checked_rows << ") whose bytes, scale or group sums differ";
}

TEST(MoeRoutingQuantize, ClusterMatchesThePermuteKernelAndTheReference) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  QuantizeCase const cases[] = {
      // name, H, tokens, experts, local, k, logits, fp16, weight on input, group sums
      {"Qwen3 shape, 1 token, router in the routing block", 2048, 1, 128, 128, 8, true, false, false, false},
      {"7 blocks, the last partial, router apart, group sums", 256, 200, 64, 64, 4, true, false, false, true},
      {"2 blocks, given ids, expert map, fp16, weight on input", 2048, 17, 128, 48, 8, false, true, true, false},
      {"H 2880 (zeros past H), 7 blocks, group sums, weight on input", 2880, 77, 32, 32, 4, true, false, true, true},
      {"DeepSeek-V3 EP8 shape, 7 blocks", 7168, 28, 256, 32, 8, true, false, false, true},
  };
  for (QuantizeCase const& c : cases) check_case(c, rng);
}

}  // namespace
}  // namespace w4a8moe
