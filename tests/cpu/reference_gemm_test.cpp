// The reference grouped GEMM against a float64 computation written out independently: dequantize each expert's
// dense weight matrix first, then multiply.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/float_formats.h"
#include "prepack/packed_format.h"
#include "reference/mxfp4_experts.h"
#include "reference/quantized_experts.h"
#include "test_data.h"

namespace w4a8moe {
namespace {

// Caller-quantized experts (tables e4m3(q * sg)), or with bf16_scales those a checkpoint packs (tables rounded once
// from the unrounded step s / c / 8).
void expect_matches_dense_float64(bool checkpoint) {
  std::mt19937_64 rng(21);
  ExpertWeightShape const shape{4, 32, 384, 128};
  std::vector<uint16_t> bf16_scales;
  auto const experts = testing::random_experts(shape, rng, checkpoint ? &bf16_scales : nullptr);
  ASSERT_EQ(experts.table_step.empty(), !checkpoint);
  std::vector<int64_t> const counts{3, 0, 7, 1};
  auto const offsets = testing::offsets_from_counts(counts, 2);  // rows 0..1 belong to no expert
  int64_t const total_rows = offsets.back() + 1;
  auto const acts = testing::random_activations(total_rows, shape.k, rng);

  std::vector<double> out(size_t(total_rows) * shape.n, -12345.0);
  reference::grouped_gemm(experts, acts.act, acts.scales, offsets, &out);

  for (int e = 0; e < shape.num_experts; ++e) {
    // Dense dequantized weights: W[n][k] = sc * e4m3(q * step), step = sg or s / (sc / 8) / 8, written directly
    // from the definitions.
    std::vector<double> w(size_t(shape.n) * shape.k);
    for (int n = 0; n < shape.n; ++n) {
      float const c = experts.channel_scale[size_t(e) * shape.n + n] / 8.0f;
      for (int k = 0; k < shape.k; ++k) {
        int64_t const scale = experts.scale_index(e, n, k / 128);
        float const step = checkpoint ? (c == 0.0f ? 0.0f : bf16_to_float(bf16_scales[size_t(scale)]) / c / 8.0f)
                                      : e4m3_to_float(experts.group_scale[size_t(scale)]);
        float const q = experts.q[experts.q_index(e, n, k)];
        w[size_t(n) * shape.k + k] = double(e4m3_to_float(float_to_e4m3(q * step)));
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

TEST(ReferenceGemm, MatchesDenseFloat64Computation) { expect_matches_dense_float64(false); }

TEST(ReferenceGemm, MatchesDenseFloat64ComputationWithTablesFromBf16Scales) { expect_matches_dense_float64(true); }

// The MXFP4 reference against a float64 product of weights written from the format's definitions (e2m1 code times
// 2^(e8m0 - 127)), biases added; and a call on a shuffled subset of the rows (as a caller splits rows over threads:
// the reference dequantises only the experts its rows use) writes those rows alike and no other.
TEST(ReferenceGemm, Mxfp4MatchesDenseFloat64ComputationOnAnySubsetOfRows) {
  std::mt19937_64 rng(23);
  ExpertWeightShape const shape{4, 24, 256, 128};
  auto const experts = testing::random_mxfp4_experts(shape, rng);
  std::vector<int64_t> const counts{5, 0, 3, 2};
  auto const offsets = testing::offsets_from_counts(counts, 1);  // row 0 belongs to no expert
  int64_t const total_rows = offsets.back() + 1;
  auto const acts = testing::random_activations(total_rows, shape.k, rng);
  std::vector<float> bias(size_t(shape.num_experts) * shape.n);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& b : bias) b = normal(rng);

  std::vector<double> out(size_t(total_rows) * shape.n, -12345.0);
  reference::grouped_gemm_mxfp4(experts, acts.act, acts.scales, offsets, &out, nullptr, {}, bias);
  double const e2m1[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};
  int const row_blocks = shape.k / 32;
  for (int e = 0; e < shape.num_experts; ++e) {
    for (int64_t m = offsets[e]; m < offsets[e + 1]; ++m) {
      for (int n = 0; n < shape.n; ++n) {
        size_t const row = size_t(e) * shape.n + n;
        double sum = 0;
        for (int k = 0; k < shape.k; ++k) {
          uint8_t const byte = experts.blocks[row * (shape.k / 2) + k / 2];
          uint8_t const code = k % 2 == 0 ? byte & 0xF : byte >> 4;
          double const w = (code & 8 ? -1.0 : 1.0) * e2m1[code & 7] *
                           std::ldexp(1.0, int(experts.scales[row * row_blocks + k / 32]) - 127);
          sum += double(e4m3_to_float(acts.act[size_t(m) * shape.k + k])) * w;
        }
        double const expected = sum * acts.scales[m] + bias[row];
        EXPECT_NEAR(out[size_t(m) * shape.n + n], expected, 1e-12 * std::fabs(expected) + 1e-300);
      }
    }
  }
  for (int n = 0; n < shape.n; ++n) {
    EXPECT_EQ(out[n], -12345.0);
    EXPECT_EQ(out[size_t(total_rows - 1) * shape.n + n], -12345.0);
  }

  std::vector<int64_t> subset{offsets[3] + 1, offsets[0] + 4, offsets[2], offsets[0]};
  std::vector<double> part(out.size(), -12345.0);
  reference::grouped_gemm_mxfp4(experts, acts.act, acts.scales, offsets, &part, nullptr, subset, bias);
  for (int64_t m = 0; m < total_rows; ++m) {
    bool const listed = std::find(subset.begin(), subset.end(), m) != subset.end();
    for (int n = 0; n < shape.n; ++n) {
      EXPECT_EQ(part[size_t(m) * shape.n + n], listed ? out[size_t(m) * shape.n + n] : -12345.0) << m;
    }
  }
}

TEST(ReferenceGemm, DequantizedWeightIsRoundedToE4M3) {
  float const sg = e4m3_to_float(float_to_e4m3(0.3f));  // 0.3125 in e4m3
  // 7 * 0.3125 = 2.1875 is not representable in e4m3 (steps of 0.25 in [2, 4)): rounds to 2.25.
  EXPECT_EQ(sg, 0.3125f);
  EXPECT_EQ(reference::dequantized_weight(7, sg), 2.25f);
  EXPECT_EQ(reference::dequantized_weight(-7, sg), -2.25f);
  EXPECT_EQ(reference::dequantized_weight(0, sg), 0.0f);
}

TEST(ReferenceGemm, TablesFromBf16ScalesAreRoundedOnce) {
  // One channel of three groups, bf16 scales 0.3, 2.4 (the largest: step 56) and 0.9, whose step s / c / 8 =
  // 20.909 lies between e4m3 values (steps of 2 in [16, 32)). Rounded first to 20, q = 3 gave e4m3(60) = 60; the
  // table rounded once holds e4m3(62.73) = 64, the nearer to 3 s / c / 8.
  ExpertWeightShape const shape{1, 1, 384, 128};
  reference::QuantizedExperts experts;
  experts.shape = shape;
  std::vector<uint16_t> const scales{float_to_bf16(0.3f), float_to_bf16(2.4f), float_to_bf16(0.9f)};
  reference::split_bf16_scales(scales, &experts);
  float const c = bf16_to_float(scales[1]) / 448.0f;
  ASSERT_EQ(experts.channel_scale[0], 8.0f * c);
  float const step = bf16_to_float(scales[2]) / c / 8.0f;
  EXPECT_EQ(experts.table_step[2], step);
  EXPECT_EQ(experts.step(2), step);
  EXPECT_EQ(experts.group_scale[2], float_to_e4m3(step));
  EXPECT_EQ(reference::dequantized_weight(3, experts.step(2)), e4m3_to_float(float_to_e4m3(3.0f * step)));
  EXPECT_NE(reference::dequantized_weight(3, experts.step(2)),
            reference::dequantized_weight(3, e4m3_to_float(experts.group_scale[2])));
  // The packed table holds the same entries, and its -1 entry the e4m3 group scale.
  experts.q.assign(384, 0);
  auto const packed = reference::prepack(experts);
  auto const sections = prepack::packed_sections(shape);
  uint8_t const* table = packed.data() + sections.group_scales + 2 * prepack::kLutBytes;
  for (int i = 0; i < 8; ++i) EXPECT_EQ(table[i], float_to_e4m3(float(i - 8) * step)) << i;
  EXPECT_EQ(table[7] ^ 0x80, experts.group_scale[2]);
}

}  // namespace
}  // namespace w4a8moe
