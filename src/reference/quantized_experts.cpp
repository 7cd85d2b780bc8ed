#include "reference/quantized_experts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/float_formats.h"
#include "prepack/packed_format.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::reference {

std::vector<int32_t> pack_offset_binary(QuantizedExperts const& experts) {
  auto const& s = experts.shape;
  std::vector<int32_t> packed(size_t(s.num_experts) * s.n * (s.k / 8));
  for (size_t word = 0; word < packed.size(); ++word) {
    uint32_t bits = 0;
    for (int i = 0; i < 8; ++i) bits |= uint32_t(experts.q[word * 8 + i] + 8) << (4 * i);
    packed[word] = static_cast<int32_t>(bits);
  }
  return packed;
}

std::vector<int8_t> unpack_offset_binary(std::vector<int32_t> const& packed, ExpertWeightShape const& shape) {
  std::vector<int8_t> q(size_t(shape.num_experts) * shape.n * shape.k);
  for (size_t word = 0; word < packed.size(); ++word) {
    for (int i = 0; i < 8; ++i) q[word * 8 + i] = int8_t(int((uint32_t(packed[word]) >> (4 * i)) & 0xF) - 8);
  }
  return q;
}

std::vector<uint8_t> pack_signed_int4(QuantizedExperts const& experts) {
  std::vector<uint8_t> packed(experts.q.size() / 2);
  for (size_t i = 0; i < packed.size(); ++i) {
    packed[i] = uint8_t((experts.q[2 * i] & 0xF) | ((experts.q[2 * i + 1] & 0xF) << 4));
  }
  return packed;
}

void hold_exact_scales(QuantizedExperts* experts) {
  experts->exact_group_scale.resize(experts->group_scale.size());
  std::transform(experts->group_scale.begin(), experts->group_scale.end(), experts->exact_group_scale.begin(),
                 [](uint8_t bits) { return e4m3_to_float(bits); });
}

void hold_exact_scales(QuantizedExperts* experts, std::vector<uint16_t> const& bf16_scales) {
  if (bf16_scales.size() != experts->group_scale.size()) {
    throw std::invalid_argument("hold_exact_scales: bf16_scales must hold [E, N, K/128] values");
  }
  experts->exact_group_scale.resize(bf16_scales.size());
  std::transform(bf16_scales.begin(), bf16_scales.end(), experts->exact_group_scale.begin(), bf16_to_float);
  std::fill(experts->channel_scale.begin(), experts->channel_scale.end(), 1.0f);
}

float QuantizedExperts::step(int64_t scale_index) const {
  return table_step.empty() ? e4m3_to_float(group_scale[size_t(scale_index)]) : table_step[size_t(scale_index)];
}

void split_bf16_scales(std::vector<uint16_t> const& bf16_scales, QuantizedExperts* experts) {
  ExpertWeightShape const& shape = experts->shape;
  int64_t const groups = group_count(shape.k);
  int64_t const rows = int64_t(shape.num_experts) * shape.n;
  if (int64_t(bf16_scales.size()) != rows * groups) {
    throw std::invalid_argument("split_bf16_scales: bf16_scales must hold [E, N, padded_k(K)/128] values");
  }
  experts->group_scale.assign(rows * groups, 0);
  experts->table_step.assign(rows * groups, 0.0f);
  experts->channel_scale.assign(rows, 0.0f);
  for (int64_t row = 0; row < rows; ++row) {
    float amax = 0.0f;
    for (int64_t g = 0; g < groups; ++g) amax = std::max(amax, std::fabs(bf16_to_float(bf16_scales[row * groups + g])));
    if (amax == 0.0f) continue;
    float const c = amax / kE4M3Max;
    experts->channel_scale[row] = 8.0f * c;
    for (int64_t g = 0; g < groups; ++g) {
      float const step = bf16_to_float(bf16_scales[row * groups + g]) / c / 8.0f;
      experts->table_step[row * groups + g] = step;
      experts->group_scale[row * groups + g] = float_to_e4m3(step);
    }
  }
}

void lut_from_step(float step, uint8_t lut[8]) {
  step = prepack::bounded_table_step(step);
  for (int i = 0; i < 8; ++i) lut[i] = float_to_e4m3(float(i - 8) * step);
}

float dequantized_weight(int q, float step) {
  return e4m3_to_float(float_to_e4m3(float(q) * prepack::bounded_table_step(step)));
}

std::vector<float> dequantize_expert(QuantizedExperts const& experts, int e) {
  auto const& s = experts.shape;
  int64_t const groups = experts.group_count();
  std::vector<float> w(size_t(s.n) * s.k);
  for (int n = 0; n < s.n; ++n) {
    for (int64_t g = 0; g < groups; ++g) {
      float table[16];
      float const step = experts.step(experts.scale_index(e, n, int(g)));
      for (int q = -8; q < 8; ++q) table[q + 8] = dequantized_weight(q, step);
      for (int kk = 0; kk < s.group_size && int(g) * s.group_size + kk < s.k; ++kk) {
        int const k = int(g) * s.group_size + kk;
        w[size_t(n) * s.k + k] = table[experts.q[experts.q_index(e, n, k)] + 8];
      }
    }
  }
  return w;
}

std::vector<uint8_t> prepack(QuantizedExperts const& experts) {
  auto const& s = experts.shape;
  auto const sections = prepack::packed_sections(s);
  std::vector<uint8_t> packed(sections.total, 0);

  prepack::PackedHeader const header = prepack::make_packed_header(s, kPackedFormatVersion, sections.total);
  std::memcpy(packed.data(), &header, sizeof header);

  int64_t const groups = experts.group_count();
  for (int e = 0; e < s.num_experts; ++e) {
    uint8_t* weights = packed.data() + sections.weights + e * sections.weight_bytes_per_expert;
    for (int n = 0; n < s.n; ++n) {
      for (int k = 0; k < s.k; ++k) {
        int64_t const nibble = prepack::reorder_atom_offset(n, k, s.n);
        uint32_t const code = prepack::encode_lut_nibble(experts.q[experts.q_index(e, n, k)]);
        weights[nibble / 2] |= uint8_t(code << (4 * (nibble % 2)));
      }
    }
    uint8_t* luts = packed.data() + sections.group_scales + e * sections.group_scale_bytes_per_expert;
    uint8_t* odd_tables = packed.data() + sections.odd_tables + e * sections.odd_table_bytes_per_expert;
    for (int64_t g = 0; g < groups; ++g) {
      for (int n = 0; n < s.n; ++n) {
        uint8_t* lut = luts + (g * s.n + n) * prepack::kLutBytes;
        lut_from_step(experts.step(experts.scale_index(e, n, int(g))), lut);
        uint32_t words[2];
        std::memcpy(words, lut, sizeof words);
        uint32_t const odd = prepack::odd_table(words[0], words[1]);
        std::memcpy(odd_tables + (g * s.n + n) * prepack::kOddTableBytes, &odd, sizeof odd);
      }
    }
    std::memcpy(packed.data() + sections.channel_scales + size_t(e) * s.n * sizeof(float),
                experts.channel_scale.data() + size_t(e) * s.n, size_t(s.n) * sizeof(float));
  }
  return packed;
}

QuantizedExperts unpack(std::vector<uint8_t> const& packed, ExpertWeightShape const& shape) {
  auto const sections = prepack::packed_sections(shape);
  if (packed.size() < sections.total) throw std::invalid_argument("unpack: packed buffer smaller than its shape needs");
  QuantizedExperts experts;
  experts.shape = shape;
  int64_t const groups = experts.group_count();
  experts.q.resize(size_t(shape.num_experts) * shape.n * shape.k);
  experts.group_scale.resize(size_t(shape.num_experts) * shape.n * groups);
  experts.channel_scale.resize(size_t(shape.num_experts) * shape.n);
  for (int e = 0; e < shape.num_experts; ++e) {
    uint8_t const* weights = packed.data() + sections.weights + e * sections.weight_bytes_per_expert;
    for (int n = 0; n < shape.n; ++n) {
      for (int k = 0; k < shape.k; ++k) {
        int64_t const nibble = prepack::reorder_atom_offset(n, k, shape.n);
        experts.q[experts.q_index(e, n, k)] = int8_t(prepack::decode_lut_nibble(weights[nibble / 2] >> (4 * (nibble % 2))));
      }
    }
    uint8_t const* luts = packed.data() + sections.group_scales + e * sections.group_scale_bytes_per_expert;
    for (int64_t g = 0; g < groups; ++g) {
      for (int n = 0; n < shape.n; ++n) {
        // Byte 7 of the table is e4m3(-1 * step) = -e4m3(step), the group scale sg.
        experts.group_scale[experts.scale_index(e, n, int(g))] = luts[(g * shape.n + n) * prepack::kLutBytes + 7] ^ 0x80;
      }
    }
    std::memcpy(experts.channel_scale.data() + size_t(e) * shape.n,
                packed.data() + sections.channel_scales + size_t(e) * shape.n * sizeof(float),
                size_t(shape.n) * sizeof(float));
  }
  return experts;
}

std::vector<int64_t> gemm_rows(std::vector<int64_t> const& offsets, std::vector<int64_t> const& rows) {
  std::vector<int64_t> selected = rows;
  if (selected.empty()) {
    for (int64_t m = offsets.front(); m < offsets.back(); ++m) selected.push_back(m);
  }
  return selected;
}

int expert_of_row(std::vector<int64_t> const& offsets, int64_t m, int experts, char const* who) {
  int const e = int(std::upper_bound(offsets.begin(), offsets.end(), m) - offsets.begin()) - 1;
  if (e < 0 || e >= experts) throw std::invalid_argument(std::string(who) + ": row outside every expert");
  return e;
}

void activation_row(std::vector<uint8_t> const& act, int64_t m, int k, double* a) {
  for (int i = 0; i < k; ++i) a[i] = e4m3_to_float(act[size_t(m) * padded_k(k) + i]);
}

void dequantized_grouped_gemm(DequantizedExperts const& experts, std::vector<uint8_t> const& act,
                              std::vector<int64_t> const& offsets, std::vector<int64_t> const& rows,
                              std::vector<double>* out, std::vector<double>* out_abs) {
  auto const& s = experts.shape;
  std::vector<int64_t> selected = gemm_rows(offsets, rows);
  std::sort(selected.begin(), selected.end());
  // Only the experts the rows use, each once: a caller may split the rows over threads.
  std::vector<double> a(s.k);
  std::vector<float> w;  // dequantised weights of the current expert, [N, K]
  int current_expert = -1;
  for (int64_t m : selected) {
    int const e = expert_of_row(offsets, m, s.num_experts, experts.who);
    if (e != current_expert) {
      current_expert = e;
      w = experts.dequantize(e);
    }
    activation_row(act, m, s.k, a.data());
    for (int n = 0; n < s.n; ++n) {
      double sum = 0.0, sum_abs = 0.0;
      float const* wn = w.data() + size_t(n) * s.k;
      for (int k = 0; k < s.k; ++k) {
        double const p = a[k] * double(wn[k]);
        sum += p;
        sum_abs += std::fabs(p);
      }
      double const scale = experts.scale(m, e, n);
      double value = scale * sum;
      if (experts.bias) value += experts.bias(e, n);
      (*out)[size_t(m) * s.n + n] = value;
      if (out_abs) (*out_abs)[size_t(m) * s.n + n] = std::fabs(scale) * sum_abs;
    }
  }
}

void grouped_gemm(QuantizedExperts const& experts, std::vector<uint8_t> const& act,
                  std::vector<float> const& token_scales, std::vector<int64_t> const& offsets,
                  std::vector<double>* out, std::vector<double>* out_abs, std::vector<int64_t> const& rows) {
  DequantizedExperts const dequantized{
      experts.shape, "reference grouped_gemm", [&](int e) { return dequantize_expert(experts, e); },
      [&](int64_t m, int e, int n) {
        return double(token_scales[m]) * double(experts.channel_scale[size_t(e) * experts.shape.n + n]);
      },
      {}};
  dequantized_grouped_gemm(dequantized, act, offsets, rows, out, out_abs);
}

}  // namespace w4a8moe::reference
