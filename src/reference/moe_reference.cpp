#include "reference/moe_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/float_formats.h"
#include "common/parallel_for.h"

namespace w4a8moe::reference {

TopK topk_softmax(std::vector<float> const& logits, int64_t tokens, int experts, int k, bool renormalize) {
  TopK out;
  out.ids.resize(size_t(tokens) * k);
  out.weights.resize(size_t(tokens) * k);
  std::vector<float> prob(experts);
  std::vector<int> order(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    float const* row = logits.data() + size_t(t) * experts;
    float const max = *std::max_element(row, row + experts);
    float sum = 0.0f;
    for (int e = 0; e < experts; ++e) sum += (prob[e] = std::exp(row[e] - max));
    for (int e = 0; e < experts; ++e) prob[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b]; });
    float chosen = 0.0f;
    for (int j = 0; j < k; ++j) chosen += prob[order[j]];
    for (int j = 0; j < k; ++j) {
      out.ids[size_t(t) * k + j] = order[j];
      out.weights[size_t(t) * k + j] = renormalize ? prob[order[j]] / chosen : prob[order[j]];
    }
  }
  return out;
}

namespace {

int local_expert(int32_t id, int experts, int local_experts, std::vector<int32_t> const& expert_map) {
  if (id < 0 || id >= experts) return -1;
  int const local = expert_map.empty() ? id : expert_map[id];
  return (local >= 0 && local < local_experts) ? local : -1;
}

}  // namespace

RoutingData routing_data(std::vector<int32_t> const& topk_ids, int64_t tokens, int k, int experts, int local_experts,
                         std::vector<int32_t> const& expert_map) {
  RoutingData data;
  int64_t const slots = tokens * k;
  std::vector<int64_t> counts(local_experts, 0);
  for (int64_t s = 0; s < slots; ++s) {
    int const e = local_expert(topk_ids[s], experts, local_experts, expert_map);
    if (e >= 0) ++counts[e];
  }
  data.offsets.assign(local_experts + 1, 0);
  for (int e = 0; e < local_experts; ++e) data.offsets[e + 1] = data.offsets[e] + counts[e];
  std::vector<int64_t> next(data.offsets.begin(), data.offsets.end() - 1);
  data.dest_row.assign(slots, -1);
  data.row_slot.assign(data.offsets.back(), -1);
  for (int64_t s = 0; s < slots; ++s) {
    int const e = local_expert(topk_ids[s], experts, local_experts, expert_map);
    if (e < 0) continue;
    int64_t const row = next[e]++;
    data.dest_row[s] = int32_t(row);
    data.row_slot[row] = int32_t(s);
  }
  return data;
}

void quantize_row(float const* x, int n, uint8_t* q, float* scale) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  float const inverse = amax > 0.0f ? kE4M3Max / amax : 0.0f;
  *scale = amax / kE4M3Max;
  for (int i = 0; i < n; ++i) q[i] = float_to_e4m3(x[i] * inverse);
}

float round_activation(float x, bool half) {
  return half ? fp16_to_float(float_to_fp16(x)) : bf16_to_float(float_to_bf16(x));
}

// Works group by group with a 16-entry table, so even Mixtral-sized experts need no dequantized copy.
void expert_gemm_row(QuantizedExperts const& w, int e, uint8_t const* act, float token_scale, bool half, float* out,
                     float* out_abs) {
  auto const& s = w.shape;
  int64_t const groups = w.group_count();
  std::vector<double> a(s.k);
  for (int k = 0; k < s.k; ++k) a[k] = e4m3_to_float(act[k]);
  for (int n = 0; n < s.n; ++n) {
    double sum = 0.0, sum_abs = 0.0;
    int8_t const* q = w.q.data() + w.q_index(e, n, 0);
    for (int64_t g = 0; g < groups; ++g) {
      double table[16];
      int64_t const scale = w.scale_index(e, n, int(g));
      for (int v = -8; v < 8; ++v) {
        table[v + 8] = w.exact_group_scale.empty() ? dequantized_weight(v, w.step(scale))
                                                   : double(v) * double(w.exact_group_scale[scale]);
      }
      for (int64_t k = g * s.group_size; k < std::min<int64_t>((g + 1) * s.group_size, s.k); ++k) {
        double const p = a[k] * table[q[k] + 8];
        sum += p;
        sum_abs += std::fabs(p);
      }
    }
    double const scale = double(token_scale) * double(w.channel_scale[size_t(e) * s.n + n]);
    out[n] = round_activation(float(scale * sum), half);
    if (out_abs) out_abs[n] = float(std::fabs(scale) * sum_abs);
  }
}

void silu_mul(float const* gemm1_row, int inter, float* out) {
  for (int c = 0; c < inter; ++c) {
    float const gate = gemm1_row[c], up = gemm1_row[inter + c];
    out[c] = gate / (1.0f + std::exp(-gate)) * up;
  }
}

std::vector<float> moe_layer(std::vector<float> const& hidden, TopK const& topk, int k, MoeLayerWeights const& weights,
                             std::vector<int32_t> const& expert_map, bool apply_router_weight_on_input,
                             bool half_output, std::vector<int64_t> const& tokens, int threads) {
  int const h = weights.gemm2.shape.n;
  int const inter = weights.gemm2.shape.k;
  int const local_experts = weights.gemm1.shape.num_experts;
  int const experts = expert_map.empty() ? local_experts : int(expert_map.size());
  std::vector<float> out(tokens.size() * h, 0.0f);
  parallel_for(int64_t(tokens.size()), 1, threads, [&](int64_t begin, int64_t end) {  // tokens are independent
    std::vector<uint8_t> act1(h), act2(inter);
    std::vector<float> g1(2 * inter), hmid(inter), g2(h), sum(h);
    for (int64_t i = begin; i < end; ++i) {
      int64_t const t = tokens[size_t(i)];
      float token_scale;
      quantize_row(hidden.data() + size_t(t) * h, h, act1.data(), &token_scale);
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int j = 0; j < k; ++j) {
        int const e = local_expert(topk.ids[size_t(t) * k + j], experts, local_experts, expert_map);
        if (e < 0) continue;
        float const w = topk.weights[size_t(t) * k + j];
        expert_gemm_row(weights.gemm1, e, act1.data(), apply_router_weight_on_input ? token_scale * w : token_scale,
                        half_output, g1.data());
        silu_mul(g1.data(), inter, hmid.data());
        float row_scale;
        quantize_row(hmid.data(), inter, act2.data(), &row_scale);
        expert_gemm_row(weights.gemm2, e, act2.data(), row_scale, half_output, g2.data());
        float const out_weight = apply_router_weight_on_input ? 1.0f : w;
        for (int c = 0; c < h; ++c) sum[c] += out_weight * g2[c];
      }
      for (int c = 0; c < h; ++c) out[size_t(i) * h + c] = round_activation(sum[c], half_output);
    }
  });
  return out;
}

}  // namespace w4a8moe::reference
