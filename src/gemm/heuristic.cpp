#include "gemm/heuristic.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace w4a8moe::gemm {
namespace {

// Machine constants of the time model. H100 SXM figures; see bench/NOTES.md for the measurements behind them.
constexpr double kHbmBytesPerUs = 3.0e6;       // streaming read measured on the lent H100: ~3.0 TB/s
constexpr double kSmBytesPerUs = 5.0e4;        // what one SM's TMA loads pull when few SMs are busy: ~50 GB/s
constexpr double kFp8FlopsPerUsPerSm = 1.5e7 * 0.55;  // dense fp8 peak / 132 SMs, times the mixed-input mainloop's
                                                      // efficiency (LUT conversion in the consumer warps)
constexpr double kLaunchUs = 4.0;              // launch, pointer-array set-up and tensormap updates

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::vector<int64_t> estimate_rows_per_active_expert(HeuristicInput const& input) {
  std::vector<int64_t> rows;
  if (!input.rows_per_expert.empty()) {
    for (int64_t r : input.rows_per_expert) {
      if (r > 0) rows.push_back(r);
    }
    return rows;
  }
  if (input.total_rows <= 0 || input.num_experts <= 0) return rows;
  double const e = input.num_experts;
  double const draws = double(input.total_rows);
  // Expected number of distinct experts among `draws` uniform picks.
  int64_t active = int64_t(std::llround(e * (1.0 - std::pow(1.0 - 1.0 / e, draws))));
  active = std::clamp<int64_t>(active, 1, std::min<int64_t>(input.num_experts, input.total_rows));
  int64_t remaining = input.total_rows;
  if (input.max_rows_per_expert > 0 && input.max_rows_per_expert < input.total_rows && active > 1) {
    rows.push_back(input.max_rows_per_expert);
    remaining -= input.max_rows_per_expert;
    --active;
  }
  for (int64_t i = 0; i < active; ++i) {
    int64_t const share = remaining / (active - i);
    rows.push_back(std::max<int64_t>(share, 1));
    remaining -= share;
  }
  return rows;
}

double predicted_time_us(GemmConfig const& config, HeuristicInput const& input, std::vector<int64_t> const& rows) {
  double const k = input.k, n = input.n;
  double const weight_bytes_per_expert = n * k / 2 + n * (k / 128) * 8 + n * 4;
  double total_bytes = 0;
  int64_t tiles = 0;
  for (int64_t m : rows) {
    total_bytes += weight_bytes_per_expert + double(m) * (k + 2 * n);
    tiles += ceil_div(input.n, config.tile_m) * ceil_div(m, config.tile_n);
  }
  if (tiles == 0) return kLaunchUs;
  double const tile_bytes = config.tile_m * (k / 2 + (k / 128) * 8) + config.tile_n * k;
  double const tile_flops = 2.0 * config.tile_m * config.tile_n * k;
  double const tile_us = std::max(tile_flops / kFp8FlopsPerUsPerSm, tile_bytes / kSmBytesPerUs);
  double const waves = std::ceil(double(tiles) / std::max(1, input.sm_count));
  return std::max(total_bytes / kHbmBytesPerUs, waves * tile_us) + kLaunchUs;
}

GemmConfig select_config(HeuristicInput const& input, std::vector<GemmConfig> const& candidates) {
  std::vector<int64_t> const rows = estimate_rows_per_active_expert(input);
  GemmConfig best = candidates.empty() ? GemmConfig{} : candidates.front();
  double best_us = std::numeric_limits<double>::infinity();
  for (auto const& config : candidates) {
    double const us = predicted_time_us(config, input, rows);
    if (us < best_us * (1 - 1e-9)) {
      best_us = us;
      best = config;
    }
  }
  return best;
}

}  // namespace w4a8moe::gemm
