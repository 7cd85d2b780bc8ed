#include "reference/mxfp4_experts.h"

#include <algorithm>
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
      uint8_t const* scales = experts.scales.data() + row * row_blocks;
      int s_max = 0;
      for (int b = 0; b < row_blocks; ++b) s_max = scales[b] == kE8m0Nan ? s_max : std::max(s_max, int(scales[b]));
      int const r = prepack::mxfp4_reference_exponent(s_max);
      for (int k = 0; k < s.k; ++k) {  // codes 0 past K: the zero-filled buffer
        uint8_t const byte = experts.blocks[row * (s.k / 2) + k / 2];
        uint32_t const code = k % 2 == 0 ? byte & 0xFu : byte >> 4;
        int const shift = prepack::mxfp4_fold_shift(scales[k / kMxfp4BlockSize], r);
        auto const place = prepack::mxfp4_weight_place(s.n, groups, n, k);
        uint32_t word;
        std::memcpy(&word, blocks + place.word, sizeof word);
        word |= prepack::mxfp4_place_code(prepack::mxfp4_round_code(code, shift), place.high, place.position);
        std::memcpy(blocks + place.word, &word, sizeof word);
      }
      for (int b = 0; b < 4 * groups; ++b) {
        blocks[prepack::mxfp4_scale_offset(s.n, groups, n, b)] =
            uint8_t(b < row_blocks ? prepack::mxfp4_fold_d(scales[b], r) : 1);
      }
      float const sc = prepack::mxfp4_channel_scale(r);
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
  size_t const expert_rows = size_t(s.n), row_blocks = size_t(s.k / kMxfp4BlockSize);
  DequantizedExperts dequantized{
      s, "grouped_gemm_mxfp4",
      [&](int e) {
        return dequantize_mxfp4(experts.blocks.data() + size_t(e) * expert_rows * (s.k / 2),
                                experts.scales.data() + size_t(e) * expert_rows * row_blocks, s.n, s.k);
      },
      [&](int64_t m, int, int) { return double(token_scales[m]); },
      {}};
  if (!bias.empty()) dequantized.bias = [&](int e, int n) { return double(bias[size_t(e) * s.n + n]); };
  dequantized_grouped_gemm(dequantized, act, offsets, rows, out, out_abs);
}

}  // namespace w4a8moe::reference
