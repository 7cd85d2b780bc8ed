#include "realistic_data.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "common/float_formats.h"
#include "parallel.h"

namespace w4a8moe::accuracy {
namespace {

// Weights: typical magnitude of a transformer projection (~1/sqrt(hidden)), Student-t elements, lognormal output
// channel scales, and four outlier input channels of 5-20x.
constexpr double kWeightBase = 0.02;
constexpr double kWeightDegreesOfFreedom = 8.0;  // generated as chi-squared from four uniforms, so it must stay 8
constexpr double kWeightRowSigma = 0.6;
constexpr int kWeightOutlierColumns = 4;
constexpr double kWeightOutlierMin = 5.0, kWeightOutlierMax = 20.0;

// Hidden states: channel and token spread, and six channels 10-30x the typical one.
constexpr double kHiddenChannelSigma = 0.5;
constexpr double kHiddenTokenSigma = 0.3;
constexpr int kHiddenOutlierChannels = 6;
constexpr double kHiddenOutlierMin = 10.0, kHiddenOutlierMax = 30.0;
constexpr double kHiddenOutlierJitter = 0.1;  // relative spread of an outlier channel across tokens

// Down-projection inputs: gate pre-activations N(0, 1.5^2), up with lognormal channel spread and one channel per
// 1024 (at least 4) of 10-20x.
constexpr double kGateSigma = 1.5;
constexpr double kUpChannelSigma = 0.5;
constexpr int kUpColumnsPerOutlier = 1024;
constexpr int kMinUpOutliers = 4;
constexpr double kUpOutlierMin = 10.0, kUpOutlierMax = 20.0;

// Streams keep the draws of different quantities independent under one seed.
enum Stream : uint64_t {
  kHiddenStream = 1ull << 40,
  kHiddenChannelStream,
  kIntermediateStream,
  kIntermediateChannelStream,
  kRouterStream,
};
constexpr uint64_t kColumnRow = ~0ull;  // the "row" whose draws pick a matrix's outlier columns

// splitmix64 over a counter: row r of a matrix is drawn independently of every other row.
class Random {
 public:
  Random(uint64_t seed, uint64_t stream, uint64_t row) : state_(mix(mix(seed ^ mix(stream + 0x51ED)) ^ row)) {}

  double uniform(double lo, double hi) { return lo + (hi - lo) * unit(); }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double const radius = std::sqrt(-2.0 * std::log(unit()));
    double const angle = 2.0 * M_PI * unit();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }
  double student_t8() {
    double const chi_squared = -2.0 * std::log(unit() * unit() * unit() * unit());  // 8 degrees of freedom
    return normal() / std::sqrt(chi_squared / kWeightDegreesOfFreedom);
  }
  double lognormal(double sigma) { return std::exp(sigma * normal()); }
  bool coin() { return (next() >> 63) != 0; }
  uint64_t below(uint64_t bound) { return next() % bound; }

 private:
  static uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  }
  uint64_t next() { return mix(state_ += 0x9E3779B97F4A7C15ull); }
  double unit() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1): never 0, so log is finite

  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Per-column multipliers: 1, except `count` distinct random columns with a magnitude drawn from [lo, hi].
std::vector<double> outlier_columns(int64_t cols, int count, double lo, double hi, Random& random) {
  std::vector<double> scale(cols, 1.0);
  std::set<uint64_t> chosen;
  while (int(chosen.size()) < std::min<int64_t>(count, cols)) chosen.insert(random.below(cols));
  for (uint64_t c : chosen) scale[c] = random.uniform(lo, hi);
  return scale;
}

float round_to_bf16(double x) { return bf16_to_float(float_to_bf16(float(x))); }

}  // namespace

std::string weight_statistics_description() {
  std::ostringstream text;
  text << "W = " << kWeightBase << " * row_scale * col_scale * t, t ~ Student-t(" << kWeightDegreesOfFreedom
       << "), row_scale ~ lognormal(0, " << kWeightRowSigma << "), col_scale = 1 except " << kWeightOutlierColumns
       << " input channels of U(" << kWeightOutlierMin << ", " << kWeightOutlierMax << ")x; bf16";
  return text.str();
}

std::string hidden_state_statistics_description() {
  std::ostringstream text;
  text << "x = token_scale * channel_scale * N(0, 1), token_scale ~ lognormal(0, " << kHiddenTokenSigma
       << "), channel_scale ~ lognormal(0, " << kHiddenChannelSigma << "); " << kHiddenOutlierChannels
       << " channels of fixed sign and U(" << kHiddenOutlierMin << ", " << kHiddenOutlierMax << ")x magnitude ("
       << 100 * kHiddenOutlierJitter << "% jitter); bf16";
  return text.str();
}

std::string intermediate_statistics_description() {
  std::ostringstream text;
  text << "x = SiLU(g) * u, g ~ N(0, " << kGateSigma << "^2), u ~ channel_scale * N(0, 1), channel_scale ~ "
       << "lognormal(0, " << kUpChannelSigma << ") and max(" << kMinUpOutliers << ", width/" << kUpColumnsPerOutlier
       << ") channels of U(" << kUpOutlierMin << ", " << kUpOutlierMax << ")x; bf16";
  return text.str();
}

std::vector<uint16_t> realistic_weights(int64_t rows, int64_t cols, uint64_t seed, uint64_t stream) {
  Random column_random(seed, stream, kColumnRow);
  auto const col_scale =
      outlier_columns(cols, kWeightOutlierColumns, kWeightOutlierMin, kWeightOutlierMax, column_random);
  std::vector<uint16_t> weights(size_t(rows) * cols);
  parallel_for(rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      Random random(seed, stream, uint64_t(r));
      double const row_scale = kWeightBase * random.lognormal(kWeightRowSigma);
      uint16_t* row = weights.data() + size_t(r) * cols;
      for (int64_t c = 0; c < cols; ++c) row[c] = float_to_bf16(float(row_scale * col_scale[c] * random.student_t8()));
    }
  });
  return weights;
}

std::vector<float> realistic_hidden_states(int64_t tokens, int width, uint64_t seed) {
  Random channel_random(seed, kHiddenChannelStream, 0);
  std::vector<double> channel_scale(width);
  for (auto& s : channel_scale) s = channel_random.lognormal(kHiddenChannelSigma);
  // Outlier channels replace the Gaussian value by a large one of fixed sign.
  std::vector<double> outlier(width, 0.0);
  std::set<uint64_t> chosen;
  while (int(chosen.size()) < std::min(kHiddenOutlierChannels, width)) chosen.insert(channel_random.below(width));
  for (uint64_t c : chosen) {
    outlier[c] = (channel_random.coin() ? 1.0 : -1.0) * channel_random.uniform(kHiddenOutlierMin, kHiddenOutlierMax);
  }
  std::vector<float> hidden(size_t(tokens) * width);
  parallel_for(tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      Random random(seed, kHiddenStream, uint64_t(t));
      double const token_scale = random.lognormal(kHiddenTokenSigma);
      for (int c = 0; c < width; ++c) {
        double const x = outlier[c] != 0.0 ? outlier[c] * (1.0 + kHiddenOutlierJitter * random.normal())
                                           : channel_scale[c] * random.normal();
        hidden[size_t(t) * width + c] = round_to_bf16(token_scale * x);
      }
    }
  });
  return hidden;
}

std::vector<float> realistic_intermediate_states(int64_t rows, int width, uint64_t seed) {
  Random channel_random(seed, kIntermediateChannelStream, 0);
  std::vector<double> up_scale(width);
  for (auto& s : up_scale) s = channel_random.lognormal(kUpChannelSigma);
  int const outliers = std::max(kMinUpOutliers, width / kUpColumnsPerOutlier);
  auto const boost = outlier_columns(width, outliers, kUpOutlierMin, kUpOutlierMax, channel_random);
  std::vector<float> states(size_t(rows) * width);
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      Random random(seed, kIntermediateStream, uint64_t(r));
      for (int c = 0; c < width; ++c) {
        double const gate = kGateSigma * random.normal();
        double const up = up_scale[c] * boost[c] * random.normal();
        states[size_t(r) * width + c] = round_to_bf16(gate / (1.0 + std::exp(-gate)) * up);
      }
    }
  });
  return states;
}

std::vector<float> router_logits(int64_t tokens, int experts, uint64_t seed) {
  std::vector<float> logits(size_t(tokens) * experts);
  for (int64_t t = 0; t < tokens; ++t) {
    Random random(seed, kRouterStream, uint64_t(t));
    for (int e = 0; e < experts; ++e) logits[size_t(t) * experts + e] = float(random.normal());
  }
  return logits;
}

}  // namespace w4a8moe::accuracy
