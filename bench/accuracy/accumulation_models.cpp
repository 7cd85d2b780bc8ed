#include "accumulation_models.h"

#include <algorithm>
#include <cmath>

namespace w4a8moe::accuracy {

float tensor_core_add(float accumulator, float const* products, int count) {
  float largest = std::fabs(accumulator);
  for (int i = 0; i < count; ++i) largest = std::max(largest, std::fabs(products[i]));
  if (largest == 0.0f) return 0.0f;
  // Work in integer units of 2^(e - 13), e the largest addend's exponent: each truncated addend is an integer below
  // 2^14, so their sum is exact in double for any block the report uses.
  int const exponent = std::ilogb(largest);
  double const to_units = std::ldexp(1.0, kTensorCoreFractionBits - exponent);
  double units = std::trunc(double(accumulator) * to_units);
  for (int i = 0; i < count; ++i) units += std::trunc(double(products[i]) * to_units);
  // A carry out of the top bit leaves more than 13 fraction bits: truncate the normalised sum again.
  double const magnitude = std::fabs(units);
  if (magnitude >= std::ldexp(1.0, kTensorCoreFractionBits + 1)) {
    double const step = std::ldexp(1.0, std::ilogb(magnitude) - kTensorCoreFractionBits);
    units = std::trunc(units / step) * step;
  }
  return float(units / to_units);
}

float fast_accumulation_sum(float const* products, int64_t k, int block) {
  float accumulator = 0.0f;
  for (int64_t i = 0; i < k; i += block) {
    accumulator = tensor_core_add(accumulator, products + i, int(std::min<int64_t>(block, k - i)));
  }
  return accumulator;
}

float chunked_scaled_sum(float const* products, float const* group_scales, int64_t k, int chunk, int block) {
  float total = 0.0f;
  for (int64_t g = 0; g * chunk < k; ++g) {
    float const* p = products + g * chunk;
    int64_t const count = std::min<int64_t>(chunk, k - g * chunk);
    float chunk_sum;
    if (block == 0) {
      double exact = 0.0;
      for (int64_t i = 0; i < count; ++i) exact += p[i];
      chunk_sum = float(exact);
    } else {
      chunk_sum = fast_accumulation_sum(p, count, block);
    }
    total = std::fma(chunk_sum, group_scales[g], total);
  }
  return total;
}

}  // namespace w4a8moe::accuracy
