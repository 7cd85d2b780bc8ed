// The reference grouped GEMM against a float64 computation written out independently: dequantize each expert's
// dense weight matrix first, then multiply.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/float_formats.h"
#include "reference/quantized_experts.h"
#include "test_data.h"

namespace w4a8moe {
namespace {

TEST(ReferenceGemm, MatchesDenseFloat64Computation) {
  std::mt19937_64 rng(21);
  ExpertWeightShape const shape{4, 32, 384, 128};
  auto const experts = testing::random_experts(shape, rng);
  std::vector<int64_t> const counts{3, 0, 7, 1};
  auto const offsets = testing::offsets_from_counts(counts, 2);  // rows 0..1 belong to no expert
  int64_t const total_rows = offsets.back() + 1;
  auto const acts = testing::random_activations(total_rows, shape.k, rng);

  std::vector<double> out(size_t(total_rows) * shape.n, -12345.0);
  reference::grouped_gemm(experts, acts.act, acts.scales, offsets, &out);

  for (int e = 0; e < shape.num_experts; ++e) {
    // Dense dequantized weights: W[n][k] = sc * e4m3(q * sg), written directly from the definitions.
    std::vector<double> w(size_t(shape.n) * shape.k);
    for (int n = 0; n < shape.n; ++n) {
      for (int k = 0; k < shape.k; ++k) {
        double const sg = e4m3_to_float(experts.group_scale[experts.scale_index(e, n, k / 128)]);
        double const q = experts.q[experts.q_index(e, n, k)];
        w[size_t(n) * shape.k + k] = double(e4m3_to_float(float_to_e4m3(float(q * sg))));
      }
    }
    for (int64_t m = offsets[e]; m < offsets[e + 1]; ++m) {
      for (int n = 0; n < shape.n; ++n) {
        double sum = 0;
        for (int k = 0; k < shape.k; ++k) {
          sum += double(e4m3_to_float(acts.act[size_t(m) * shape.k + k])) * w[size_t(n) * shape.k + k];
        }
        double const expected = sum * acts.scales[m] * experts.channel_scale[size_t(e) * shape.n + n];
        EXPECT_NEAR(out[size_t(m) * shape.n + n], expected, 1e-12 * std::fabs(expected) + 1e-300);
      }
    }
  }
  // Rows outside every expert are not written.
  for (int64_t m : {int64_t(0), int64_t(1), total_rows - 1}) {
    for (int n = 0; n < shape.n; ++n) EXPECT_EQ(out[size_t(m) * shape.n + n], -12345.0);
  }
}

TEST(ReferenceGemm, DequantizedWeightIsRoundedToE4M3) {
  uint8_t const sg = float_to_e4m3(0.3f);  // 0.3125 in e4m3
  // 7 * 0.3125 = 2.1875 is not representable in e4m3 (steps of 0.25 in [2, 4)): rounds to 2.25.
  EXPECT_EQ(e4m3_to_float(sg), 0.3125f);
  EXPECT_EQ(reference::dequantized_weight(7, sg), 2.25f);
  EXPECT_EQ(reference::dequantized_weight(-7, sg), -2.25f);
  EXPECT_EQ(reference::dequantized_weight(0, sg), 0.0f);
}

}  // namespace
}  // namespace w4a8moe
