#include "layer_numerics.h"

#include <algorithm>
#include <cmath>

#include "common/float_formats.h"
#include "dot_product.h"
#include "expert_quantization.h"
#include "parallel.h"
#include "realistic_data.h"
#include "reference/mxfp4.h"

namespace w4a8moe::accuracy {
namespace {

// One channel's lookup-table weights e4m3(q * s / c / 8) (before the channel scale 8 c) for the c among max|s| / 448
// times 2^(j/16), j = 0..15, whose weights are nearest the checkpoint's q * s in squared error; returns that 8 c.
// q: the channel's K values; scales: its groups' bf16 scales as floats.
float searched_channel_weights(int8_t const* q, float const* scales, int64_t groups, int64_t k, int group_size,
                               float* out) {
  float amax = 0.0f;
  for (int64_t g = 0; g < groups; ++g) amax = std::max(amax, std::fabs(scales[g]));
  if (amax == 0.0f) {
    std::fill(out, out + k, 0.0f);
    return 0.0f;
  }
  double best_error = -1.0;
  float best_c = 0.0f;
  for (int j = 0; j < 16; ++j) {
    float const c = amax / kE4M3Max * std::exp2(float(j) / 16.0f);
    double error = 0.0;
    for (int64_t i = 0; i < k; ++i) {
      float const step = scales[i / group_size] / c / 8.0f;
      double const value = double(e4m3_to_float(float_to_e4m3(float(q[i]) * step))) * 8.0 * c;
      double const d = value - double(q[i]) * scales[i / group_size];
      error += d * d;
    }
    if (best_error < 0.0 || error < best_error) best_error = error, best_c = c;
  }
  for (int64_t i = 0; i < k; ++i) {
    out[i] = e4m3_to_float(float_to_e4m3(float(q[i]) * (scales[i / group_size] / best_c / 8.0f)));
  }
  return 8.0f * best_c;
}

enum Projection : uint64_t { kGate = 0, kUp = 1, kDown = 2 };

uint64_t weight_stream(int expert, Projection projection) { return uint64_t(expert) * 4 + projection; }

// One expert's weights as the GEMM multiplies them, [N, K], and the per-output-channel scale applied after the sum
// (empty: none).
struct ExpertWeights {
  int64_t n = 0, k = 0;
  std::vector<float> values;
  std::vector<float> channel_scales;
};

ExpertWeights expert_weights(LayerProblem const& p, bool down, int e, WeightNumerics numerics) {
  reference::QuantizedExperts const& quantized = down ? p.int4.gemm2 : p.int4.gemm1;
  std::vector<uint16_t> const& bf16 = down ? p.gemm2_bf16 : p.gemm1_bf16;
  std::vector<uint16_t> const& scales = down ? p.gemm2_scales : p.gemm1_scales;
  ExpertWeights w;
  w.n = quantized.shape.n;
  w.k = quantized.shape.k;
  int64_t const groups = quantized.group_count();
  int const group_size = quantized.shape.group_size;
  w.values.resize(size_t(w.n) * w.k);
  bool const has_channel_scale = numerics != WeightNumerics::kBF16 && numerics != WeightNumerics::kInt4BF16Scales &&
                                 numerics != WeightNumerics::kMxfp4;
  if (has_channel_scale) w.channel_scales.resize(w.n);
  parallel_for(w.n, 64, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> fp8_row(w.k);
    for (int64_t n = begin; n < end; ++n) {
      float* out = w.values.data() + size_t(n) * w.k;
      uint16_t const* source = bf16.data() + (size_t(e) * w.n + n) * w.k;
      int8_t const* q = quantized.q.data() + quantized.q_index(e, int(n), 0);
      switch (numerics) {
        case WeightNumerics::kBF16:
          for (int64_t k = 0; k < w.k; ++k) out[k] = bf16_to_float(source[k]);
          break;
        case WeightNumerics::kInt4BF16Scales:
          for (int64_t k = 0; k < w.k; ++k) {
            out[k] = float(q[k]) * bf16_to_float(scales[(size_t(e) * w.n + n) * groups + k / group_size]);
          }
          break;
        case WeightNumerics::kInt4SearchedChannelScale: {
          std::vector<float> row_scales(groups);
          for (int64_t g = 0; g < groups; ++g) {
            row_scales[g] = bf16_to_float(scales[(size_t(e) * w.n + n) * groups + g]);
          }
          w.channel_scales[n] = searched_channel_weights(q, row_scales.data(), groups, w.k, group_size, out);
          break;
        }
        case WeightNumerics::kInt4SplitScales:
        case WeightNumerics::kInt4SplitScalesExactQSg:
        case WeightNumerics::kInt4DoubleRoundingLut: {
          float const channel_scale = quantized.channel_scale[size_t(e) * w.n + n];
          for (int64_t g = 0; g < groups; ++g) {
            int64_t const scale = quantized.scale_index(e, int(n), int(g));
            float const sg = e4m3_to_float(quantized.group_scale[scale]);
            float value_of_q[16];  // what each int4 value becomes in this group, as the kernel's lookup table
            for (int v = -8; v < 8; ++v) {
              if (numerics == WeightNumerics::kInt4SplitScales) {
                value_of_q[v + 8] = reference::dequantized_weight(v, quantized.step(scale));
              } else if (numerics == WeightNumerics::kInt4SplitScalesExactQSg) {
                value_of_q[v + 8] = float(v) * sg;
              } else {
                value_of_q[v + 8] = reference::dequantized_weight(v, sg);
              }
            }
            for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k) out[k] = value_of_q[q[k] + 8];
          }
          w.channel_scales[n] = channel_scale;
          break;
        }
        case WeightNumerics::kMxfp4: {
          std::vector<float> row(w.k);
          for (int64_t k = 0; k < w.k; ++k) row[k] = bf16_to_float(source[k]);
          std::vector<uint8_t> blocks(size_t(w.k) / 2), block_scales(size_t(w.k) / reference::kMxfp4BlockSize);
          reference::quantize_mxfp4(row.data(), 1, w.k, blocks.data(), block_scales.data());
          auto const values = reference::dequantize_mxfp4(blocks.data(), block_scales.data(), 1, w.k);
          std::copy(values.begin(), values.end(), out);
          break;
        }
        case WeightNumerics::kFP8PerChannel:
          for (int64_t k = 0; k < w.k; ++k) out[k] = bf16_to_float(source[k]);
          reference::quantize_row(out, int(w.k), fp8_row.data(), &w.channel_scales[n]);
          for (int64_t k = 0; k < w.k; ++k) out[k] = e4m3_to_float(fp8_row[k]);
          break;
      }
    }
  });
  return w;
}

// GEMM inputs [rows, K] as the GEMM multiplies them, and the per-row scale applied after the sum.
struct Activations {
  int64_t rows = 0, k = 0;
  std::vector<float> values;
  std::vector<float> row_scales;
};

// The columns that share a scale in GEMM2's input under `numerics` (0: the whole row).
int64_t gemm2_scale_columns(ActivationNumerics numerics) {
  return numerics == ActivationNumerics::kFP8Gemm2PerGroup128 ? 128
         : numerics == ActivationNumerics::kFP8Gemm2PerGroup64 ? 64
                                                                : 0;
}

// `gemm2`: the input of GEMM2. Scales per group of columns are applied to the values themselves (the products are
// exact either way; a kernel would apply them per K block), leaving the row scale 1.
Activations quantize_activations(std::vector<float> const& x, int64_t rows, int64_t k, ActivationNumerics numerics,
                                 bool gemm2) {
  Activations a{rows, k, std::vector<float>(x.size()), std::vector<float>(rows, 1.0f)};
  int64_t const group = gemm2 ? gemm2_scale_columns(numerics) : 0;
  std::vector<uint8_t> fp8_row(k);
  for (int64_t r = 0; r < rows; ++r) {
    float const* in = x.data() + size_t(r) * k;
    float* out = a.values.data() + size_t(r) * k;
    if (numerics == ActivationNumerics::kBF16) {
      for (int64_t i = 0; i < k; ++i) out[i] = bf16_to_float(float_to_bf16(in[i]));
    } else if (group == 0) {
      reference::quantize_row(in, int(k), fp8_row.data(), &a.row_scales[r]);
      for (int64_t i = 0; i < k; ++i) out[i] = e4m3_to_float(fp8_row[i]);
    } else {
      for (int64_t first = 0; first < k; first += group) {
        int const columns = int(std::min(group, k - first));
        float scale = 0.0f;
        reference::quantize_row(in + first, columns, fp8_row.data(), &scale);
        for (int i = 0; i < columns; ++i) out[first + i] = e4m3_to_float(fp8_row[i]) * scale;
      }
    }
  }
  return a;
}

// out[r, n] = bf16(row_scale[r] * channel_scale[n] * sum_k a[r, k] w[n, k]), scales and sum in float64 as
// reference::expert_gemm_row does. Channels are split over threads; a chunk of 16 weight rows stays in cache while
// every activation row streams past it.
std::vector<float> expert_gemm(Activations const& a, ExpertWeights const& w) {
  std::vector<float> out(size_t(a.rows) * w.n);
  parallel_for(w.n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = 0; r < a.rows; ++r) {
      float const* row = a.values.data() + size_t(r) * a.k;
      for (int64_t n = begin; n < end; ++n) {
        double const channel_scale = w.channel_scales.empty() ? 1.0 : double(w.channel_scales[n]);
        double const scale = double(a.row_scales[r]) * channel_scale;
        double const sum = dot_product(row, w.values.data() + size_t(n) * w.k, w.k);
        out[size_t(r) * w.n + n] = bf16_to_float(float_to_bf16(float(scale * sum)));
      }
    }
  });
  return out;
}

}  // namespace

LayerProblem make_layer_problem(MoeModel const& model, int64_t tokens, uint64_t seed) {
  LayerProblem p;
  p.model = model;
  p.tokens = tokens;
  int const experts = model.experts, hidden = model.hidden, inter = model.inter;
  size_t const projection_size = size_t(inter) * hidden;
  p.gemm1_bf16.resize(size_t(experts) * 2 * projection_size);
  p.gemm2_bf16.resize(size_t(experts) * projection_size);
  for (int e = 0; e < experts; ++e) {
    auto const gate = realistic_weights(inter, hidden, seed, weight_stream(e, kGate));
    auto const up = realistic_weights(inter, hidden, seed, weight_stream(e, kUp));
    auto const down = realistic_weights(hidden, inter, seed, weight_stream(e, kDown));
    std::copy(gate.begin(), gate.end(), p.gemm1_bf16.begin() + size_t(e) * 2 * projection_size);
    std::copy(up.begin(), up.end(), p.gemm1_bf16.begin() + (size_t(e) * 2 + 1) * projection_size);
    std::copy(down.begin(), down.end(), p.gemm2_bf16.begin() + size_t(e) * projection_size);
  }
  p.int4.gemm1 = quantize_experts_rtn(p.gemm1_bf16, {experts, 2 * inter, hidden, kGroupSize}, &p.gemm1_scales);
  p.int4.gemm2 = quantize_experts_rtn(p.gemm2_bf16, {experts, hidden, inter, kGroupSize}, &p.gemm2_scales);
  p.hidden = realistic_hidden_states(tokens, hidden, seed);
  p.topk = reference::topk_softmax(router_logits(tokens, experts, seed), tokens, experts, model.top_k,
                                   /*renormalize=*/true);
  return p;
}

std::vector<LayerNumerics> const& layer_numerics() {
  static std::vector<LayerNumerics> const numerics = {
      {"bf16", WeightNumerics::kBF16, ActivationNumerics::kBF16,
       "bf16 weights and activations (the reference)"},
      {"w16a8", WeightNumerics::kBF16, ActivationNumerics::kFP8PerToken,
       "bf16 weights, per-token fp8 activations: activation quantisation alone"},
      {"w8a8", WeightNumerics::kFP8PerChannel, ActivationNumerics::kFP8PerToken,
       "fp8 e4m3 weights with per-channel fp32 scales, per-token fp8 activations"},
      {"w4a16", WeightNumerics::kInt4BF16Scales, ActivationNumerics::kBF16,
       "int4 RTN g128 weights with their bf16 scales, bf16 activations"},
      {"w4a16_split_scales", WeightNumerics::kInt4SplitScales, ActivationNumerics::kBF16,
       "W4A16 with the lookup-table layout's weights, e4m3(q * s / sc) * sc, bf16 activations"},
      {"w4a8_bf16_scales", WeightNumerics::kInt4BF16Scales, ActivationNumerics::kFP8PerToken,
       "int4 with bf16 scales applied exactly, fp8 activations (a kernel applying the group scale in fp32)"},
      {"w4a8_bf16_scales_act2_g128", WeightNumerics::kInt4BF16Scales, ActivationNumerics::kFP8Gemm2PerGroup128,
       "as w4a8_bf16_scales, GEMM2's input scaled per row and 128 columns (quantised in GEMM1's epilogue)"},
      {"w4a8_bf16_scales_act2_g64", WeightNumerics::kInt4BF16Scales, ActivationNumerics::kFP8Gemm2PerGroup64,
       "as w4a8_bf16_scales, GEMM2's input scaled per row and 64 columns"},
      {"w4a8_exact_qsg", WeightNumerics::kInt4SplitScalesExactQSg, ActivationNumerics::kFP8PerToken,
       "W4A8 with the split scales but q * sg not rounded to e4m3"},
      {"w4a8", WeightNumerics::kInt4SplitScales, ActivationNumerics::kFP8PerToken,
       "W4A8 as this project computes it: e4m3(q * s / sc) * sc, per-token fp8 activations"},
      {"w4a8_double_rounding_lut", WeightNumerics::kInt4DoubleRoundingLut, ActivationNumerics::kFP8PerToken,
       "W4A8 with the tables before bench/NOTES.md §51, e4m3(q * e4m3(s / sc)) * sc: the e4m3 sg rounded again"},
      {"w4a8_searched_channel_scale", WeightNumerics::kInt4SearchedChannelScale, ActivationNumerics::kFP8PerToken,
       "W4A8 with each channel's sc among 16 in [sc, 2 sc) chosen to minimise its tables' weight error (not built)"},
      {"mxfp4_a16", WeightNumerics::kMxfp4, ActivationNumerics::kBF16,
       "MXFP4 weights (e2m1, e8m0 per 32), bf16 activations (Marlin MXFP4's numerics)"},
      {"mxfp4_a8", WeightNumerics::kMxfp4, ActivationNumerics::kFP8PerToken,
       "MXFP4 weights, per-token fp8 activations: the MXFP4 layout's kernels"},
  };
  return numerics;
}

std::vector<double> layer_output(LayerProblem const& p, LayerNumerics const& numerics) {
  int const hidden = p.model.hidden, inter = p.model.inter, top_k = p.model.top_k;
  std::vector<double> out(size_t(p.tokens) * hidden, 0.0);
  for (int e = 0; e < p.model.experts; ++e) {
    std::vector<int64_t> slots;  // t * top_k + j of every (token, choice) routed to e
    for (int64_t s = 0; s < p.tokens * top_k; ++s) {
      if (p.topk.ids[s] == e) slots.push_back(s);
    }
    if (slots.empty()) continue;
    int64_t const rows = int64_t(slots.size());
    std::vector<float> x(size_t(rows) * hidden);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(p.hidden.begin() + (slots[r] / top_k) * hidden, hidden, x.begin() + r * hidden);
    }
    auto const gate_up = expert_gemm(quantize_activations(x, rows, hidden, numerics.activations, /*gemm2=*/false),
                                     expert_weights(p, /*down=*/false, e, numerics.weights));
    std::vector<float> mid(size_t(rows) * inter);
    for (int64_t r = 0; r < rows; ++r) reference::silu_mul(gate_up.data() + r * 2 * inter, inter, mid.data() + r * inter);
    auto const down = expert_gemm(quantize_activations(mid, rows, inter, numerics.activations, /*gemm2=*/true),
                                  expert_weights(p, /*down=*/true, e, numerics.weights));
    for (int64_t r = 0; r < rows; ++r) {
      double const weight = p.topk.weights[slots[r]];
      double* token_out = out.data() + (slots[r] / top_k) * hidden;
      for (int c = 0; c < hidden; ++c) token_out[c] += weight * down[size_t(r) * hidden + c];
    }
  }
  return out;
}

std::vector<float> project_reference_output(LayerProblem const& p, std::vector<int64_t> const& tokens) {
  return reference::moe_layer(p.hidden, p.topk, p.model.top_k, p.int4, /*expert_map=*/{},
                              /*apply_router_weight_on_input=*/false, /*half_output=*/false, tokens, worker_threads());
}

}  // namespace w4a8moe::accuracy
