// Checkpoint nibble packing, the LUT encoding, the reorder, scale conversion and the packed format, on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "common/float_formats.h"
#include "prepack/packed_format.h"
#include "reference/quantized_experts.h"
#include "test_data.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using reference::QuantizedExperts;

TEST(Packing, OffsetBinaryNibbleOrder) {
  QuantizedExperts experts;
  experts.shape = {1, 16, 128, 128};
  experts.q.assign(16 * 128, 0);
  for (int k = 0; k < 8; ++k) experts.q[k] = int8_t(k - 8);  // -8..-1 in the first word
  auto const packed = reference::pack_offset_binary(experts);
  // q + 8 = 0..7 in nibbles 0..7 of word 0: 0x76543210.
  EXPECT_EQ(uint32_t(packed[0]), 0x76543210u);
  EXPECT_EQ(uint32_t(packed[1]), 0x88888888u);  // zeros are stored as 8
}

TEST(Packing, OffsetBinaryRoundTrip) {
  std::mt19937_64 rng(7);
  auto const experts = testing::random_experts({3, 32, 256, 128}, rng);
  auto const packed = reference::pack_offset_binary(experts);
  EXPECT_EQ(reference::unpack_offset_binary(packed, experts.shape), experts.q);
}

TEST(Packing, LutEncodingSharesLowBitsBetweenSigns) {
  std::set<uint32_t> codes;
  for (int q = -8; q <= 7; ++q) {
    uint32_t const code = prepack::encode_lut_nibble(q);
    EXPECT_LT(code, 16u);
    EXPECT_EQ(prepack::decode_lut_nibble(code), q);
    codes.insert(code);
    if (q >= 1) {
      uint32_t const negative = prepack::encode_lut_nibble(-q);
      EXPECT_EQ(code & 7u, negative & 7u) << "q=" << q;  // same LUT index
      EXPECT_EQ(code & 8u, 0u);
      EXPECT_EQ(negative & 8u, 8u);
    }
  }
  EXPECT_EQ(codes.size(), 16u);  // a bijection on nibbles
  EXPECT_EQ(prepack::encode_lut_nibble(1), 0b0111u);
  EXPECT_EQ(prepack::encode_lut_nibble(-1), 0b1111u);
  EXPECT_EQ(prepack::encode_lut_nibble(0), 0u);
}

// The lookup the mainloop does: index with the low 3 bits into {-8s..-1s}; for a clear sign bit the sign is
// flipped, and index 0 of the positive table is zero. Applied to each encoded nibble it must give e4m3(q * s).
TEST(Packing, LutLookupReproducesScaledValues) {
  for (int s_code = 0; s_code < 0x7F; s_code += 3) {
    if (e4m3_to_float(uint8_t(s_code)) > 56.0f) break;
    uint8_t lut[8];
    float const step = e4m3_to_float(uint8_t(s_code));
    reference::lut_from_step(step, lut);
    for (int q = -8; q <= 7; ++q) {
      uint32_t const code = prepack::encode_lut_nibble(q);
      uint8_t value = lut[code & 7];
      if ((code & 8) == 0) value = (code & 7) == 0 ? 0x80 : uint8_t(value ^ 0x80);
      EXPECT_EQ(e4m3_to_float(value), reference::dequantized_weight(q, step)) << "q=" << q << " s=" << s_code;
    }
  }
}

// The odd tables the decode streaming kernels read: every table, from any step (bounded away from e4m3's subnormals
// as prepack bounds it, either sign, every e4m3 step and random unrounded ones), comes back whole from its odd entries.
TEST(Packing, OddTablesRebuildTheWholeTable) {
  std::vector<float> steps;
  for (int code = 0; code < 0x100; ++code) {
    float const step = e4m3_to_float(uint8_t(code));
    if (std::isfinite(step) && std::fabs(step) <= 56.0f) steps.push_back(step);
  }
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> log2_step(-16.0f, std::log2(56.0f));
  for (int i = 0; i < 2000; ++i) steps.push_back((i % 2 ? -1.0f : 1.0f) * std::exp2(log2_step(rng)));
  for (float step : steps) {
    uint8_t lut[8];
    reference::lut_from_step(step, lut);
    uint32_t words[2];
    std::memcpy(words, lut, sizeof words);
    uint32_t const odd = prepack::odd_table(words[0], words[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ((odd >> (8 * i)) & 0xFF, lut[7 - 2 * i]) << "step " << step;
    prepack::TableWords const whole = prepack::expand_odd_table(odd);
    EXPECT_EQ(whole.low, words[0]) << "step " << step;
    EXPECT_EQ(whole.high, words[1]) << "step " << step;
  }
}

TEST(Packing, TableStepsStayNormal) {
  float const min_normal = std::ldexp(1.0f, -6);
  EXPECT_EQ(prepack::bounded_table_step(0.0f), min_normal);
  EXPECT_EQ(prepack::bounded_table_step(1e-4f), min_normal);
  EXPECT_EQ(prepack::bounded_table_step(-1e-4f), -min_normal);
  EXPECT_EQ(prepack::bounded_table_step(0.75f), 0.75f);
  EXPECT_EQ(prepack::bounded_table_step(-56.0f), -56.0f);
  // A tiny group's q count 2^-6 each; q = 0 stays 0.
  EXPECT_EQ(reference::dequantized_weight(3, 1e-5f), 3.0f * min_normal);
  EXPECT_EQ(reference::dequantized_weight(0, 0.0f), 0.0f);
}

TEST(Packing, ReorderIsABijectionWithinEachExpert) {
  for (auto [n, k] : {std::pair{16, 128}, {48, 384}, {128, 256}, {272, 640}}) {
    std::vector<int> hits(size_t(n) * k, 0);
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c < k; ++c) {
        int64_t const offset = prepack::reorder_atom_offset(r, c, n);
        ASSERT_GE(offset, 0);
        ASSERT_LT(offset, int64_t(n) * k);
        ++hits[offset];
      }
    }
    for (int h : hits) ASSERT_EQ(h, 1) << "N=" << n << " K=" << k;
  }
}

TEST(Packing, ReorderKeepsFourConsecutiveKTogether) {
  // The prepack kernel writes 4 consecutive K of a row as one 16-bit store.
  for (int r = 0; r < 48; ++r) {
    for (int c = 0; c < 384; c += 4) {
      int64_t const first = prepack::reorder_atom_offset(r, c, 48);
      EXPECT_EQ(first % 4, 0);
      for (int i = 1; i < 4; ++i) EXPECT_EQ(prepack::reorder_atom_offset(r, c + i, 48), first + i);
    }
  }
}

TEST(Packing, ScaleSplitFollowsDesign) {
  std::mt19937_64 rng(3);
  std::vector<uint16_t> bf16_scales;
  ExpertWeightShape const shape{2, 32, 1024, 128};
  auto const experts = testing::random_experts(shape, rng, &bf16_scales);
  int const groups = shape.k / shape.group_size;
  for (int row = 0; row < shape.num_experts * shape.n; ++row) {
    float amax = 0.0f;
    for (int g = 0; g < groups; ++g) amax = std::fmax(amax, std::fabs(bf16_to_float(bf16_scales[row * groups + g])));
    float const sc = experts.channel_scale[row];
    EXPECT_FLOAT_EQ(sc, 8.0f * (amax / 448.0f));
    for (int g = 0; g < groups; ++g) {
      float const sg = e4m3_to_float(experts.group_scale[row * groups + g]);
      EXPECT_LE(std::fabs(sg) * 8.0f, 448.0f);  // |q * sg| <= 448 for every q in [-8, 7]
      float const s = bf16_to_float(bf16_scales[row * groups + g]);
      // sg * sc reproduces s up to e4m3's relative precision (2^-4), or its subnormal step.
      EXPECT_NEAR(sg * sc, s, std::fmax(std::fabs(s) * 0.0625f, std::ldexp(1.0f, -10) * sc)) << row << "," << g;
    }
  }
}

TEST(Packing, ScaleSplitOfAllZeroRow) {
  ExpertWeightShape const shape{1, 16, 256, 128};
  std::vector<uint16_t> zeros(16 * 2, 0);
  reference::QuantizedExperts experts;
  experts.shape = shape;
  reference::split_bf16_scales(zeros, &experts);
  for (auto v : experts.group_scale) EXPECT_EQ(v, 0);
  for (auto v : experts.table_step) EXPECT_EQ(v, 0.0f);
  for (auto v : experts.channel_scale) EXPECT_EQ(v, 0.0f);
  EXPECT_THROW(reference::split_bf16_scales(std::vector<uint16_t>(31, 0), &experts), std::invalid_argument);
}

TEST(Packing, LutBytesAreNegativeMultiples) {
  uint8_t lut[8];
  reference::lut_from_step(0.5f, lut);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(e4m3_to_float(lut[i]), float(i - 8) * 0.5f);
}

TEST(Packing, PrepackUnpackRoundTripIsBitExact) {
  std::mt19937_64 rng(11);
  // K = 208 and 2880: off whole groups, the nibbles past K hold encode_lut_nibble(0) = 0.
  for (auto shape : {ExpertWeightShape{1, 16, 128, 128}, ExpertWeightShape{3, 48, 384, 128},
                     ExpertWeightShape{2, 256, 768, 128}, ExpertWeightShape{3, 48, 208, 128},
                     ExpertWeightShape{1, 32, 2880, 128}}) {
    SCOPED_TRACE("K " + std::to_string(shape.k));
    auto const experts = testing::random_experts(shape, rng);
    auto const packed = reference::prepack(experts);
    EXPECT_EQ(packed.size(), packed_weights_bytes(shape));
    auto const sections = prepack::packed_sections(shape);
    for (int e = 0; e < shape.num_experts; ++e) {
      for (int n = 0; n < shape.n; ++n) {
        for (int k = shape.k; k < padded_k(shape.k); ++k) {
          int64_t const nibble = prepack::reorder_atom_offset(n, k, shape.n);
          uint8_t const byte = packed[sections.weights + e * sections.weight_bytes_per_expert + nibble / 2];
          ASSERT_EQ((byte >> (4 * (nibble % 2))) & 0xF, 0) << "padding nibble at n " << n << ", k " << k;
        }
      }
    }
    for (int e = 0; e < shape.num_experts; ++e) {
      for (int64_t t = 0; t < sections.group_scale_bytes_per_expert / prepack::kLutBytes; ++t) {
        uint32_t words[2], odd;
        std::memcpy(words, &packed[sections.group_scales + e * sections.group_scale_bytes_per_expert +
                                   t * prepack::kLutBytes], sizeof words);
        std::memcpy(&odd, &packed[sections.odd_tables + e * sections.odd_table_bytes_per_expert +
                                  t * prepack::kOddTableBytes], sizeof odd);
        ASSERT_EQ(odd, prepack::odd_table(words[0], words[1])) << "expert " << e << ", table " << t;
      }
    }
    auto const back = reference::unpack(packed, shape);
    EXPECT_EQ(back.q, experts.q);
    EXPECT_EQ(back.group_scale, experts.group_scale);
    EXPECT_EQ(back.channel_scale, experts.channel_scale);
    ExpertWeightShape read{};
    ASSERT_TRUE(read_packed_header(packed.data(), packed.size(), &read).ok());
    EXPECT_EQ(read.num_experts, shape.num_experts);
    EXPECT_EQ(read.n, shape.n);
    EXPECT_EQ(read.k, shape.k);
  }
}

TEST(Packing, SectionsAreAlignedAndDisjoint) {
  for (auto shape : {ExpertWeightShape{1, 16, 128, 128}, ExpertWeightShape{128, 1536, 2048, 128},
                     ExpertWeightShape{256, 16, 7168, 128}}) {
    auto const s = prepack::packed_sections(shape);
    for (size_t offset : {s.weights, s.group_scales, s.odd_tables, s.channel_scales, s.layouts, s.total}) {
      EXPECT_EQ(offset % prepack::kSectionAlign, 0u);
    }
    EXPECT_GE(s.group_scales, s.weights + shape.num_experts * s.weight_bytes_per_expert);
    EXPECT_GE(s.odd_tables, s.group_scales + shape.num_experts * s.group_scale_bytes_per_expert);
    EXPECT_EQ(s.odd_table_bytes_per_expert * 2, s.group_scale_bytes_per_expert);
    EXPECT_GE(s.channel_scales, s.odd_tables + shape.num_experts * s.odd_table_bytes_per_expert);
    EXPECT_GE(s.layouts, s.channel_scales + size_t(shape.num_experts) * shape.n * 4);
    EXPECT_GE(s.total, s.layouts + shape.num_experts * prepack::kLayoutSlotBytes);
  }
}

TEST(Packing, SignedInt4Packing) {
  QuantizedExperts experts;
  experts.shape = {1, 16, 128, 128};
  experts.q.assign(16 * 128, 0);
  experts.q[0] = -1;
  experts.q[1] = 7;
  auto const packed = reference::pack_signed_int4(experts);
  EXPECT_EQ(packed[0], 0x7F);  // low nibble: even k (-1 = 0xF), high: 7
}

}  // namespace
}  // namespace w4a8moe
