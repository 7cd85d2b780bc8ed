// Plain C++ ground truth for the MXFP4 packed layout (prepack/mxfp4_format.h): no CUDA. The GEMM's weights are the
// checkpoint's e2m1 codes times their e8m0 block scales, nothing rounded (the layout is exact for blocks within 2^11
// of their channel's largest, which the tests' weights are).
#pragma once

#include <cstdint>
#include <vector>

#include "w4a8moe/types.h"

namespace w4a8moe::reference {

// E experts of [N, K] in gpt-oss's MXFP4 arrays (mxfp4.h), K a multiple of 32.
struct Mxfp4Experts {
  ExpertWeightShape shape;
  std::vector<uint8_t> blocks;  // [E, N, K/32, 16]: two e2m1 codes a byte, low nibble first
  std::vector<uint8_t> scales;  // [E, N, K/32] e8m0
};

// The packed buffer of the MXFP4 layout, byte for byte: header, blocks (the folded d and the codes, those of blocks
// below the fold rounded; codes 0 and d = 1 past K), channel scales 2^(r - 121).
std::vector<uint8_t> prepack_mxfp4(Mxfp4Experts const& experts);

// out[m, n] = st[m] * sum_k a[m, k] * W[e, n, k] + bias[e, n] in float64 with W = dequantize_mxfp4 (exact), for
// `rows` (all expert rows if empty; bias [E, N] or empty for none). out_abs, if not null, receives
// |st| * sum_k |a W|, which bounds the accumulation error. act: e4m3 bits [total_rows, padded_k(K)], as the kernels
// read them.
void grouped_gemm_mxfp4(Mxfp4Experts const& experts, std::vector<uint8_t> const& act,
                        std::vector<float> const& token_scales, std::vector<int64_t> const& offsets,
                        std::vector<double>* out, std::vector<double>* out_abs = nullptr,
                        std::vector<int64_t> const& rows = {}, std::vector<float> const& bias = {});

}  // namespace w4a8moe::reference
