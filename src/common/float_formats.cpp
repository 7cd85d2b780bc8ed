#include "common/float_formats.h"

#include <cmath>
#include <cstring>

namespace w4a8moe {
namespace {

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace

uint8_t float_to_e4m3(float value) {
  uint8_t const sign = std::signbit(value) ? 0x80 : 0x00;
  if (std::isnan(value)) return sign | 0x7F;
  float const a = std::fabs(value);
  if (a >= kE4M3Max) return sign | 0x7E;
  if (a < 0.015625f) {  // below 2^-6: subnormal, units of 2^-9; a result of 8 is the smallest normal, 0x08
    return sign | static_cast<uint8_t>(std::nearbyint(std::ldexp(a, 9)));
  }
  int exponent;
  float const mantissa = std::frexp(a, &exponent);  // a = mantissa * 2^exponent, mantissa in [0.5, 1)
  int unbiased = exponent - 1;                      // a = (1 + f) * 2^unbiased
  int fraction = static_cast<int>(std::nearbyint((mantissa * 2.0f - 1.0f) * 8.0f));
  if (fraction == 8) {
    fraction = 0;
    ++unbiased;
  }
  int const code = ((unbiased + 7) << 3) | fraction;
  return sign | static_cast<uint8_t>(code > 0x7E ? 0x7E : code);
}

float e4m3_to_float(uint8_t bits) {
  float const sign = (bits & 0x80) ? -1.0f : 1.0f;
  int const exponent = (bits >> 3) & 0xF;
  int const fraction = bits & 0x7;
  if (exponent == 0xF && fraction == 0x7) return std::nanf("");
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(fraction), -9);
  return sign * std::ldexp(1.0f + fraction / 8.0f, exponent - 7);
}

uint16_t float_to_bf16(float value) {
  uint32_t const bits = float_bits(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t const rounding = 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float bf16_to_float(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

float fp16_to_float(uint16_t bits) {
  float const sign = (bits & 0x8000) ? -1.0f : 1.0f;
  int const exponent = (bits >> 10) & 0x1F;
  int const fraction = bits & 0x3FF;
  if (exponent == 0x1F) return fraction ? std::nanf("") : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(fraction), -24);
  return sign * std::ldexp(1.0f + fraction / 1024.0f, exponent - 15);
}

uint16_t float_to_fp16(float value) {
  uint16_t const sign = std::signbit(value) ? 0x8000 : 0;
  if (std::isnan(value)) return sign | 0x7E00;
  float const a = std::fabs(value);
  if (a >= 65520.0f) return sign | 0x7C00;  // rounds to infinity
  if (a < 6.103515625e-05f) {               // below 2^-14: subnormal, units of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));
  }
  int exponent;
  float const mantissa = std::frexp(a, &exponent);
  int unbiased = exponent - 1;
  int fraction = static_cast<int>(std::nearbyint((mantissa * 2.0f - 1.0f) * 1024.0f));
  if (fraction == 1024) {
    fraction = 0;
    ++unbiased;
  }
  return sign | static_cast<uint16_t>(((unbiased + 15) << 10) | fraction);
}

}  // namespace w4a8moe
