// The host fp8/bf16/fp16 conversions the reference is built on.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/float_formats.h"

namespace w4a8moe {
namespace {

TEST(FloatFormats, E4M3DecodesKnownCodes) {
  EXPECT_EQ(e4m3_to_float(0x00), 0.0f);
  EXPECT_EQ(e4m3_to_float(0x38), 1.0f);          // exponent 7 = bias
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);        // largest finite
  EXPECT_EQ(e4m3_to_float(0xFE), -448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_float(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xFF)));
}

TEST(FloatFormats, E4M3EncodeInvertsDecodeForEveryFiniteCode) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(uint8_t(code))), code) << "code " << code;
  }
}

TEST(FloatFormats, E4M3RoundsToNearestEvenAndSaturates) {
  // Between 1.0 (0x38) and 1.125 (0x39): the midpoint goes to the even code 0x38, just above it to 0x39.
  EXPECT_EQ(float_to_e4m3(1.0625f), 0x38);
  EXPECT_EQ(float_to_e4m3(1.0626f), 0x39);
  // Between 1.125 (0x39) and 1.25 (0x3A): the midpoint goes to the even code 0x3A.
  EXPECT_EQ(float_to_e4m3(1.1875f), 0x3A);
  EXPECT_EQ(float_to_e4m3(500.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(-1e30f), 0xFE);
  EXPECT_EQ(float_to_e4m3(INFINITY), 0x7E);
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -11)), 0x00);  // below half the smallest subnormal
  EXPECT_EQ(float_to_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 subnormal units -> 2 (even)
}

TEST(FloatFormats, E4M3EncodeIsNearestOnRandomValues) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-460.0f, 460.0f);
  for (int i = 0; i < 20000; ++i) {
    float const x = dist(rng) * (i % 3 == 0 ? 1e-3f : 1.0f);
    float const y = e4m3_to_float(float_to_e4m3(x));
    float best = INFINITY;
    for (int code = 0; code < 256; ++code) {
      if ((code & 0x7F) == 0x7F) continue;
      best = std::fmin(best, std::fabs(e4m3_to_float(uint8_t(code)) - std::fmax(-448.0f, std::fmin(448.0f, x))));
    }
    EXPECT_EQ(std::fabs(y - std::fmax(-448.0f, std::fmin(448.0f, x))), best) << x;
  }
}

TEST(FloatFormats, Bf16RoundTripAndRounding) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie -> even
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);  // tie -> even (up)
  for (uint32_t bits = 0; bits < 0x7F80; bits += 7) EXPECT_EQ(float_to_bf16(bf16_to_float(uint16_t(bits))), bits);
}

TEST(FloatFormats, Fp16RoundTrip) {
  EXPECT_EQ(fp16_to_float(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  for (uint32_t bits = 0; bits < 0x7C00; bits += 3) EXPECT_EQ(float_to_fp16(fp16_to_float(uint16_t(bits))), bits);
  EXPECT_EQ(float_to_fp16(70000.0f), 0x7C00);
}

}  // namespace
}  // namespace w4a8moe
