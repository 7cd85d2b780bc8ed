// The MXFP4 packed layout: e2m1 weights placed so that masks and shifts turn them into e4m3 bytes the fp8 tensor
// cores read, and their e8m0 block scales (one per 32 inputs) applied in fp32 to each 32-input wgmma's sum. Host and
// device; no CUTLASS types. Read by the "*_mxfp4" configs of gemm/exact_stream_gemm.cu's kernel.
//
// Why no table: an e2m1 code (sign s, exponent bits e1 e0, mantissa m) written into an e4m3 byte as
//   s << 7 | e1 << 4 | e0 << 3 | m << 2
// is exactly e2m1 * 2^-6 (the e4m3 exponent field is 2 e1 + e0 on the same bias offset, the subnormals 0 and 0.5
// included). The byte of two channels holds one at those bits and the other at s << 5 | e1 << 6 | e0 << 1 | m, so
//   low channel:  w & 0x9C9C9C9C          high channel: ((w << 2) & 0x8C8C8C8C) | ((w >> 2) & 0x10101010)
// make the wgmma A registers of rows r and r + 8 (mxfp4_unpack_low / _high): three instructions a word more than
// the exact-scale layout's masks. The 2^6 goes into the fp32 channel scales (the epilogue's, as in that layout).
//
// The blocks are the exact-scale layout's (exact_format.h: per expert, 64-channel tiles x 128-K groups, each block
// the stripes' weights in wgmma fragment order, then their scales), with 64 scale bytes a stripe instead of 32:
//   scales  per stripe and r in [0, 8): the e8m0 scales of channel r for the group's atoms 0..3 (K 0-31, ..., 96-127),
//           then those of channel r + 8 (one 8-byte load a lane)
// K is a multiple of 32; past K (up to padded_k) the weights are 0 and the scales 127 (2^0).
// After all experts: fp32 channel scales [E][N], each 2^6.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prepack/exact_format.h"

namespace w4a8moe::prepack {

inline constexpr uint32_t kMxfp4FormatVersion = 3;
inline constexpr int kMxfp4BlockSize = 32;                             // inputs per e8m0 scale: one wgmma's K
inline constexpr uint32_t kMxfp4StripeScaleBytes = kExactStripeChannels * 4;  // e8m0 per channel and atom: 64
inline constexpr uint32_t kMxfp4StripeBytes = kExactStripeWeightBytes + kMxfp4StripeScaleBytes;
inline constexpr float kMxfp4ValueScale = 64.0f;  // 2^6: the placed bytes read as e2m1 * 2^-6
inline constexpr uint8_t kE8m0One = 127;          // 2^0, the padding's scale
inline constexpr uint8_t kE8m0Nan = 0xFF;

W4A8_HOST_DEVICE inline ExactSections mxfp4_sections_of_whole_groups(ExpertWeightShape const& shape) {
  return exact_sections_of_whole_groups(shape, kMxfp4StripeBytes);
}

W4A8_HOST_DEVICE inline ExactSections mxfp4_sections(ExpertWeightShape shape) {
  shape.k = padded_k(shape.k);
  return mxfp4_sections_of_whole_groups(shape);
}

// Where weight (channel, k) lives: the exact-scale layout's byte; nibble 0 (row r of the stripe: bits 7, 4, 3, 2)
// or 1 (row r + 8: bits 5, 6, 1, 0).
W4A8_HOST_DEVICE inline NibblePlace mxfp4_weight_place(int n, int groups, int channel, int k) {
  return exact_weight_place(n, groups, channel, k, kMxfp4StripeBytes);
}

// Byte offset of the e8m0 scale of (channel, 32-K block) within an expert's blocks.
W4A8_HOST_DEVICE inline size_t mxfp4_scale_offset(int n, int groups, int channel, int block) {
  int const tile = channel / kExactTileChannels, stripe = (channel % kExactTileChannels) / kExactStripeChannels;
  int const row = channel % kExactStripeChannels, group = block / 4, atom = block % 4;
  int const stripes = exact_tile_stripes(n, tile);
  return exact_block_offset(n, groups, tile, group, kMxfp4StripeBytes) + size_t(stripes) * kExactStripeWeightBytes +
         size_t(stripe) * kMxfp4StripeScaleBytes + size_t(row % 8) * 8 + size_t(row / 8) * 4 + size_t(atom);
}

// An e2m1 code's bits as the byte holds them for nibble 0 (row r) or 1 (row r + 8).
W4A8_HOST_DEVICE inline uint32_t mxfp4_place_code(uint32_t code, int nibble) {
  return nibble == 0 ? ((code & 8u) << 4) | ((code & 7u) << 2) : ((code & 8u) << 2) | ((code & 4u) << 4) | (code & 3u);
}

// Four placed bytes -> the four e4m3 bytes of row r (low) or row r + 8 (high).
W4A8_HOST_DEVICE inline uint32_t mxfp4_unpack_low(uint32_t w) { return w & 0x9C9C9C9Cu; }
W4A8_HOST_DEVICE inline uint32_t mxfp4_unpack_high(uint32_t w) {
  return ((w << 2) & 0x8C8C8C8Cu) | ((w >> 2) & 0x10101010u);
}

// An e8m0 scale as the fp32 the kernel multiplies by: 2^(s - 127) for s in [1, 254], 0 for s = 0 (2^-127, below
// fp32's normal range; the weights it scales are below 6 * 2^-127).
W4A8_HOST_DEVICE inline float e8m0_to_float(uint32_t s) {
  uint32_t const bits = s << 23;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

}  // namespace w4a8moe::prepack
