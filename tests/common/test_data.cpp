#include "test_data.h"

#include <algorithm>
#include <cmath>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "reference/mxfp4.h"

namespace w4a8moe::testing {

reference::QuantizedExperts random_experts(ExpertWeightShape const& shape, std::mt19937_64& rng,
                                           std::vector<uint16_t>* bf16_scales) {
  reference::QuantizedExperts experts;
  experts.shape = shape;
  size_t const rows = size_t(shape.num_experts) * shape.n;
  size_t const groups = padded_k(shape.k) / shape.group_size;  // the last group may be partial
  experts.q.resize(rows * shape.k);
  // splitmix64, 16 nibbles a call: the Mixtral- and DeepSeek-sized tests draw billions of weights.
  uint64_t state = rng();
  for (size_t i = 0; i < experts.q.size(); i += 16) {
    uint64_t x = (state += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    for (size_t j = 0; j < 16 && i + j < experts.q.size(); ++j) experts.q[i + j] = int8_t(int((x >> (4 * j)) & 0xF) - 8);
  }

  std::vector<uint16_t> scales(rows * groups);
  std::lognormal_distribution<float> row_scale(std::log(0.01f), 0.8f);  // per-channel spread
  std::uniform_real_distribution<float> group_spread(0.25f, 1.0f);
  for (size_t r = 0; r < rows; ++r) {
    float const base = row_scale(rng);
    for (size_t g = 0; g < groups; ++g) scales[r * groups + g] = float_to_bf16(base * group_spread(rng));
  }
  reference::split_bf16_scales(scales, &experts);
  if (bf16_scales) {
    *bf16_scales = std::move(scales);
  } else {
    experts.table_step.clear();  // only e4m3 sg and fp32 sc leave here: tables e4m3(q * sg)
  }
  return experts;
}

reference::Mxfp4Experts random_mxfp4_experts(ExpertWeightShape const& shape, std::mt19937_64& rng) {
  int64_t const rows = int64_t(shape.num_experts) * shape.n, row_blocks = shape.k / reference::kMxfp4BlockSize;
  reference::Mxfp4Experts experts{shape, std::vector<uint8_t>(size_t(rows) * shape.k / 2),
                                  std::vector<uint8_t>(size_t(rows * row_blocks))};
  // Chunks of rows on the host's threads (gpt-oss-sized tests draw hundreds of millions of weights), each from a
  // generator of its own seeded by one draw of `rng` and the chunk's first row: the same experts for a seed whatever
  // the thread count, as parallel_for's chunks start at fixed rows.
  constexpr int64_t kRowsPerChunk = 64;
  uint64_t const seed = rng();
  parallel_for(rows, kRowsPerChunk, host_threads(), [&](int64_t begin, int64_t end) {
    std::mt19937_64 chunk_rng(seed + uint64_t(begin) * 0x9E3779B97F4A7C15ull);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::lognormal_distribution<float> row_scale(std::log(0.01f), 0.8f);
    std::uniform_int_distribution<int> block_exponent(-3, 3), zero_block(0, 15);
    std::vector<float> w(size_t(end - begin) * shape.k);
    for (int64_t r = 0; r < end - begin; ++r) {
      float const base = row_scale(chunk_rng);
      for (int64_t b = 0; b < row_blocks; ++b) {
        float const scale = zero_block(chunk_rng) == 0 ? 0.0f : std::ldexp(base, block_exponent(chunk_rng));
        float* block = w.data() + r * shape.k + b * reference::kMxfp4BlockSize;
        for (int i = 0; i < reference::kMxfp4BlockSize; ++i) block[i] = scale * normal(chunk_rng);
      }
    }
    reference::quantize_mxfp4(w.data(), end - begin, shape.k, experts.blocks.data() + size_t(begin) * shape.k / 2,
                              experts.scales.data() + size_t(begin * row_blocks));
  });
  return experts;
}

QuantizedActivations random_activations(int64_t rows, int k, std::mt19937_64& rng) {
  QuantizedActivations out;
  out.act.assign(size_t(rows) * padded_k(k), 0);  // zeros past K, as the layer's quantisation writes them
  out.scales.resize(rows);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(k);
  for (int64_t m = 0; m < rows; ++m) {
    float amax = 0.0f;
    for (int i = 0; i < k; ++i) {
      x[i] = normal(rng) * ((i % 97 == 0) ? 8.0f : 1.0f);  // a few outlier channels, as in real hidden states
      amax = std::max(amax, std::fabs(x[i]));
    }
    float const st = amax / kE4M3Max;
    out.scales[m] = st;
    for (int i = 0; i < k; ++i) out.act[size_t(m) * padded_k(k) + i] = float_to_e4m3(x[i] / st);
  }
  return out;
}

void random_hidden_states(size_t count, bool fp16, std::mt19937_64& rng, std::vector<uint16_t>* bits,
                          std::vector<float>* values) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  bits->resize(count);
  values->resize(count);
  for (size_t i = 0; i < count; ++i) {
    float const x = normal(rng) * ((i % 61 == 0) ? 6.0f : 1.0f);
    (*bits)[i] = fp16 ? float_to_fp16(x) : float_to_bf16(x);
    (*values)[i] = fp16 ? fp16_to_float((*bits)[i]) : bf16_to_float((*bits)[i]);
  }
}

std::vector<int64_t> offsets_from_counts(std::vector<int64_t> const& counts, int64_t first_row) {
  std::vector<int64_t> offsets(counts.size() + 1, first_row);
  for (size_t i = 0; i < counts.size(); ++i) offsets[i + 1] = offsets[i] + counts[i];
  return offsets;
}

}  // namespace w4a8moe::testing
