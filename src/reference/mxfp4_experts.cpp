#include "reference/mxfp4_experts.h"

#include <cmath>
#include <cstring>

#include "common/float_formats.h"
#include "prepack/mxfp4_format.h"
#include "reference/mxfp4.h"
#include "reference/quantized_experts.h"

namespace w4a8moe::reference {

std::vector<uint8_t> prepack_mxfp4(Mxfp4Experts const& experts) {
  auto const& s = experts.shape;
  auto const sections = prepack::mxfp4_sections(s);
  std::vector<uint8_t> packed(sections.total, 0);
  prepack::PackedHeader const header = prepack::make_packed_header(s, prepack::kMxfp4FormatVersion, sections.total);
  std::memcpy(packed.data(), &header, sizeof header);

  int const groups = group_count(s.k), row_blocks = s.k / kMxfp4BlockSize;
  for (int e = 0; e < s.num_experts; ++e) {
    uint8_t* blocks = packed.data() + sections.blocks + e * sections.block_bytes_per_expert;
    for (int n = 0; n < s.n; ++n) {
      size_t const row = size_t(e) * s.n + n;
      for (int k = 0; k < s.k; ++k) {  // codes 0 past K: the zero-filled buffer
        uint8_t const byte = experts.blocks[row * (s.k / 2) + k / 2];
        uint32_t const code = k % 2 == 0 ? byte & 0xFu : byte >> 4;
        auto const place = prepack::mxfp4_weight_place(s.n, groups, n, k);
        blocks[place.byte] |= uint8_t(prepack::mxfp4_place_code(code, place.nibble));
      }
      for (int b = 0; b < 4 * groups; ++b) {
        blocks[prepack::mxfp4_scale_offset(s.n, groups, n, b)] =
            b < row_blocks ? experts.scales[row * row_blocks + b] : prepack::kE8m0One;
      }
      float const sc = prepack::kMxfp4ValueScale;
      std::memcpy(packed.data() + sections.channel_scales + row * sizeof(float), &sc, sizeof sc);
    }
  }
  return packed;
}

void grouped_gemm_mxfp4(Mxfp4Experts const& experts, std::vector<uint8_t> const& act,
                        std::vector<float> const& token_scales, std::vector<int64_t> const& offsets,
                        std::vector<double>* out, std::vector<double>* out_abs, std::vector<int64_t> const& rows,
                        std::vector<float> const& bias) {
  auto const& s = experts.shape;
  std::vector<float> const w =
      dequantize_mxfp4(experts.blocks.data(), experts.scales.data(), int64_t(s.num_experts) * s.n, s.k);
  std::vector<double> a(s.k);
  for (int64_t m : gemm_rows(offsets, rows)) {
    int const e = expert_of_row(offsets, m, s.num_experts, "grouped_gemm_mxfp4");
    activation_row(act, m, s.k, a.data());
    for (int n = 0; n < s.n; ++n) {
      float const* wn = w.data() + (size_t(e) * s.n + n) * s.k;
      double sum = 0.0, sum_abs = 0.0;
      for (int k = 0; k < s.k; ++k) {
        sum += a[k] * wn[k];
        sum_abs += std::fabs(a[k] * wn[k]);
      }
      double const st = token_scales[m];
      (*out)[size_t(m) * s.n + n] = st * sum + (bias.empty() ? 0.0 : double(bias[size_t(e) * s.n + n]));
      if (out_abs) (*out_abs)[size_t(m) * s.n + n] = std::fabs(st) * sum_abs;
    }
  }
}

}  // namespace w4a8moe::reference
