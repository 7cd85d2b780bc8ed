// The MXFP4 packed layout (prepack/mxfp4_format.h): every code bit and scale byte has its own place, the tables
// turn every code at every fold d into e4m3 bytes worth e2m1 * 2^(d - 6) exactly, blocks below the fold round to the
// nearest e2m1 value, and the host packing (the GPU prepack's yardstick), read back the way the kernels read it,
// gives the checkpoint's weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "common/float_formats.h"
#include "prepack/mxfp4_format.h"
#include "reference/mxfp4.h"
#include "reference/mxfp4_experts.h"
#include "test_data.h"

namespace w4a8moe {
namespace {

// Each bit of the weights and each scale byte of one expert's blocks is claimed exactly once.
TEST(Mxfp4Format, EveryPlaceClaimedOnce) {
  for (int n : {64, 208, 320}) {
    int const k = 384, groups = k / 128;
    size_t const bytes = prepack::mxfp4_sections({1, n, k, 128}).block_bytes_per_expert;
    ASSERT_EQ(bytes, size_t(n) * k / 2 + size_t(n) * (k / 32));
    std::vector<int> claims(8 * bytes, 0);  // per bit
    for (int c = 0; c < n; ++c) {
      for (int kk = 0; kk < k; ++kk) {
        auto const place = prepack::mxfp4_weight_place(n, groups, c, kk);
        ASSERT_EQ(place.word % 4, 0u);
        ASSERT_LT(place.word + 3, bytes);
        uint32_t const bits = prepack::mxfp4_place_code(15, place.high, place.position);
        for (int b = 0; b < 32; ++b) claims[8 * place.word + b] += (bits >> b) & 1u;
      }
      for (int b = 0; b < k / 32; ++b) {
        size_t const offset = prepack::mxfp4_scale_offset(n, groups, c, b);
        ASSERT_LT(offset, bytes);
        for (int bit = 0; bit < 8; ++bit) claims[8 * offset + bit] += 1;
      }
    }
    for (size_t i = 0; i < claims.size(); ++i) ASSERT_EQ(claims[i], 1) << "N " << n << " bit " << i;
  }
}

// A lane's 8 scale bytes (the kernel's one load): channel r's four atoms, then channel r + 8's.
TEST(Mxfp4Format, LaneScalesAreContiguous) {
  int const n = 128, groups = 3;
  for (int channel = 0; channel < n; ++channel) {
    int const r = channel % 8, high = (channel % 16) / 8;
    size_t const lane_base = prepack::mxfp4_scale_offset(n, groups, channel - 8 * high, 4);  // group 1, atom 0
    EXPECT_EQ(lane_base % 8, 0u);
    for (int atom = 0; atom < 4; ++atom) {
      EXPECT_EQ(prepack::mxfp4_scale_offset(n, groups, channel, 4 + atom), lane_base + 4 * high + atom)
          << "channel " << channel << " r " << r;
    }
  }
}

// Every code at every position of a word, both channels, every fold d: the lane's A registers hold e4m3 bytes worth
// e2m1 * 2^(d - 6) exactly, and no bits of the neighbours (the complement codes, another d) leak in.
TEST(Mxfp4Format, TablesUnpackEveryCodeExactly) {
  for (uint32_t d = 1; d <= uint32_t(prepack::kMxfp4FoldBinades); ++d) {
    uint32_t const d8 = uint32_t(prepack::kMxfp4FoldBinades) + 1 - d;  // channel r + 8's block: another d
    auto const table = prepack::mxfp4_table(d), table8 = prepack::mxfp4_table(d8);
    for (uint32_t code = 0; code < 16; ++code) {
      for (int position = 0; position < 4; ++position) {
        uint32_t word = 0;
        for (int j = 0; j < 4; ++j) {
          word |= prepack::mxfp4_place_code(j == position ? code : 15 - code, false, j);
          word |= prepack::mxfp4_place_code(j == position ? 15 - code : code, true, j);
        }
        uint32_t row, row8;
        prepack::mxfp4_unpack_word(word, table, table8, row, row8);
        for (int j = 0; j < 4; ++j) {
          uint8_t const low = uint8_t(j == position ? code : 15 - code), high = uint8_t(15 - low);
          ASSERT_EQ(e4m3_to_float(uint8_t(row >> (8 * j))), std::ldexp(reference::e2m1_value(low), int(d) - 6))
              << "d " << d << " code " << int(low) << " at " << j;
          ASSERT_EQ(e4m3_to_float(uint8_t(row8 >> (8 * j))), std::ldexp(reference::e2m1_value(high), int(d8) - 6))
              << "d " << d8 << " code " << int(high) << " at " << j;
        }
      }
    }
  }
}

// The fold's reference exponent and channel scale: d = s - r up to 12, r not below 0, 2^(r - 121) exact.
TEST(Mxfp4Format, ReferenceExponentAndChannelScale) {
  for (int s_max = 0; s_max < 255; ++s_max) {
    int const r = prepack::mxfp4_reference_exponent(s_max);
    EXPECT_EQ(r, std::max(s_max - prepack::kMxfp4FoldBinades, 0));
    EXPECT_EQ(prepack::mxfp4_channel_scale(r), std::ldexp(1.0f, r - 121)) << r;
    for (int s = 0; s <= s_max; ++s) {
      int const d = prepack::mxfp4_fold_d(s, r), shift = prepack::mxfp4_fold_shift(s, r);
      ASSERT_GE(d, 1);
      ASSERT_LE(d, prepack::kMxfp4FoldBinades);
      ASSERT_EQ(s + shift - r, d) << "s " << s << ", r " << r;  // the codes lose what d gains
    }
  }
}

// Rounding a code down by 2^shift: the nearest e2m1 value, ties to the even code, the sign kept.
TEST(Mxfp4Format, RoundCodeToNearestEven) {
  for (uint32_t code = 0; code < 16; ++code) {
    for (int shift = 0; shift < 12; ++shift) {
      double const x = std::ldexp(double(std::fabs(reference::e2m1_value(uint8_t(code)))), -shift);
      uint32_t best = 0;
      for (uint32_t j = 1; j < 8; ++j) {
        double const dj = std::fabs(reference::e2m1_value(uint8_t(j)) - x);
        double const db = std::fabs(reference::e2m1_value(uint8_t(best)) - x);
        if (dj < db || (dj == db && j % 2 == 0)) best = j;
      }
      ASSERT_EQ(prepack::mxfp4_round_code(code, shift), (code & 8u) | best) << "code " << code << " shift " << shift;
    }
  }
}

// W[n, k] as the kernels read the packed buffer: the code's word through its channel's table at the block's d, times
// the channel scale.
double packed_weight(std::vector<uint8_t> const& packed, ExpertWeightShape const& shape, int e, int n, int k) {
  auto const sections = prepack::mxfp4_sections(shape);
  int const groups = group_count(shape.k);
  uint8_t const* blocks = packed.data() + sections.blocks + e * sections.block_bytes_per_expert;
  auto const place = prepack::mxfp4_weight_place(shape.n, groups, n, k);
  uint32_t word;
  std::memcpy(&word, blocks + place.word, sizeof word);
  auto const table = prepack::mxfp4_table(blocks[prepack::mxfp4_scale_offset(shape.n, groups, n, k / 32)]);
  uint32_t row, row8;
  prepack::mxfp4_unpack_word(word, table, table, row, row8);
  float sc;
  std::memcpy(&sc, packed.data() + sections.channel_scales + (size_t(e) * shape.n + n) * sizeof sc, sizeof sc);
  return double(e4m3_to_float(uint8_t((place.high ? row8 : row) >> (8 * place.position)))) * sc;
}

// The host packing read back as the kernels read it is the checkpoint's weights, bit for bit, at K = 2880 (90 blocks:
// 23 groups, the last holding two blocks, zeros after them) and K = 256; the padding holds zeros and d = 1.
TEST(Mxfp4Format, HostPackingReadsBackTheCheckpoint) {
  std::mt19937_64 rng(std::random_device{}());
  for (int k : {2880, 256}) {
    SCOPED_TRACE("K " + std::to_string(k));
    ExpertWeightShape const shape{2, 208, k, 128};
    auto const experts = testing::random_mxfp4_experts(shape, rng);
    auto const packed = reference::prepack_mxfp4(experts);
    auto const sections = prepack::mxfp4_sections(shape);
    ASSERT_EQ(packed.size(), sections.total);
    auto const w = reference::dequantize_mxfp4(experts.blocks.data(), experts.scales.data(),
                                               int64_t(shape.num_experts) * shape.n, k);
    int const groups = group_count(k), row_blocks = k / 32;
    for (int e = 0; e < shape.num_experts; ++e) {
      uint8_t const* blocks = packed.data() + sections.blocks + e * sections.block_bytes_per_expert;
      for (int n = 0; n < shape.n; ++n) {
        size_t const row = size_t(e) * shape.n + n;
        for (int kk = 0; kk < padded_k(k); ++kk) {
          double const want = kk < k ? double(w[row * k + kk]) : 0.0;
          ASSERT_EQ(packed_weight(packed, shape, e, n, kk), want) << "n " << n << ", k " << kk;
        }
        for (int b = row_blocks; b < 4 * groups; ++b) {
          ASSERT_EQ(blocks[prepack::mxfp4_scale_offset(shape.n, groups, n, b)], 1) << "n " << n << ", block " << b;
        }
      }
    }
  }
}

// A channel whose blocks span more than the fold: the blocks within 2^11 of its largest read back exactly, those
// below as their codes rounded to the d = 1 grid (an all-zero block, scale 2^-127, as zeros).
TEST(Mxfp4Format, BlocksBelowTheFoldRound) {
  ExpertWeightShape const shape{1, 16, 256, 128};  // 8 blocks a channel
  reference::Mxfp4Experts experts{shape, std::vector<uint8_t>(16 * 128), std::vector<uint8_t>(16 * 8)};
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : experts.blocks) b = uint8_t(byte(rng));
  uint8_t const scales[8] = {140, 129, 128, 127, 126, 120, 0, 139};  // r = 128: 127 rounds by 2, 126 by 3, ...
  for (int n = 0; n < 16; ++n) std::copy(scales, scales + 8, experts.scales.begin() + 8 * n);
  auto const packed = reference::prepack_mxfp4(experts);
  for (int n = 0; n < 16; ++n) {
    for (int k = 0; k < 256; ++k) {
      uint8_t const byte_k = experts.blocks[size_t(n) * 128 + k / 2];
      uint32_t const code = k % 2 == 0 ? byte_k & 0xFu : byte_k >> 4;
      int const s = scales[k / 32], shift = std::max(128 + 1 - s, 0);
      double const want = double(reference::e2m1_value(uint8_t(prepack::mxfp4_round_code(code, shift)))) *
                          std::ldexp(1.0, s + shift - 127);
      ASSERT_EQ(packed_weight(packed, shape, 0, n, k), want) << "n " << n << ", k " << k << ", s " << s;
      if (shift == 0) ASSERT_EQ(want, reference::e2m1_value(uint8_t(code)) * reference::e8m0_value(uint8_t(s)));
    }
  }
}

}  // namespace
}  // namespace w4a8moe
