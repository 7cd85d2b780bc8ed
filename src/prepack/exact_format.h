// The exact-scale packed layout: int4 weights as offset-binary nibbles that the fp8 tensor cores read as they are,
// and the checkpoint's group scales kept exact (bf16), applied in fp32 once per 128-K group. Host and device; no
// CUTLASS types. (The lookup-table layout of packed_format.h is the one CUTLASS's mixed-input mainloop reads; this
// one is read only by the kernels of gemm/exact_stream_gemm.cu. bench/NOTES.md §11 says why.)
//
// Why it needs no conversion table: a byte u in [0, 16) read as e4m3 is exactly u * 2^-9 (exponent field 0 or 1:
// the subnormals and the first binade share the step 2^-9). With u = q + 8,
//   sum_k x_k q_k sg = sg * 2^9 * (sum_k x_k u_k 2^-9 - 2^-6 sum_k x_k),
// so a group's wgmmas take the nibbles masked into bytes (one LOP3, or a shift and a LOP3, per four weights), and the
// correction 2^-6 sum_k x_k (activation_group_sum) is one number per token and group, shared by every channel.
//
// Per expert, N channels in 64-channel tiles (the last one holds the remaining 16-channel stripes), K in 128-groups
// (padded_k(K): the K past K hold q = 0, u = 8);
// the blocks of (tile t, group g) in order t, then g, each contiguous (one bulk copy per group of a tile):
//   block (t, g)  stripes(t) x 1024 bytes of weights, then stripes(t) x 32 bytes of group scales
//   weights       per stripe (16 channels): two 512-byte halves, atoms 0-1 and 2-3 (32 K each); in half h, lane L
//                 (of 32) holds 16 bytes: words 2b + w for atom a = 2h + b, whose byte j holds u(channel r, k) in
//                 its low nibble and u(channel r + 8, k) in its high one, r = L / 4, k = 32 a + 16 w + 4 (L % 4) + j
//                 (a warp's two 16-byte loads per group then read 512 contiguous bytes each).
//                 So `word & 0x0F0F0F0F` and `(word >> 4) & 0x0F0F0F0F` are the lane's wgmma m64k32 A registers
//                 of rows r and r + 8 (wgmma_rs.cuh).
//   group scales  per stripe and r in [0, 8): bf16 sg of channel r, then of channel r + 8 (one 4-byte load per lane)
// After all experts: fp32 channel scales [E][N] holding 2^9 sc, so that W[n, k] = q * sg * sc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prepack/packed_format.h"

namespace w4a8moe::prepack {

// The header's version field for this layout (the lookup-table layout is w4a8moe::kPackedFormatVersion).
inline constexpr uint32_t kExactFormatVersion = 2;
inline constexpr int kExactTileChannels = 64;
inline constexpr int kExactStripeChannels = 16;
inline constexpr uint32_t kExactStripeWeightBytes = kExactStripeChannels * 128 / 2;  // one group: 1024
inline constexpr uint32_t kExactStripeScaleBytes = kExactStripeChannels * 2;          // bf16: 32
inline constexpr uint32_t kExactStripeBytes = kExactStripeWeightBytes + kExactStripeScaleBytes;
// 2^-6: the e4m3 value of u = 8, the offset of the nibbles, at the nibbles' scale 2^-9.
inline constexpr float kExactOffsetValue = 1.0f / 64.0f;
inline constexpr float kExactNibbleScale = 512.0f;  // 2^9, folded into the stored channel scales

struct ExactSections {
  size_t blocks = 0;          // weights and group scales
  size_t channel_scales = 0;  // fp32 [E][N]
  size_t total = 0;
  size_t block_bytes_per_expert = 0;
};

// The sections of a shape whose K is whole groups: the kernels' view (grouped_gemm_params pads K). The MXFP4 layout
// (mxfp4_format.h) has the same structure with more scale bytes a stripe: stripe_bytes is a stripe's weights and
// scales of one group.
W4A8_HOST_DEVICE inline ExactSections exact_sections_of_whole_groups(ExpertWeightShape const& shape,
                                                                     uint32_t stripe_bytes = kExactStripeBytes) {
  size_t const e = size_t(shape.num_experts), n = size_t(shape.n), groups = size_t(shape.k) / 128;
  ExactSections s;
  s.block_bytes_per_expert = groups * (n / kExactStripeChannels) * stripe_bytes;
  s.blocks = kHeaderBytes;
  s.channel_scales = align_up(s.blocks + e * s.block_bytes_per_expert, kSectionAlign);
  s.total = align_up(s.channel_scales + e * n * sizeof(float), kSectionAlign);
  return s;
}

// The sections for a shape of any valid K (packed as padded_k(K)).
W4A8_HOST_DEVICE inline ExactSections exact_sections(ExpertWeightShape shape) {
  shape.k = padded_k(shape.k);
  return exact_sections_of_whole_groups(shape);
}

// Stripes of tile t (4, or fewer in the last tile).
W4A8_HOST_DEVICE inline int exact_tile_stripes(int n, int tile) {
  int const stripes = n / kExactStripeChannels - tile * (kExactTileChannels / kExactStripeChannels);
  return stripes < 4 ? stripes : 4;
}

// Byte offset of block (tile, group) within one expert's blocks.
W4A8_HOST_DEVICE inline size_t exact_block_offset(int n, int groups, int tile, int group,
                                                  uint32_t stripe_bytes = kExactStripeBytes) {
  return (size_t(tile) * groups * 4 + size_t(group) * size_t(exact_tile_stripes(n, tile))) * stripe_bytes;
}

// Where weight (channel, k) of an expert lives: byte offset within the expert's blocks, and its nibble (0 low, 1
// high).
struct NibblePlace {
  size_t byte;
  int nibble;
};

W4A8_HOST_DEVICE inline NibblePlace exact_weight_place(int n, int groups, int channel, int k,
                                                       uint32_t stripe_bytes = kExactStripeBytes) {
  int const tile = channel / kExactTileChannels, stripe = (channel % kExactTileChannels) / kExactStripeChannels;
  int const row = channel % kExactStripeChannels, r = row % 8, group = k / 128, kk = k % 128;
  int const atom = kk / 32, word = (kk % 32) / 16, lane = 4 * r + (kk % 16) / 4, byte = kk % 4;
  size_t const offset = exact_block_offset(n, groups, tile, group, stripe_bytes) +
                        size_t(stripe) * kExactStripeWeightBytes +
                        size_t(atom / 2) * 512 + size_t(lane) * 16 + size_t(2 * (atom % 2) + word) * 4 + size_t(byte);
  return {offset, row / 8};
}

// Byte offset of the bf16 group scale of (channel, group) within an expert's blocks.
W4A8_HOST_DEVICE inline size_t exact_scale_offset(int n, int groups, int channel, int group) {
  int const tile = channel / kExactTileChannels, stripe = (channel % kExactTileChannels) / kExactStripeChannels;
  int const row = channel % kExactStripeChannels;
  int const stripes = exact_tile_stripes(n, tile);
  return exact_block_offset(n, groups, tile, group) + size_t(stripes) * kExactStripeWeightBytes +
         size_t(stripe) * kExactStripeScaleBytes + size_t(row % 8) * 4 + size_t(row / 8) * 2;
}

}  // namespace w4a8moe::prepack
