// The MXFP4 packed layout (prepack/mxfp4_format.h): every weight nibble and e8m0 scale has its own place, the placed
// codes unpack to e4m3 bytes worth e2m1 * 2^-6 exactly, the e8m0 conversion, and the host packing (the GPU
// prepack's yardstick) holding every code, scale and padding where the layout says.
#include <gtest/gtest.h>

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

// Each nibble of the weights and each scale byte of one expert's blocks is claimed exactly once.
TEST(Mxfp4Format, EveryPlaceClaimedOnce) {
  for (int n : {64, 208, 320}) {
    int const k = 384, groups = k / 128;
    size_t const bytes = prepack::mxfp4_sections({1, n, k, 128}).block_bytes_per_expert;
    ASSERT_EQ(bytes, size_t(n) * k / 2 + size_t(n) * (k / 32));
    std::vector<int> claims(2 * bytes, 0);  // per nibble
    for (int c = 0; c < n; ++c) {
      for (int kk = 0; kk < k; ++kk) {
        auto const place = prepack::mxfp4_weight_place(n, groups, c, kk);
        ASSERT_LT(place.byte, bytes);
        ++claims[2 * place.byte + place.nibble];
      }
      for (int b = 0; b < k / 32; ++b) {
        size_t const offset = prepack::mxfp4_scale_offset(n, groups, c, b);
        ASSERT_LT(offset, bytes);
        claims[2 * offset] += 1, claims[2 * offset + 1] += 1;
      }
    }
    for (size_t i = 0; i < claims.size(); ++i) ASSERT_EQ(claims[i], 1) << "N " << n << " nibble " << i;
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

// Every pair of codes in every byte of a word: the low channel's e4m3 bytes by mxfp4_unpack_low, the high one's by
// mxfp4_unpack_high, each e2m1 * 2^-6 exactly, and no bits of the neighbours leak in.
TEST(Mxfp4Format, PlacedCodesUnpackToExactE4m3) {
  for (uint32_t low = 0; low < 16; ++low) {
    for (uint32_t high = 0; high < 16; ++high) {
      uint32_t const byte = prepack::mxfp4_place_code(low, 0) | prepack::mxfp4_place_code(high, 1);
      ASSERT_EQ(prepack::mxfp4_place_code(low, 0) & prepack::mxfp4_place_code(high, 1), 0u);
      for (int position = 0; position < 4; ++position) {
        // The other bytes hold the complement codes, so leaks from them would show.
        uint32_t const other = prepack::mxfp4_place_code(15 - low, 0) | prepack::mxfp4_place_code(15 - high, 1);
        uint32_t word = 0;
        for (int b = 0; b < 4; ++b) word |= (b == position ? byte : other) << (8 * b);
        uint8_t const low_e4m3 = uint8_t(prepack::mxfp4_unpack_low(word) >> (8 * position));
        uint8_t const high_e4m3 = uint8_t(prepack::mxfp4_unpack_high(word) >> (8 * position));
        ASSERT_EQ(e4m3_to_float(low_e4m3), std::ldexp(reference::e2m1_value(uint8_t(low)), -6)) << low;
        ASSERT_EQ(e4m3_to_float(high_e4m3), std::ldexp(reference::e2m1_value(uint8_t(high)), -6)) << high;
      }
    }
  }
}

TEST(Mxfp4Format, E8m0ScalesAsFp32) {
  for (int s = 1; s < 255; ++s) ASSERT_EQ(prepack::e8m0_to_float(uint32_t(s)), std::ldexp(1.0f, s - 127)) << s;
  EXPECT_EQ(prepack::e8m0_to_float(0), 0.0f);  // 2^-127 taken as zero
}

// The host packing against the checkpoint arrays it came from, K = 2880 (90 blocks: 23 groups, the last holding
// two blocks, codes 0 and scales 2^0 after them) and K = 256.
TEST(Mxfp4Format, HostPackingHoldsEveryCodeAndScale) {
  std::mt19937_64 rng(std::random_device{}());
  for (int k : {2880, 256}) {
    SCOPED_TRACE("K " + std::to_string(k));
    ExpertWeightShape const shape{2, 208, k, 128};
    auto const experts = testing::random_mxfp4_experts(shape, rng);
    auto const packed = reference::prepack_mxfp4(experts);
    auto const sections = prepack::mxfp4_sections(shape);
    ASSERT_EQ(packed.size(), sections.total);
    int const groups = group_count(k), row_blocks = k / 32;
    for (int e = 0; e < shape.num_experts; ++e) {
      uint8_t const* blocks = packed.data() + sections.blocks + e * sections.block_bytes_per_expert;
      for (int n = 0; n < shape.n; ++n) {
        size_t const row = size_t(e) * shape.n + n;
        for (int kk = 0; kk < padded_k(k); ++kk) {
          auto const place = prepack::mxfp4_weight_place(shape.n, groups, n, kk);
          uint32_t const placed = blocks[place.byte] & prepack::mxfp4_place_code(15, place.nibble);
          uint8_t const byte = kk < k ? experts.blocks[row * (k / 2) + kk / 2] : 0;
          uint32_t const code = kk % 2 == 0 ? byte & 0xFu : byte >> 4u;
          ASSERT_EQ(placed, prepack::mxfp4_place_code(code, place.nibble)) << "n " << n << ", k " << kk;
        }
        for (int b = 0; b < 4 * groups; ++b) {
          uint8_t const want = b < row_blocks ? experts.scales[row * row_blocks + b] : prepack::kE8m0One;
          ASSERT_EQ(blocks[prepack::mxfp4_scale_offset(shape.n, groups, n, b)], want) << "n " << n << ", block " << b;
        }
        float sc;
        std::memcpy(&sc, packed.data() + sections.channel_scales + row * 4, 4);
        ASSERT_EQ(sc, prepack::kMxfp4ValueScale);
      }
    }
  }
}

}  // namespace
}  // namespace w4a8moe
