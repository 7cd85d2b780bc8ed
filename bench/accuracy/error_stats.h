// The error measure of the report: per-row (per-token) relative L2 error, summarised over rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace w4a8moe::accuracy {

struct ErrorStats {
  double mean = 0, p99 = 0, max = 0;  // of ||got_row - want_row|| / ||want_row|| over rows
};

// ||got_row - want_row|| / ||want_row|| of each row; got and want are [rows, cols] row-major; rows whose `want` is
// all zero are skipped.
template <class Got, class Want>
std::vector<double> relative_l2_per_row(std::vector<Got> const& got, std::vector<Want> const& want, int64_t rows,
                                        int64_t cols) {
  std::vector<double> errors;
  errors.reserve(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double diff2 = 0, want2 = 0;
    for (int64_t c = 0; c < cols; ++c) {
      double const w = double(want[size_t(r * cols + c)]);
      double const d = double(got[size_t(r * cols + c)]) - w;
      diff2 += d * d;
      want2 += w * w;
    }
    if (want2 > 0) errors.push_back(std::sqrt(diff2 / want2));
  }
  return errors;
}

// The q-quantile of ascending, non-empty values: the value with a fraction q of them at or below it.
inline double quantile(std::vector<double> const& sorted, double q) {
  return sorted[size_t(std::ceil(q * double(sorted.size()))) - 1];
}

// relative_l2_per_row summarised.
template <class Got, class Want>
ErrorStats relative_l2_by_row(std::vector<Got> const& got, std::vector<Want> const& want, int64_t rows, int64_t cols) {
  std::vector<double> errors = relative_l2_per_row(got, want, rows, cols);
  ErrorStats stats;
  if (errors.empty()) return stats;
  std::sort(errors.begin(), errors.end());
  for (double e : errors) stats.mean += e;
  stats.mean /= double(errors.size());
  stats.p99 = quantile(errors, 0.99);
  stats.max = errors.back();
  return stats;
}

}  // namespace w4a8moe::accuracy
