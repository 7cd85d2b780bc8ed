#include "reference/mxfp4.h"

#include <cmath>
#include <limits>

namespace w4a8moe::reference {

namespace {

constexpr float kE2m1Magnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
constexpr int kE2m1MaxExponent = 2;  // 6 = 1.5 * 2^2

// The code of the e2m1 magnitude nearest to |x| (x already divided by the block's scale), ties to the even code.
uint8_t nearest_e2m1(float x) {
  float const magnitude = std::fabs(x);
  uint8_t best = 0;
  for (uint8_t code = 1; code < 8; ++code) {
    float const error = std::fabs(kE2m1Magnitudes[code] - magnitude);
    float const best_error = std::fabs(kE2m1Magnitudes[best] - magnitude);
    if (error < best_error || (error == best_error && code % 2 == 0)) best = code;
  }
  return uint8_t(best | (std::signbit(x) && best != 0 ? 8 : 0));
}

}  // namespace

float e2m1_value(uint8_t code) {
  float const magnitude = kE2m1Magnitudes[code & 7];
  return (code & 8) ? -magnitude : magnitude;
}

double e8m0_value(uint8_t bits) {
  return bits == kE8m0Nan ? std::numeric_limits<double>::quiet_NaN() : std::ldexp(1.0, int(bits) - kE8m0Bias);
}

std::vector<float> dequantize_mxfp4(uint8_t const* blocks, uint8_t const* scales, int64_t rows, int64_t k) {
  std::vector<float> w(size_t(rows * k));
  int64_t const blocks_per_row = k / kMxfp4BlockSize;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      double const scale = e8m0_value(scales[r * blocks_per_row + b]);
      uint8_t const* bytes = blocks + (r * blocks_per_row + b) * kMxfp4BlockBytes;
      for (int j = 0; j < kMxfp4BlockBytes; ++j) {
        float* out = &w[size_t(r * k + b * kMxfp4BlockSize + 2 * j)];
        out[0] = float(e2m1_value(bytes[j] & 0x0F) * scale);
        out[1] = float(e2m1_value(bytes[j] >> 4) * scale);
      }
    }
  }
  return w;
}

void quantize_mxfp4(float const* w, int64_t rows, int64_t k, uint8_t* blocks, uint8_t* scales) {
  int64_t const blocks_per_row = k / kMxfp4BlockSize;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks_per_row; ++b) {
      float const* values = w + r * k + b * kMxfp4BlockSize;
      float amax = 0.0f;
      for (int i = 0; i < kMxfp4BlockSize; ++i) amax = std::fmax(amax, std::fabs(values[i]));
      int exponent = -kE8m0Bias;
      if (amax > 0.0f) {
        int amax_exponent = 0;
        std::frexp(amax, &amax_exponent);  // amax = m * 2^e, m in [0.5, 1): floor(log2 amax) = e - 1
        exponent = amax_exponent - 1 - kE2m1MaxExponent;
        exponent = exponent < -kE8m0Bias ? -kE8m0Bias : exponent > kE8m0Bias ? kE8m0Bias : exponent;
      }
      scales[r * blocks_per_row + b] = uint8_t(exponent + kE8m0Bias);
      uint8_t* bytes = blocks + (r * blocks_per_row + b) * kMxfp4BlockBytes;
      for (int j = 0; j < kMxfp4BlockBytes; ++j) {
        uint8_t const low = nearest_e2m1(float(std::ldexp(double(values[2 * j]), -exponent)));
        uint8_t const high = nearest_e2m1(float(std::ldexp(double(values[2 * j + 1]), -exponent)));
        bytes[j] = uint8_t(low | (high << 4));
      }
    }
  }
}

}  // namespace w4a8moe::reference
