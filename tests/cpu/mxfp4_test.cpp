// The host MXFP4 numerics (reference/mxfp4.h) against values derived here from the format's definition: e2m1 as
// sign, 2-bit exponent (bias 1) and 1-bit mantissa, e8m0 as a biased power of two, gpt-oss's nibble order.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "reference/mxfp4.h"

namespace w4a8moe::reference {
namespace {

// e2m1 from its bits: exponent 0 is subnormal (m * 0.5), else (1 + m / 2) * 2^(exponent - 1).
float e2m1_from_bits(uint8_t code) {
  int const exponent = (code >> 1) & 3, mantissa = code & 1;
  float const magnitude = exponent == 0 ? 0.5f * mantissa : (1.0f + 0.5f * mantissa) * std::ldexp(1.0f, exponent - 1);
  return (code & 8) ? -magnitude : magnitude;
}

TEST(Mxfp4, CodesAndScalesFollowTheFormat) {
  for (uint8_t code = 0; code < 16; ++code) EXPECT_EQ(e2m1_value(code), e2m1_from_bits(code)) << int(code);
  EXPECT_EQ(e2m1_value(7), 6.0f);
  EXPECT_EQ(e2m1_value(15), -6.0f);
  EXPECT_EQ(e8m0_value(127), 1.0);
  EXPECT_EQ(e8m0_value(0), std::ldexp(1.0, -127));
  EXPECT_EQ(e8m0_value(254), std::ldexp(1.0, 127));
  EXPECT_TRUE(std::isnan(e8m0_value(kE8m0Nan)));
}

TEST(Mxfp4, DequantisesInGptOssByteOrder) {
  // Two rows of 64: row r, block b has scale 2^(b - r), byte j holds codes (j % 16) low and (15 - j % 16) high.
  int64_t const rows = 2, k = 64;
  std::vector<uint8_t> blocks(size_t(rows * k / 2)), scales(size_t(rows * k / 32));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < 2; ++b) {
      scales[size_t(r * 2 + b)] = uint8_t(127 + b - r);
      for (int j = 0; j < 16; ++j) blocks[size_t((r * 2 + b) * 16 + j)] = uint8_t(j | ((15 - j) << 4));
    }
  }
  std::vector<float> const w = dequantize_mxfp4(blocks.data(), scales.data(), rows, k);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      int64_t const b = c / 32, j = (c % 32) / 2;
      uint8_t const code = c % 2 == 0 ? uint8_t(j) : uint8_t(15 - j);
      EXPECT_EQ(w[size_t(r * k + c)], e2m1_from_bits(code) * std::ldexp(1.0f, int(b - r))) << r << ", " << c;
    }
  }
}

TEST(Mxfp4, QuantisingRepresentableValuesIsExactAndOthersRoundToNearest) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<int> code(0, 15), exponent(-20, 20);
  int64_t const rows = 3, k = 96;
  std::vector<float> w(size_t(rows * k));
  for (int64_t block = 0; block < rows * k / 32; ++block) {
    int const scale = exponent(rng);
    for (int i = 0; i < 32; ++i) {
      w[size_t(block * 32 + i)] = e2m1_from_bits(uint8_t(code(rng))) * std::ldexp(1.0f, scale);
    }
    w[size_t(block * 32 + 5)] = 6.0f * std::ldexp(1.0f, scale);  // the block's maximum sets its scale
  }
  std::vector<uint8_t> blocks(size_t(rows * k / 2)), scales(size_t(rows * k / 32));
  quantize_mxfp4(w.data(), rows, k, blocks.data(), scales.data());
  EXPECT_EQ(dequantize_mxfp4(blocks.data(), scales.data(), rows, k), w);

  // One block with scale 1 (maximum 6): halfway values go to the even code, past 6 to 6, the rest to the nearest.
  std::vector<float> values(32, 0.0f);
  float const in[] = {6.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -5.5f, 7.9f, 0.3f, -0.1f};
  float const out[] = {6.0f, 0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f, -6.0f, 6.0f, 0.5f, 0.0f};
  std::copy(std::begin(in), std::end(in), values.begin());
  uint8_t block[16], scale = 0;
  quantize_mxfp4(values.data(), 1, 32, block, &scale);
  EXPECT_EQ(scale, 127);
  std::vector<float> const rounded = dequantize_mxfp4(block, &scale, 1, 32);
  for (size_t i = 0; i < std::size(in); ++i) EXPECT_EQ(rounded[i], out[i]) << "input " << in[i];

  std::vector<float> zeros(32, 0.0f);
  quantize_mxfp4(zeros.data(), 1, 32, block, &scale);
  EXPECT_EQ(scale, 0);
  EXPECT_EQ(dequantize_mxfp4(block, &scale, 1, 32), zeros);
}

}  // namespace
}  // namespace w4a8moe::reference
