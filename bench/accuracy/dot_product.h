// The float64 inner product every CPU path of the report uses.
#pragma once

#include <cstdint>

namespace w4a8moe::accuracy {

// sum_k a[k] * b[k] in float64. Every product of the formats compared here (bf16, e4m3, int4 times a bf16 or e4m3
// scale) is exact in float64, and eight partial sums let the compiler vectorise without changing the accuracy
// that matters (float64 rounding is ~1e-16, far below any effect measured).
inline double dot_product(float const* a, float const* b, int64_t k) {
  double partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += double(a[i + j]) * double(b[i + j]);
  }
  double sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
               ((partial[4] + partial[5]) + (partial[6] + partial[7]));
  for (; i < k; ++i) sum += double(a[i]) * double(b[i]);
  return sum;
}

}  // namespace w4a8moe::accuracy
