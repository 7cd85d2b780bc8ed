#include "reference/exact_experts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/float_formats.h"
#include "prepack/exact_format.h"
#include "prepack/packed_format.h"
#include "reference/quantized_experts.h"

namespace w4a8moe::reference {

ExactExperts exact_from_checkpoint(ExpertWeightShape const& shape, std::vector<int8_t> q,
                                   std::vector<uint16_t> bf16_scales) {
  ExactExperts experts{shape, std::move(q), std::move(bf16_scales), {}};
  experts.channel_scale.assign(size_t(shape.num_experts) * shape.n, 1.0f);
  return experts;
}

std::vector<uint8_t> prepack_exact(ExactExperts const& experts) {
  auto const& s = experts.shape;
  auto const sections = prepack::exact_sections(s);
  std::vector<uint8_t> packed(sections.total, 0);

  prepack::PackedHeader const header = prepack::make_packed_header(s, prepack::kExactFormatVersion, sections.total);
  std::memcpy(packed.data(), &header, sizeof header);

  int const groups = group_count(s.k);
  for (int e = 0; e < s.num_experts; ++e) {
    uint8_t* blocks = packed.data() + sections.blocks + e * sections.block_bytes_per_expert;
    for (int n = 0; n < s.n; ++n) {
      for (int k = 0; k < padded_k(s.k); ++k) {  // q = 0 past K
        auto const place = prepack::exact_weight_place(s.n, groups, n, k);
        uint32_t const u = uint32_t((k < s.k ? experts.q[(size_t(e) * s.n + n) * s.k + k] : 0) + 8);
        blocks[place.byte] |= uint8_t(u << (4 * place.nibble));
      }
      for (int g = 0; g < groups; ++g) {
        uint16_t const sg = experts.group_scale[(size_t(e) * s.n + n) * groups + g];
        std::memcpy(blocks + prepack::exact_scale_offset(s.n, groups, n, g), &sg, sizeof sg);
      }
    }
    for (int n = 0; n < s.n; ++n) {
      float const sc = experts.channel_scale[size_t(e) * s.n + n] * prepack::kExactNibbleScale;
      std::memcpy(packed.data() + sections.channel_scales + (size_t(e) * s.n + n) * sizeof(float), &sc, sizeof sc);
    }
  }
  return packed;
}

ExactExperts unpack_exact(std::vector<uint8_t> const& packed, ExpertWeightShape const& s) {
  auto const sections = prepack::exact_sections(s);
  if (packed.size() < sections.total) throw std::invalid_argument("unpack_exact: buffer smaller than its shape needs");
  int const groups = group_count(s.k);
  ExactExperts experts{s, std::vector<int8_t>(size_t(s.num_experts) * s.n * s.k),
                       std::vector<uint16_t>(size_t(s.num_experts) * s.n * groups),
                       std::vector<float>(size_t(s.num_experts) * s.n)};
  for (int e = 0; e < s.num_experts; ++e) {
    uint8_t const* blocks = packed.data() + sections.blocks + e * sections.block_bytes_per_expert;
    for (int n = 0; n < s.n; ++n) {
      for (int k = 0; k < s.k; ++k) {
        auto const place = prepack::exact_weight_place(s.n, groups, n, k);
        experts.q[(size_t(e) * s.n + n) * s.k + k] = int8_t(int((blocks[place.byte] >> (4 * place.nibble)) & 0xF) - 8);
      }
      for (int g = 0; g < groups; ++g) {
        std::memcpy(&experts.group_scale[(size_t(e) * s.n + n) * groups + g],
                    blocks + prepack::exact_scale_offset(s.n, groups, n, g), sizeof(uint16_t));
      }
      float sc;
      std::memcpy(&sc, packed.data() + sections.channel_scales + (size_t(e) * s.n + n) * sizeof(float), sizeof sc);
      experts.channel_scale[size_t(e) * s.n + n] = sc / prepack::kExactNibbleScale;
    }
  }
  return experts;
}

void grouped_gemm_exact(ExactExperts const& experts, std::vector<uint8_t> const& act,
                        std::vector<float> const& token_scales, std::vector<int64_t> const& offsets,
                        std::vector<double>* out, std::vector<double>* out_abs, std::vector<int64_t> const& rows) {
  auto const& s = experts.shape;
  int const groups = group_count(s.k);
  std::vector<double> a(s.k);
  for (int64_t m : gemm_rows(offsets, rows)) {
    int const e = expert_of_row(offsets, m, s.num_experts, "grouped_gemm_exact");
    activation_row(act, m, s.k, a.data());
    for (int n = 0; n < s.n; ++n) {
      int8_t const* q = experts.q.data() + (size_t(e) * s.n + n) * s.k;
      uint16_t const* sg = experts.group_scale.data() + (size_t(e) * s.n + n) * groups;
      double sum = 0.0, sum_abs = 0.0;
      for (int g = 0; g < groups; ++g) {
        double group = 0.0, group_abs = 0.0;
        for (int k = g * s.group_size; k < std::min((g + 1) * s.group_size, s.k); ++k) {
          group += a[k] * q[k];
          group_abs += std::fabs(a[k]) * (std::abs(q[k]) + 8);
        }
        double const scale = bf16_to_float(sg[g]);
        sum += scale * group;
        sum_abs += std::fabs(scale) * group_abs;
      }
      double const outer = double(token_scales[m]) * double(experts.channel_scale[size_t(e) * s.n + n]);
      (*out)[size_t(m) * s.n + n] = outer * sum;
      if (out_abs) (*out_abs)[size_t(m) * s.n + n] = std::fabs(outer) * sum_abs;
    }
  }
}

}  // namespace w4a8moe::reference
