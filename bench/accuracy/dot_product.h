// The float64 inner product every CPU path of the report uses.
#pragma once

#include <cstdint>

namespace w4a8moe::accuracy {

// sum_k a[k] * b[k], summed in float64. Each product is formed in fp32, which is exact for every pair of formats
// compared here: the operands carry at most 8 (bf16, e4m3) and 12 (int4 times a bf16 scale) significant bits, 20
// together, within fp32's 24. Eight partial sums let the compiler vectorise; their float64 rounding (~1e-16) is far
// below any effect measured.
inline double dot_product(float const* a, float const* b, int64_t k) {
  double partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += double(a[i + j] * b[i + j]);
  }
  double sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
               ((partial[4] + partial[5]) + (partial[6] + partial[7]));
  for (; i < k; ++i) sum += double(a[i] * b[i]);
  return sum;
}

}  // namespace w4a8moe::accuracy
