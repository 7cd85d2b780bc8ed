// gpt-oss's reference layer (reference/gpt_oss.h) on experts built so that every stage is visible: each gate and up
// channel reads one hidden value (w1 rows are scaled unit vectors), w2 is a scaled identity, biases constant per
// expert; the expected output is then written per channel from gpt-oss's definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "common/float_formats.h"
#include "reference/gpt_oss.h"
#include "reference/mxfp4.h"

namespace w4a8moe::reference {
namespace {

TEST(GptOssReference, SwigluClampsGateAboveAndUpBothWays) {
  double const limit = 7.0;
  EXPECT_NEAR(gpt_oss_swiglu(1.0, 0.0, limit), 1.0 / (1.0 + std::exp(-1.702)), 1e-15);
  EXPECT_EQ(gpt_oss_swiglu(10.0, 0.5, limit), gpt_oss_swiglu(7.0, 0.5, limit));
  EXPECT_EQ(gpt_oss_swiglu(1.0, 10.0, limit), gpt_oss_swiglu(1.0, 7.0, limit));
  EXPECT_EQ(gpt_oss_swiglu(1.0, -10.0, limit), gpt_oss_swiglu(1.0, -7.0, limit));
  EXPECT_NE(gpt_oss_swiglu(-10.0, 0.5, limit), gpt_oss_swiglu(-7.0, 0.5, limit));  // no lower clamp on the gate
  EXPECT_EQ(gpt_oss_swiglu(0.0, 3.0, limit), 0.0);
}

TEST(GptOssReference, LayerFollowsTheRouterBiasesAndSwiglu) {
  constexpr int kExperts = 3, kHidden = 32, kInter = 32, kTopK = 2;
  constexpr int64_t kTokens = 2;
  // Per expert: gate and up weights, biases, the scale of w2's identity and w2's bias (all exact in e2m1 or bf16).
  double const gate_w[kExperts] = {1.5, -2.0, 0.5}, up_w[kExperts] = {0.5, 1.0, -3.0};
  double const gate_b[kExperts] = {0.25, -0.5, 1.0}, up_b[kExperts] = {-0.25, 0.5, 0.0};
  double const down_w[kExperts] = {1.0, 4.0, -0.5}, down_b[kExperts] = {0.125, -1.0, 2.0};
  std::vector<float> w1(size_t(kExperts) * 2 * kInter * kHidden, 0.0f), w2(size_t(kExperts) * kHidden * kInter, 0.0f);
  std::vector<uint16_t> b1(size_t(kExperts) * 2 * kInter), b2(size_t(kExperts) * kHidden);
  for (int e = 0; e < kExperts; ++e) {
    for (int i = 0; i < kInter; ++i) {
      w1[(size_t(e) * 2 * kInter + 2 * i) * kHidden + i] = float(gate_w[e]);
      w1[(size_t(e) * 2 * kInter + 2 * i + 1) * kHidden + i] = float(up_w[e]);
      b1[size_t(e) * 2 * kInter + 2 * i] = float_to_bf16(float(gate_b[e]));
      b1[size_t(e) * 2 * kInter + 2 * i + 1] = float_to_bf16(float(up_b[e]));
    }
    for (int r = 0; r < kHidden; ++r) {
      w2[(size_t(e) * kHidden + r) * kInter + r] = float(down_w[e]);
      b2[size_t(e) * kHidden + r] = float_to_bf16(float(down_b[e]));
    }
  }
  std::vector<uint8_t> blocks1(w1.size() / 2), scales1(w1.size() / 32), blocks2(w2.size() / 2), scales2(w2.size() / 32);
  quantize_mxfp4(w1.data(), int64_t(kExperts) * 2 * kInter, kHidden, blocks1.data(), scales1.data());
  quantize_mxfp4(w2.data(), int64_t(kExperts) * kHidden, kInter, blocks2.data(), scales2.data());
  GptOssExperts const experts = dequantize_gpt_oss_experts(kExperts, kHidden, kInter, blocks1.data(), scales1.data(),
                                                           b1.data(), blocks2.data(), scales2.data(), b2.data());
  ASSERT_EQ(experts.w1, w1);  // every weight exact in MXFP4
  ASSERT_EQ(experts.w2, w2);

  // Hidden values from -8 to 7.5 (gates and ups past the clamp of 7), logits choosing experts {2, 0} and {1, 2}.
  std::vector<float> hidden(size_t(kTokens) * kHidden);
  for (size_t i = 0; i < hidden.size(); ++i) hidden[i] = -8.0f + 0.25f * float(i % 64);
  std::vector<float> const logits = {0.5f, -1.0f, 2.0f, /* token 1 */ -3.0f, 1.25f, 1.0f};
  double const limit = 7.0;
  std::vector<double> const out = gpt_oss_moe_layer(hidden, logits, kTokens, kTopK, experts, limit);
  int const chosen[kTokens][kTopK] = {{2, 0}, {1, 2}};
  for (int64_t t = 0; t < kTokens; ++t) {
    double const l0 = logits[size_t(t) * kExperts + chosen[t][0]], l1 = logits[size_t(t) * kExperts + chosen[t][1]];
    double const weights[kTopK] = {1.0 / (1.0 + std::exp(l1 - l0)), 1.0 / (1.0 + std::exp(l0 - l1))};
    for (int r = 0; r < kHidden; ++r) {
      double const x = hidden[size_t(t) * kHidden + r];
      double expected = 0.0;
      for (int j = 0; j < kTopK; ++j) {
        int const e = chosen[t][j];
        double const a = gpt_oss_swiglu(gate_w[e] * x + gate_b[e], up_w[e] * x + up_b[e], limit);
        expected += weights[j] * (down_w[e] * a + down_b[e]);
      }
      EXPECT_NEAR(out[size_t(t) * kHidden + r], expected, 1e-12 * (1.0 + std::fabs(expected))) << t << ", " << r;
    }
  }
}

// The staged-path mirror with its tokens spread over threads gives the values one thread gives, bit for bit, in any
// token order, and each token's row is the row it gets alone.
TEST(GptOssReference, StagedMirrorThreadsChangeNoValue) {
  constexpr int kExperts = 4, kHidden = 64, kInter = 32, kTopK = 2, kTokens = 9;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  GptOssExperts experts;
  experts.num_experts = kExperts;
  experts.hidden_size = kHidden;
  experts.intermediate_size = kInter;
  auto fill = [&](std::vector<float>* v, size_t n, float scale) {
    v->resize(n);
    for (float& x : *v) x = scale * normal(rng);
  };
  fill(&experts.w1, size_t(kExperts) * 2 * kInter * kHidden, 0.2f);
  fill(&experts.b1, size_t(kExperts) * 2 * kInter, 0.1f);
  fill(&experts.w2, size_t(kExperts) * kHidden * kInter, 0.2f);
  fill(&experts.b2, size_t(kExperts) * kHidden, 0.1f);
  std::vector<float> hidden;
  fill(&hidden, size_t(kTokens) * kHidden, 1.0f);
  for (float& x : hidden) x = bf16_to_float(float_to_bf16(x));  // representable in the activation type
  TopK topk;
  for (int t = 0; t < kTokens; ++t) {
    std::vector<int32_t> ids(kExperts);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    float const w0 = std::uniform_real_distribution<float>(0.5f, 1.0f)(rng);
    topk.ids.insert(topk.ids.end(), ids.begin(), ids.begin() + kTopK);
    topk.weights.insert(topk.weights.end(), {w0, 1.0f - w0});
  }
  std::vector<int64_t> tokens(kTokens);
  std::iota(tokens.begin(), tokens.end(), 0);
  std::shuffle(tokens.begin(), tokens.end(), rng);
  double const limit = 7.0;
  auto const one = gpt_oss_layer_as_staged(hidden, topk, kTopK, experts, limit, false, tokens);
  auto const many = gpt_oss_layer_as_staged(hidden, topk, kTopK, experts, limit, false, tokens, 4);
  ASSERT_EQ(one.size(), size_t(kTokens) * kHidden);
  ASSERT_EQ(many.size(), one.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(std::memcmp(&many[i], &one[i], sizeof(float)), 0) << i;
  for (size_t i = 0; i < tokens.size(); ++i) {  // row i is token tokens[i]'s
    auto const alone = gpt_oss_layer_as_staged(hidden, topk, kTopK, experts, limit, false, {tokens[i]});
    ASSERT_TRUE(std::equal(alone.begin(), alone.end(), one.begin() + i * kHidden)) << "token " << tokens[i];
  }
  EXPECT_TRUE(std::any_of(one.begin(), one.end(), [](float x) { return x != 0.0f; }));
}

}  // namespace
}  // namespace w4a8moe::reference
