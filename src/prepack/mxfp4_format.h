// The MXFP4 packed layout: e2m1 weights whose e8m0 block scales (one per 32 inputs) are folded into the e4m3 bytes
// the fp8 tensor cores read, so that a GEMM accumulates all of K in its wgmmas and scales once per channel. Host and
// device; no CUTLASS types. Read by the "*_mxfp4" configs of gemm/mxfp4_stream_gemm.cu's kernel.
//
// The fold (exact): per channel a reference exponent r = max(s_max - 12, 0) over the channel's block scales s, and
// per block d = s - r in [1, 12]. The e4m3 byte of code magnitude j at d is the 8-entry table
//   T_d = {0, 8d, 8d + 0x08, 8d + 0x0C, 8d + 0x10, 8d + 0x14, 8d + 0x18, 8d + 0x1C}
// (e2m1 {0, 0.5, 1, 1.5, 2, 3, 4, 6} * 2^(d - 6), every entry a normal e4m3 number or zero, at most 384), built per
// lane by two multiply-adds (mxfp4_table); with the code's sign as bit 7, W = e4m3 * 2^(r - 121), the 2^(r - 121)
// in the fp32 channel scales. Blocks more than 2^11 below their channel's largest (d < 1; quantisers write s = 0 for
// all-zero blocks) take d = 1 and their codes rounded to the nearest e2m1 value of that grid, ties to even
// (mxfp4_round_code): the one place this layout rounds a checkpoint's weights.
//
// The blocks are the exact-scale layout's (exact_format.h: per expert, 64-channel tiles x 128-K groups, each block
// the stripes' weights in wgmma fragment order, then their scales), with 64 scale bytes a stripe:
//   weights per lane and atom two words, K 4c.. and 16 + 4c.. (c = lane % 4) of channels r and r + 8 of the stripe;
//           in a word, position j (K 4c + j) of channel r has its magnitude (code bits 0-2) at bits 4j.. and its
//           sign at bit 8j + 7, of channel r + 8 its magnitude at bits 16 + 4j.. and its sign at bit 8j + 3, so that
//           PRMT with the magnitudes as selectors, and the signs masked in, make the lane's wgmma A registers
//           (mxfp4_unpack_word: eight instructions a word, seven on the integer pipe);
//   scales  per stripe and r in [0, 8): d of channel r for the group's atoms 0..3 (K 0-31, ..., 96-127), then those
//           of channel r + 8 (one 8-byte load a lane)
// K is a multiple of 32; past K (up to padded_k) the codes are 0 and d = 1.
// After all experts: fp32 channel scales [E][N], 2^(r - 121).
#pragma once

#include <cstddef>
#include <cstdint>

#include "prepack/exact_format.h"

namespace w4a8moe::prepack {

inline constexpr uint32_t kMxfp4FormatVersion = 4;
inline constexpr int kMxfp4BlockSize = 32;                             // inputs per e8m0 scale: one wgmma's K
inline constexpr uint32_t kMxfp4StripeScaleBytes = kExactStripeChannels * 4;  // e8m0 per channel and atom: 64
inline constexpr uint32_t kMxfp4StripeBytes = kExactStripeWeightBytes + kMxfp4StripeScaleBytes;
inline constexpr uint8_t kE8m0Nan = 0xFF;
// The binades of block scales below a channel's largest that fold exactly: d = s - r in [1, kMxfp4FoldBinades].
inline constexpr int kMxfp4FoldBinades = 12;

W4A8_HOST_DEVICE inline ExactSections mxfp4_sections_of_whole_groups(ExpertWeightShape const& shape) {
  return exact_sections_of_whole_groups(shape, kMxfp4StripeBytes);
}

W4A8_HOST_DEVICE inline ExactSections mxfp4_sections(ExpertWeightShape shape) {
  shape.k = padded_k(shape.k);
  return mxfp4_sections_of_whole_groups(shape);
}

// Where weight (channel, k) lives: the byte offset of its word within the expert's blocks, whether it is the
// stripe's channel r + 8 (high) or r, and its position j in the word (k % 4).
struct Mxfp4CodePlace {
  size_t word;
  bool high;
  int position;
};

W4A8_HOST_DEVICE inline Mxfp4CodePlace mxfp4_weight_place(int n, int groups, int channel, int k) {
  return {exact_weight_place(n, groups, channel, k - k % 4, kMxfp4StripeBytes).byte, channel % 16 >= 8, k % 4};
}

// Byte offset of the d of (channel, 32-K block) within an expert's blocks.
W4A8_HOST_DEVICE inline size_t mxfp4_scale_offset(int n, int groups, int channel, int block) {
  int const tile = channel / kExactTileChannels, stripe = (channel % kExactTileChannels) / kExactStripeChannels;
  int const row = channel % kExactStripeChannels, group = block / 4, atom = block % 4;
  int const stripes = exact_tile_stripes(n, tile);
  return exact_block_offset(n, groups, tile, group, kMxfp4StripeBytes) + size_t(stripes) * kExactStripeWeightBytes +
         size_t(stripe) * kMxfp4StripeScaleBytes + size_t(row % 8) * 8 + size_t(row / 8) * 4 + size_t(atom);
}

// An e2m1 code's bits (sign bit 3, magnitude bits 0-2) as its word holds them at position j.
W4A8_HOST_DEVICE inline uint32_t mxfp4_place_code(uint32_t code, bool high, int j) {
  uint32_t const magnitude = code & 7u, sign = (code >> 3) & 1u;
  return high ? (magnitude << (16 + 4 * j)) | (sign << (8 * j + 3)) : (magnitude << (4 * j)) | (sign << (8 * j + 7));
}

// The reference exponent of a channel whose largest block scale is s_max (its fold's r).
W4A8_HOST_DEVICE inline int mxfp4_reference_exponent(int s_max) {
  return s_max > kMxfp4FoldBinades ? s_max - kMxfp4FoldBinades : 0;
}

// The d a block of scale s stores in a channel of reference exponent r, and the binades its codes lose (nonzero
// only below the fold's range, where d is 1).
W4A8_HOST_DEVICE inline int mxfp4_fold_d(int s, int r) { return s - r > 1 ? s - r : 1; }
W4A8_HOST_DEVICE inline int mxfp4_fold_shift(int s, int r) { return r + 1 - s > 0 ? r + 1 - s : 0; }

// The fp32 channel scale 2^(r - 121) of reference exponent r (0..242: a normal float).
W4A8_HOST_DEVICE inline float mxfp4_channel_scale(int r) {
  uint32_t const bits = uint32_t(r + 6) << 23;  // biased exponent (r - 121) + 127
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// The code of e2m1(code) * 2^-shift rounded to the nearest e2m1 value, ties to the even code (shift >= 0; the sign
// kept, so a block rounded to zero may hold -0).
W4A8_HOST_DEVICE inline uint32_t mxfp4_round_code(uint32_t code, int shift) {
  if (shift <= 0) return code;
  // Magnitudes in halves: {0, 1, 2, 3, 4, 6, 8, 12}; compare 2^shift * candidate with the code's halves.
  constexpr int kHalves[8] = {0, 1, 2, 3, 4, 6, 8, 12};
  int64_t const target = kHalves[code & 7u];
  int const s = shift < 8 ? shift : 8;  // past 2^8 everything rounds to zero: 12 < 2^8 / 2
  uint32_t best = 0;
  int64_t best_distance = target;  // distances in halves scaled by 2^s: to code 0 first
  for (uint32_t j = 1; j < 8; ++j) {
    int64_t const distance = (int64_t(kHalves[j]) << s) > target ? (int64_t(kHalves[j]) << s) - target
                                                                 : target - (int64_t(kHalves[j]) << s);
    if (distance < best_distance || (distance == best_distance && j % 2 == 0 && best % 2 == 1)) {
      best = j;
      best_distance = distance;
    }
  }
  return (code & 8u) | best;
}

// The lane's table of one channel and block: bytes 0-3 (low) and 4-7 (high) of T_d.
struct Mxfp4Table {
  uint32_t low;
  uint32_t high;
};

W4A8_HOST_DEVICE inline Mxfp4Table mxfp4_table(uint32_t d) {
  return {d * 0x08080800u + 0x0C080000u, d * 0x08080808u + 0x1C181410u};
}

// PRMT: output byte i = byte (selector nibble i & 7) of {high:low} (the nibbles' bit 3 is zero here).
W4A8_HOST_DEVICE inline uint32_t select_bytes(uint32_t low, uint32_t high, uint32_t selector) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(low, high, selector);
#else
  uint64_t const bytes = uint64_t(high) << 32 | low;
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) out |= uint32_t((bytes >> (8 * ((selector >> (4 * i)) & 7u))) & 0xFFu) << (8 * i);
  return out;
#endif
}

// A word -> the e4m3 A registers of channel r (row) and r + 8 (row8), each with its block's table.
W4A8_HOST_DEVICE inline void mxfp4_unpack_word(uint32_t w, Mxfp4Table const& table, Mxfp4Table const& table8,
                                               uint32_t& row, uint32_t& row8) {
  uint32_t const magnitudes = w & 0x77777777u;
  row = select_bytes(table.low, table.high, magnitudes) | (w & 0x80808080u);
  row8 = select_bytes(table8.low, table8.high, magnitudes >> 16) | ((w << 4) & 0x80808080u);
}

}  // namespace w4a8moe::prepack
