// The exact-scale layout (prepack/exact_format.h): every weight nibble and every group scale has its own place, the
// blocks tile each expert's bytes exactly, and pack/unpack round-trip.
#include <gtest/gtest.h>

#include <random>

#include "prepack/exact_format.h"
#include "reference/exact_experts.h"
#include "test_data.h"

namespace w4a8moe {
namespace {

// Each nibble and scale byte of one expert's blocks is claimed exactly once, for N with a partial last tile.
TEST(ExactFormat, EveryPlaceClaimedOnce) {
  for (int n : {64, 208, 320}) {
    int const k = 384, groups = k / 128;
    size_t const bytes = prepack::exact_sections({1, n, k, 128}).block_bytes_per_expert;
    ASSERT_EQ(bytes, size_t(n) * k / 2 + size_t(n) * groups * 2);
    std::vector<int> claims(2 * bytes, 0);  // per nibble
    for (int c = 0; c < n; ++c) {
      for (int kk = 0; kk < k; ++kk) {
        auto const place = prepack::exact_weight_place(n, groups, c, kk);
        ASSERT_LT(place.byte, bytes);
        ++claims[2 * place.byte + place.nibble];
      }
      for (int g = 0; g < groups; ++g) {
        size_t const offset = prepack::exact_scale_offset(n, groups, c, g);
        ASSERT_LT(offset + 1, bytes);
        for (size_t b = offset; b < offset + 2; ++b) claims[2 * b] += 1, claims[2 * b + 1] += 1;
      }
    }
    for (size_t i = 0; i < claims.size(); ++i) ASSERT_EQ(claims[i], 1) << "N " << n << " nibble " << i;
  }
}

// The lane's words hold what the kernel's masks expect: byte j of word 2a + w, low nibble channel r, high r + 8.
TEST(ExactFormat, WordsAreWgmmaFragments) {
  int const n = 128, groups = 2;
  for (int lane = 0; lane < 32; ++lane) {
    for (int atom = 0; atom < 4; ++atom) {
      for (int w = 0; w < 2; ++w) {
        for (int j = 0; j < 4; ++j) {
          int const r = lane / 4, k = 128 + 32 * atom + 16 * w + 4 * (lane % 4) + j;  // group 1
          size_t const base = prepack::exact_block_offset(n, groups, 1, 1) + 2 * prepack::kExactStripeWeightBytes +
                              (atom / 2) * 512 + lane * 16 + (2 * (atom % 2) + w) * 4 + j;
          auto const low = prepack::exact_weight_place(n, groups, 64 + 32 + r, k);  // tile 1, stripe 2
          auto const high = prepack::exact_weight_place(n, groups, 64 + 32 + r + 8, k);
          ASSERT_EQ(low.byte, base);
          ASSERT_EQ(low.nibble, 0);
          ASSERT_EQ(high.byte, base);
          ASSERT_EQ(high.nibble, 1);
        }
      }
    }
  }
}

void pack_unpack_round_trip(ExpertWeightShape const& shape);

// Also for K off whole groups (208): the nibbles past K hold u = 8 (q = 0).
TEST(ExactFormat, PackUnpackRoundTrip) {
  for (int k : {384, 208}) {
    SCOPED_TRACE("K " + std::to_string(k));
    pack_unpack_round_trip({3, 208, k, 128});
  }
}

void pack_unpack_round_trip(ExpertWeightShape const& shape) {
  std::mt19937_64 rng(std::random_device{}());
  std::vector<uint16_t> bf16_scales;
  auto const lut = testing::random_experts(shape, rng, &bf16_scales);
  auto const experts = reference::exact_from_checkpoint(shape, lut.q, bf16_scales);
  auto const packed = reference::prepack_exact(experts);
  ASSERT_EQ(packed.size(), prepack::exact_sections(shape).total);
  auto const back = reference::unpack_exact(packed, shape);
  EXPECT_EQ(back.q, experts.q);
  EXPECT_EQ(back.group_scale, experts.group_scale);
  EXPECT_EQ(back.channel_scale, experts.channel_scale);
  int const groups = group_count(shape.k);
  for (int e = 0; e < shape.num_experts; ++e) {
    uint8_t const* blocks = packed.data() + prepack::exact_sections(shape).blocks +
                            e * prepack::exact_sections(shape).block_bytes_per_expert;
    for (int n = 0; n < shape.n; ++n) {
      for (int k = shape.k; k < padded_k(shape.k); ++k) {
        auto const place = prepack::exact_weight_place(shape.n, groups, n, k);
        ASSERT_EQ((blocks[place.byte] >> (4 * place.nibble)) & 0xF, 8) << "padding nibble at n " << n << ", k " << k;
      }
    }
  }
}

}  // namespace
}  // namespace w4a8moe
