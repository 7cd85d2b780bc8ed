// Plain C++ ground truth for the exact-scale layout (prepack/exact_format.h): no CUDA. The weights are q * sg * sc
// with sg a bf16 group scale taken as it is (no e4m3 rounding of q * sg, unlike the lookup-table layout).
#pragma once

#include <cstdint>
#include <vector>

#include "w4a8moe/types.h"

namespace w4a8moe::reference {

struct ExactExperts {
  ExpertWeightShape shape;
  std::vector<int8_t> q;               // [E, N, K], values in [-8, 7]
  std::vector<uint16_t> group_scale;   // [E, N, padded_k(K)/128], bf16 bits
  std::vector<float> channel_scale;    // [E, N]
};

// A checkpoint's experts as they are: q and its bf16 scales [E, N, padded_k(K)/128], channel scales 1.
ExactExperts exact_from_checkpoint(ExpertWeightShape const& shape, std::vector<int8_t> q,
                                   std::vector<uint16_t> bf16_scales);

// The packed buffer of the exact-scale layout, byte for byte: header, blocks, channel scales (2^9 sc).
std::vector<uint8_t> prepack_exact(ExactExperts const& experts);

// Inverse of prepack_exact() (channel scales divided back by 2^9).
ExactExperts unpack_exact(std::vector<uint8_t> const& packed, ExpertWeightShape const& shape);

// out[m, n] = st[m] * sc[e, n] * sum_k a[m, k] * q[e, n, k] * sg[e, n, k/128] in float64, for `rows` (all expert rows
// if empty). out_abs, if not null, receives st * |sc| * sum_k |a| * |sg| * (|q| + 8): the magnitude of what the
// kernel's tensor cores sum (the offset nibbles q + 8 and the group sums' correction), which bounds its
// accumulation error. act: e4m3 bits [total_rows, padded_k(K)], as the kernels read them.
void grouped_gemm_exact(ExactExperts const& experts, std::vector<uint8_t> const& act,
                        std::vector<float> const& token_scales, std::vector<int64_t> const& offsets,
                        std::vector<double>* out, std::vector<double>* out_abs = nullptr,
                        std::vector<int64_t> const& rows = {});

}  // namespace w4a8moe::reference
