#include "reference/gpt_oss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "reference/moe_reference.h"
#include "reference/mxfp4.h"

namespace w4a8moe::reference {

GptOssExperts dequantize_gpt_oss_experts(int num_experts, int hidden, int inter, uint8_t const* gemm1_blocks,
                                         uint8_t const* gemm1_scales, uint16_t const* gemm1_bias,
                                         uint8_t const* gemm2_blocks, uint8_t const* gemm2_scales,
                                         uint16_t const* gemm2_bias) {
  GptOssExperts experts;
  experts.num_experts = num_experts;
  experts.hidden_size = hidden;
  experts.intermediate_size = inter;
  int64_t const rows1 = int64_t(num_experts) * 2 * inter, rows2 = int64_t(num_experts) * hidden;
  experts.w1 = dequantize_mxfp4(gemm1_blocks, gemm1_scales, rows1, hidden);
  experts.w2 = dequantize_mxfp4(gemm2_blocks, gemm2_scales, rows2, inter);
  experts.b1.resize(size_t(rows1));
  experts.b2.resize(size_t(rows2));
  for (int64_t r = 0; r < rows1; ++r) experts.b1[size_t(r)] = bf16_to_float(gemm1_bias[r]);
  for (int64_t r = 0; r < rows2; ++r) experts.b2[size_t(r)] = bf16_to_float(gemm2_bias[r]);
  return experts;
}

double gpt_oss_swiglu(double gate, double up, double limit) {
  constexpr double kAlpha = 1.702;
  gate = std::min(gate, limit);
  up = std::clamp(up, -limit, limit);
  return (up + 1.0) * gate / (1.0 + std::exp(-kAlpha * gate));
}

std::vector<double> gpt_oss_moe_layer(std::vector<float> const& hidden, std::vector<float> const& logits,
                                      int64_t tokens, int k, GptOssExperts const& experts, double swiglu_limit) {
  int const e_count = experts.num_experts, h = experts.hidden_size, inter = experts.intermediate_size;
  std::vector<double> out(static_cast<size_t>(tokens) * h, 0.0), gate_up(2 * static_cast<size_t>(inter)),
      act(static_cast<size_t>(inter));
  for (int64_t t = 0; t < tokens; ++t) {
    float const* row_logits = &logits[size_t(t) * e_count];
    std::vector<int> order(static_cast<size_t>(e_count));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row_logits[a] > row_logits[b]; });
    double const top = row_logits[order[0]];
    double sum = 0.0;
    for (int j = 0; j < k; ++j) sum += std::exp(double(row_logits[order[size_t(j)]]) - top);
    float const* x = &hidden[size_t(t) * h];
    for (int j = 0; j < k; ++j) {
      int const e = order[size_t(j)];
      double const weight = std::exp(double(row_logits[e]) - top) / sum;
      for (int r = 0; r < 2 * inter; ++r) {
        float const* w = &experts.w1[(size_t(e) * 2 * inter + r) * h];
        double dot = experts.b1[size_t(e) * 2 * inter + r];
        for (int c = 0; c < h; ++c) dot += double(w[c]) * x[c];
        gate_up[size_t(r)] = dot;
      }
      for (size_t i = 0; i < act.size(); ++i) act[i] = gpt_oss_swiglu(gate_up[2 * i], gate_up[2 * i + 1], swiglu_limit);
      for (int r = 0; r < h; ++r) {
        float const* w = &experts.w2[(size_t(e) * h + r) * inter];
        double dot = experts.b2[size_t(e) * h + r];
        for (int i = 0; i < inter; ++i) dot += double(w[i]) * act[size_t(i)];
        out[size_t(t) * h + r] += weight * dot;
      }
    }
  }
  return out;
}

std::vector<float> gpt_oss_layer_as_staged(std::vector<float> const& hidden, TopK const& topk, int k,
                                           GptOssExperts const& experts, double swiglu_limit, bool half_output,
                                           std::vector<int64_t> const& tokens, int threads) {
  int const h = experts.hidden_size, inter = experts.intermediate_size;
  std::vector<float> out(tokens.size() * static_cast<size_t>(h));
  // One GEMM row: bias + st * sum_c w[c] * e4m3(a[c]) in float64, rounded as the GEMM's output.
  auto gemm_row = [&](float const* w, uint8_t const* a, int columns, float st, float bias) {
    double dot = 0.0;
    for (int c = 0; c < columns; ++c) dot += double(w[c]) * double(e4m3_to_float(a[c]));
    return round_activation(float(double(st) * dot + double(bias)), half_output);
  };
  parallel_for(int64_t(tokens.size()), 1, threads, [&](int64_t begin, int64_t end) {  // tokens are independent
    std::vector<uint8_t> act1(static_cast<size_t>(h)), act2(static_cast<size_t>(inter));
    std::vector<float> gate_up(2 * static_cast<size_t>(inter)), mid(static_cast<size_t>(inter)),
        sum(static_cast<size_t>(h));
    for (int64_t i = begin; i < end; ++i) {
      int64_t const t = tokens[size_t(i)];
      float st;
      quantize_row(&hidden[size_t(t) * h], h, act1.data(), &st);
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int j = 0; j < k; ++j) {
        int const e = topk.ids[size_t(t) * k + j];
        for (int r = 0; r < 2 * inter; ++r) {
          size_t const row = size_t(e) * 2 * inter + r;
          gate_up[size_t(r)] = gemm_row(&experts.w1[row * h], act1.data(), h, st, experts.b1[row]);
        }
        for (int c = 0; c < inter; ++c) {  // fp32, as the kernel (its ex2/rcp approximations aside)
          float const gate = std::min(gate_up[2 * size_t(c)], float(swiglu_limit));
          float const up = std::clamp(gate_up[2 * size_t(c) + 1], -float(swiglu_limit), float(swiglu_limit));
          mid[size_t(c)] = gate / (1.0f + std::exp(-1.702f * gate)) * (up + 1.0f);
        }
        float row_scale;
        quantize_row(mid.data(), inter, act2.data(), &row_scale);
        float const weight = topk.weights[size_t(t) * k + j];
        for (int r = 0; r < h; ++r) {
          size_t const row = size_t(e) * h + r;
          sum[size_t(r)] +=
              weight * gemm_row(&experts.w2[row * inter], act2.data(), inter, row_scale, experts.b2[row]);
        }
      }
      for (int c = 0; c < h; ++c) out[size_t(i) * h + c] = round_activation(sum[size_t(c)], half_output);
    }
  });
  return out;
}

}  // namespace w4a8moe::reference
