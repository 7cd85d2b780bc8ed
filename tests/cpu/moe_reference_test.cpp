// The MoE layer's CPU reference: routing math, the permutation, expert maps, and the whole layer against a float64
// computation without activation quantisation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "common/float_formats.h"
#include "reference/moe_reference.h"
#include "test_data.h"

namespace w4a8moe {
namespace {

using reference::TopK;

TEST(MoeReference, TopKSoftmaxOrdersAndRenormalises) {
  std::vector<float> const logits{0.1f, 2.0f, -1.0f, 2.0f, 0.5f,   // tie between experts 1 and 3
                                  3.0f, 3.0f, 3.0f, 3.0f, 3.0f};  // all equal
  TopK const topk = reference::topk_softmax(logits, 2, 5, 3, /*renormalize=*/true);
  EXPECT_EQ((std::vector<int32_t>(topk.ids.begin(), topk.ids.begin() + 3)), (std::vector<int32_t>{1, 3, 4}));
  EXPECT_EQ((std::vector<int32_t>(topk.ids.begin() + 3, topk.ids.end())), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_FLOAT_EQ(topk.weights[0], topk.weights[1]);
  EXPECT_GT(topk.weights[1], topk.weights[2]);
  for (int t = 0; t < 2; ++t) {
    EXPECT_NEAR(topk.weights[t * 3] + topk.weights[t * 3 + 1] + topk.weights[t * 3 + 2], 1.0f, 1e-6f);
  }
  EXPECT_NEAR(topk.weights[3], 1.0f / 3, 1e-6f);
}

TEST(MoeReference, TopKSoftmaxWithoutRenormalisationGivesProbabilities) {
  std::vector<float> const logits{0.0f, std::log(3.0f), 0.0f, 0.0f};  // probabilities 1/6, 1/2, 1/6, 1/6
  TopK const topk = reference::topk_softmax(logits, 1, 4, 2, /*renormalize=*/false);
  EXPECT_EQ(topk.ids[0], 1);
  EXPECT_EQ(topk.ids[1], 0);
  EXPECT_NEAR(topk.weights[0], 0.5f, 1e-6f);
  EXPECT_NEAR(topk.weights[1], 1.0f / 6, 1e-6f);
}

void expect_valid_permutation(reference::RoutingData const& data, std::vector<int32_t> const& ids, int experts,
                              std::vector<int32_t> const& map, int local) {
  int64_t const rows = data.offsets.back();
  ASSERT_EQ(int64_t(data.row_slot.size()), rows);
  for (int e = 0; e < local; ++e) ASSERT_LE(data.offsets[e], data.offsets[e + 1]);
  int64_t previous_slot = -1;
  int previous_expert = -1;
  for (int64_t row = 0; row < rows; ++row) {
    int32_t const slot = data.row_slot[row];
    ASSERT_EQ(data.dest_row[slot], row);  // inverse of each other
    int32_t const global = ids[slot];
    int const expected_local = map.empty() ? global : map[global];
    int const e = int(std::upper_bound(data.offsets.begin(), data.offsets.end(), row) - data.offsets.begin()) - 1;
    ASSERT_EQ(e, expected_local) << "row " << row;
    if (e == previous_expert) ASSERT_GT(slot, previous_slot) << "rows of an expert keep slot order";
    previous_expert = e;
    previous_slot = slot;
  }
  for (size_t s = 0; s < ids.size(); ++s) {
    bool const local_slot = ids[s] >= 0 && ids[s] < experts && (map.empty() || map[ids[s]] >= 0);
    EXPECT_EQ(data.dest_row[s] >= 0, local_slot) << "slot " << s;
  }
}

TEST(MoeReference, RoutingDataIsAStablePermutation) {
  std::mt19937_64 rng(4);
  int const experts = 16, k = 4;
  int64_t const tokens = 300;
  std::vector<int32_t> ids(tokens * k);
  std::uniform_int_distribution<int> pick(0, experts - 1);
  for (auto& id : ids) id = pick(rng);
  auto const data = reference::routing_data(ids, tokens, k, experts, experts, {});
  EXPECT_EQ(data.offsets.back(), tokens * k);
  expect_valid_permutation(data, ids, experts, {}, experts);
}

TEST(MoeReference, ExpertMapDropsOtherRanksAndBadIds) {
  int const experts = 8, k = 2;
  std::vector<int32_t> const map{-1, -1, 0, 1, -1, -1, 2, -1};  // this rank holds experts 2, 3, 6
  std::vector<int32_t> const ids{2, 3, 0, 1, 6, 2, 7, 9, -3, 3};  // 9 and -3 are out of range
  auto const data = reference::routing_data(ids, 5, k, experts, 3, map);
  EXPECT_EQ(data.offsets, (std::vector<int64_t>{0, 2, 4, 5}));
  expect_valid_permutation(data, {2, 3, 0, 1, 6, 2, 7, 0, 0, 3}, experts, map, 3);
  EXPECT_EQ(data.dest_row[7], -1);
  EXPECT_EQ(data.dest_row[8], -1);
}

TEST(MoeReference, QuantizeRowScalesToE4M3Range) {
  std::vector<float> x{0.5f, -3.0f, 1.25f, 0.0f};
  std::vector<uint8_t> q(4);
  float scale;
  reference::quantize_row(x.data(), 4, q.data(), &scale);
  EXPECT_FLOAT_EQ(scale, 3.0f / 448.0f);
  EXPECT_EQ(e4m3_to_float(q[1]), -448.0f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(e4m3_to_float(q[i]) * scale, x[i], std::fabs(x[i]) * 0.0625f);
  std::vector<float> zeros(4, 0.0f);
  reference::quantize_row(zeros.data(), 4, q.data(), &scale);
  EXPECT_EQ(scale, 0.0f);
  for (auto v : q) EXPECT_EQ(v, 0);
}

struct SmallLayer {
  int experts = 8, k = 3, hidden = 256, inter = 128;
  int64_t tokens = 10;
  reference::MoeLayerWeights weights;
  std::vector<float> hidden_states;
  TopK topk;
};

SmallLayer make_small_layer(std::mt19937_64& rng) {
  SmallLayer layer;
  layer.weights.gemm1 = testing::random_experts({layer.experts, 2 * layer.inter, layer.hidden, 128}, rng);
  layer.weights.gemm2 = testing::random_experts({layer.experts, layer.hidden, layer.inter, 128}, rng);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  layer.hidden_states.resize(size_t(layer.tokens) * layer.hidden);
  for (auto& x : layer.hidden_states) x = bf16_to_float(float_to_bf16(normal(rng)));
  std::vector<float> logits(size_t(layer.tokens) * layer.experts);
  for (auto& x : logits) x = normal(rng);
  layer.topk = reference::topk_softmax(logits, layer.tokens, layer.experts, layer.k, true);
  return layer;
}

// float64 throughout with the dequantised weights and unquantised activations: the layer the W4A8 pipeline
// approximates. The router weight scales the expert's input or its output (not the same: SiLU(gate) * up is not
// linear in the input).
std::vector<double> float64_layer(SmallLayer const& layer, int64_t t, bool weight_on_input) {
  auto dense = [](reference::QuantizedExperts const& w, int e, int n, int k) {
    return double(w.channel_scale[size_t(e) * w.shape.n + n]) *
           reference::dequantized_weight(w.q[w.q_index(e, n, k)], w.step(w.scale_index(e, n, k / 128)));
  };
  std::vector<double> out(layer.hidden, 0.0);
  for (int j = 0; j < layer.k; ++j) {
    int const e = layer.topk.ids[t * layer.k + j];
    double const weight = layer.topk.weights[t * layer.k + j];
    std::vector<double> h(layer.inter);
    for (int c = 0; c < layer.inter; ++c) {
      double gate = 0, up = 0;
      for (int i = 0; i < layer.hidden; ++i) {
        double const x = layer.hidden_states[t * layer.hidden + i] * (weight_on_input ? weight : 1.0);
        gate += dense(layer.weights.gemm1, e, c, i) * x;
        up += dense(layer.weights.gemm1, e, layer.inter + c, i) * x;
      }
      h[c] = gate / (1.0 + std::exp(-gate)) * up;
    }
    for (int n = 0; n < layer.hidden; ++n) {
      double y = 0;
      for (int c = 0; c < layer.inter; ++c) y += dense(layer.weights.gemm2, e, n, c) * h[c];
      out[n] += (weight_on_input ? 1.0 : weight) * y;
    }
  }
  return out;
}

TEST(MoeReference, LayerMatchesFloat64WithinActivationQuantisation) {
  std::mt19937_64 rng(8);
  SmallLayer const layer = make_small_layer(rng);
  std::vector<int64_t> tokens(layer.tokens);
  std::iota(tokens.begin(), tokens.end(), 0);
  for (bool on_input : {false, true}) {
    auto const out = reference::moe_layer(layer.hidden_states, layer.topk, layer.k, layer.weights, {}, on_input, false,
                                          tokens);
    for (int64_t t = 0; t < layer.tokens; ++t) {
      auto const expected = float64_layer(layer, t, on_input);
      double err = 0, norm = 0;
      for (int n = 0; n < layer.hidden; ++n) {
        err += std::pow(out[t * layer.hidden + n] - expected[n], 2);
        norm += expected[n] * expected[n];
      }
      // e4m3 keeps 3 mantissa bits: each activation carries up to 2^-4 relative error, which averages to a few
      // percent over a dot product; 8 % leaves room for two such layers (GEMM1 input and GEMM2 input).
      EXPECT_LT(std::sqrt(err / norm), 0.08) << "token " << t << (on_input ? " (weight on input)" : "");
    }
  }
}

TEST(MoeReference, ExpertParallelRanksSumToTheWholeLayer) {
  std::mt19937_64 rng(9);
  SmallLayer const layer = make_small_layer(rng);
  std::vector<int64_t> tokens(layer.tokens);
  std::iota(tokens.begin(), tokens.end(), 0);
  auto const whole = reference::moe_layer(layer.hidden_states, layer.topk, layer.k, layer.weights, {}, false, false,
                                          tokens);
  for (int ranks : {2, 4, 8}) {
    int const per_rank = layer.experts / ranks;
    std::vector<double> sum(whole.size(), 0.0), magnitude(whole.size(), 0.0);
    for (int r = 0; r < ranks; ++r) {
      std::vector<int32_t> map(layer.experts, -1);
      for (int i = 0; i < per_rank; ++i) map[r * per_rank + i] = i;
      reference::MoeLayerWeights local;
      for (auto [from, to] : {std::pair{&layer.weights.gemm1, &local.gemm1}, {&layer.weights.gemm2, &local.gemm2}}) {
        auto const& s = from->shape;
        size_t const q_per = size_t(s.n) * s.k, sg_per = size_t(s.n) * group_count(s.k);
        to->shape = {per_rank, s.n, s.k, 128};
        to->q.assign(from->q.begin() + r * per_rank * q_per, from->q.begin() + (r + 1) * per_rank * q_per);
        to->group_scale.assign(from->group_scale.begin() + r * per_rank * sg_per,
                               from->group_scale.begin() + (r + 1) * per_rank * sg_per);
        to->channel_scale.assign(from->channel_scale.begin() + r * per_rank * s.n,
                                 from->channel_scale.begin() + (r + 1) * per_rank * s.n);
      }
      auto const part = reference::moe_layer(layer.hidden_states, layer.topk, layer.k, local, map, false, false, tokens);
      for (size_t i = 0; i < sum.size(); ++i) {
        sum[i] += part[i];
        magnitude[i] += std::fabs(part[i]);
      }
    }
    // Each rank rounds its partial sum to bf16 once (at most 2^-8 of that partial), the whole layer its total once.
    for (size_t i = 0; i < sum.size(); ++i) {
      EXPECT_NEAR(sum[i], whole[i], std::ldexp(magnitude[i] + std::fabs(whole[i]), -8) + 1e-30) << "ranks " << ranks;
    }
  }
}

// The tokens spread over threads give the values one thread gives, bit for bit, in any token order.
TEST(MoeReference, ThreadsChangeNoValue) {
  std::mt19937_64 rng(10);
  SmallLayer const layer = make_small_layer(rng);
  std::vector<int64_t> tokens(layer.tokens);
  std::iota(tokens.begin(), tokens.end(), 0);
  std::shuffle(tokens.begin(), tokens.end(), rng);
  auto const one = reference::moe_layer(layer.hidden_states, layer.topk, layer.k, layer.weights, {}, false, false,
                                        tokens);
  auto const many = reference::moe_layer(layer.hidden_states, layer.topk, layer.k, layer.weights, {}, false, false,
                                         tokens, 4);
  ASSERT_EQ(many.size(), one.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(std::memcmp(&many[i], &one[i], sizeof(float)), 0) << i;
  for (size_t i = 0; i < tokens.size(); ++i) {  // row i is token tokens[i]'s
    auto const alone = reference::moe_layer(layer.hidden_states, layer.topk, layer.k, layer.weights, {}, false, false,
                                            {tokens[i]});
    ASSERT_TRUE(std::equal(alone.begin(), alone.end(), one.begin() + i * alone.size())) << "token " << tokens[i];
  }
}

}  // namespace
}  // namespace w4a8moe
