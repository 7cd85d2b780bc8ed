#include "gemm_numerics.h"

#include <algorithm>

#include "accumulation_models.h"
#include "common/float_formats.h"
#include "dot_product.h"
#include "expert_quantization.h"
#include "parallel.h"
#include "realistic_data.h"
#include "reference/moe_reference.h"

namespace w4a8moe::accuracy {
namespace {

constexpr uint64_t kGemmWeightStream = 1ull << 20;  // apart from the layer's weight streams

float round_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

// out[m, n] = value(a_row, w_row, m, e, n, scratch) for every row m of every expert e, where w is the [N, K]
// operand weights(e) builds once per expert; channel chunks are spread over threads, each with a scratch of
// K + K/128 floats (products and one value per group).
template <class Weights, class Value>
std::vector<double> for_each_output(GemmProblem const& p, Weights const& weights, Value const& value) {
  auto const& shape = p.experts.shape;
  std::vector<float> a(p.act.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = e4m3_to_float(p.act[i]);
  std::vector<double> out(size_t(p.rows()) * shape.n);
  for (int e = 0; e < shape.num_experts; ++e) {
    if (p.offsets[e] == p.offsets[e + 1]) continue;
    std::vector<float> const w = weights(e);
    parallel_for(shape.n, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(shape.k + shape.k / shape.group_size);
      for (int64_t m = p.offsets[e]; m < p.offsets[e + 1]; ++m) {
        for (int64_t n = begin; n < end; ++n) {
          out[size_t(m) * shape.n + n] = value(a.data() + size_t(m) * shape.k, w.data() + size_t(n) * shape.k, m, e,
                                               int(n), scratch.data());
        }
      }
    });
  }
  return out;
}

// [N, K] operands of expert e: q times a per-(channel, group) factor.
template <class GroupFactor>
std::vector<float> scaled_q(GemmProblem const& p, int e, GroupFactor const& factor) {
  auto const& shape = p.experts.shape;
  std::vector<float> w(size_t(shape.n) * shape.k);
  parallel_for(shape.n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      int8_t const* q = p.experts.q.data() + p.experts.q_index(e, int(n), 0);
      for (int k = 0; k < shape.k; ++k) w[size_t(n) * shape.k + k] = float(q[k]) * factor(int(n), k / shape.group_size);
    }
  });
  return w;
}

float bf16_scale(GemmProblem const& p, int e, int n, int g) {
  return bf16_to_float(p.bf16_scales[p.experts.scale_index(e, n, g)]);
}

}  // namespace

GemmProblem make_gemm_problem(GemmCase const& gemm_case, int experts, int rows_per_expert, uint64_t seed) {
  GemmProblem p;
  p.gemm_case = gemm_case;
  ExpertWeightShape const shape{experts, gemm_case.n, gemm_case.k, kGroupSize};
  size_t const expert_size = size_t(shape.n) * shape.k;
  std::vector<uint16_t> bf16(size_t(experts) * expert_size);
  for (int e = 0; e < experts; ++e) {
    auto const w = realistic_weights(shape.n, shape.k, seed, kGemmWeightStream + uint64_t(e));
    std::copy(w.begin(), w.end(), bf16.begin() + e * expert_size);
  }
  p.experts = quantize_experts_rtn(bf16, shape, &p.bf16_scales);
  p.offsets.resize(experts + 1);
  for (int e = 0; e <= experts; ++e) p.offsets[e] = int64_t(e) * rows_per_expert;
  int64_t const rows = p.rows();
  auto const x = gemm_case.down_projection ? realistic_intermediate_states(rows, shape.k, seed)
                                           : realistic_hidden_states(rows, shape.k, seed);
  p.act.resize(size_t(rows) * shape.k);
  p.token_scales.resize(rows);
  for (int64_t m = 0; m < rows; ++m) {
    reference::quantize_row(x.data() + size_t(m) * shape.k, shape.k, p.act.data() + size_t(m) * shape.k,
                            &p.token_scales[m]);
  }
  return p;
}

std::vector<double> exact_bf16_weight_output(GemmProblem const& p) {
  auto const k = p.experts.shape.k;
  return for_each_output(
      p, [&](int e) { return scaled_q(p, e, [&](int n, int g) { return bf16_scale(p, e, n, g); }); },
      [&](float const* a, float const* w, int64_t m, int, int, float*) {
        return double(p.token_scales[m]) * dot_product(a, w, k);
      });
}

std::vector<double> split_scale_exact_qsg_output(GemmProblem const& p) {
  auto const& shape = p.experts.shape;
  return for_each_output(
      p,
      [&](int e) {
        return scaled_q(p, e, [&](int n, int g) { return e4m3_to_float(p.experts.group_scale[p.experts.scale_index(e, n, g)]); });
      },
      [&](float const* a, float const* w, int64_t m, int e, int n, float*) {
        double const channel_scale = p.experts.channel_scale[size_t(e) * shape.n + n];
        return double(p.token_scales[m]) * channel_scale * dot_product(a, w, shape.k);
      });
}

std::vector<double> fp64_reference_output(GemmProblem const& p) {
  std::vector<double> out(size_t(p.rows()) * p.experts.shape.n);
  // reference::grouped_gemm writes only the rows it is given, so threads can share `out`; contiguous row chunks
  // keep the number of experts each chunk dequantizes small.
  int64_t const grain = std::max<int64_t>(1, p.rows() / (4 * worker_threads()));
  parallel_for(p.rows(), grain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    for (int64_t m = begin; m < end; ++m) rows.push_back(m);
    reference::grouped_gemm(p.experts, p.act, p.token_scales, p.offsets, &out, nullptr, rows);
  });
  return out;
}

std::vector<double> double_rounding_lut_output(GemmProblem const& p) {
  auto const& shape = p.experts.shape;
  auto rounded_sg = [&](int e, int n, int g) {
    return e4m3_to_float(p.experts.group_scale[p.experts.scale_index(e, n, g)]);
  };
  return for_each_output(
      p,
      [&](int e) {
        std::vector<float> w(size_t(shape.n) * shape.k);
        parallel_for(shape.n, 64, [&](int64_t begin, int64_t end) {
          for (int64_t n = begin; n < end; ++n) {
            int8_t const* q = p.experts.q.data() + p.experts.q_index(e, int(n), 0);
            for (int k = 0; k < shape.k; ++k) {
              float const sg = rounded_sg(e, int(n), k / shape.group_size);
              w[size_t(n) * shape.k + k] = reference::dequantized_weight(q[k], sg);
            }
          }
        });
        return w;
      },
      [&](float const* a, float const* w, int64_t m, int e, int n, float*) {
        double const channel_scale = p.experts.channel_scale[size_t(e) * shape.n + n];
        return double(p.token_scales[m]) * channel_scale * dot_product(a, w, shape.k);
      });
}

std::vector<double> modelled_kernel_output(GemmProblem const& p, int block) {
  auto const& shape = p.experts.shape;
  return for_each_output(
      p, [&](int e) { return reference::dequantize_expert(p.experts, e); },
      [&](float const* a, float const* w, int64_t m, int e, int n, float* products) {
        for (int k = 0; k < shape.k; ++k) products[k] = a[k] * w[k];  // exact: both are e4m3
        float const sum = fast_accumulation_sum(products, shape.k, block);
        float const channel_scaled = sum * p.experts.channel_scale[size_t(e) * shape.n + n];
        return double(round_bf16(channel_scaled * p.token_scales[m]));
      });
}

std::vector<double> modelled_chunked_output(GemmProblem const& p, int block) {
  auto const& shape = p.experts.shape;
  int const groups = shape.k / shape.group_size;
  return for_each_output(
      p, [&](int e) { return scaled_q(p, e, [](int, int) { return 1.0f; }); },
      [&](float const* a, float const* q, int64_t m, int e, int n, float* products) {
        for (int k = 0; k < shape.k; ++k) products[k] = a[k] * q[k];  // exact: q is an e4m3 value
        float* group_scales = products + shape.k;
        for (int g = 0; g < groups; ++g) group_scales[g] = bf16_scale(p, e, n, g);
        float const sum = chunked_scaled_sum(products, group_scales, shape.k, shape.group_size, block);
        return double(round_bf16(sum * p.token_scales[m]));
      });
}

}  // namespace w4a8moe::accuracy
