// The private packed-weights format (version kPackedFormatVersion). Host and device; no CUTLASS types.
//
//   [header 256 B][weights][group scales][channel scales][layouts], each section 256-byte aligned
//   weights         per expert N*Kp/2 bytes (Kp = padded_k(K); the K past K hold q = 0): int4, LUT-encoded (see
//                   encode_lut_nibble), reordered for the fp8 wgmma fragment (see reorder_atom_offset)
//   group scales    per expert [Kp/128][N] x 8 e4m3: each (group, channel)'s table {e4m3(-8 t), ..., e4m3(-1 t)}
//   odd tables      per expert [Kp/128][N] x 4 e4m3: the same table's odd entries {e4m3(-1 t), e4m3(-3 t),
//                   e4m3(-5 t), e4m3(-7 t)}, from which expand_odd_table() rebuilds it (the decode streaming
//                   kernels read these: 68 bytes a channel and group instead of 72, bench/NOTES.md §77)
//   channel scales  per expert [N] fp32
//   layouts         per expert one CuTe layout of the reordered weights (the pointer-array mainloop takes one per
//                   group), kLayoutSlotBytes each
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "w4a8moe/types.h"

#if defined(__CUDACC__)
#define W4A8_HOST_DEVICE __host__ __device__
#else
#define W4A8_HOST_DEVICE
#endif

namespace w4a8moe::prepack {

inline constexpr char kPackedMagic[8] = {'W', '4', 'A', '8', 'M', 'O', 'E', '\0'};
inline constexpr size_t kHeaderBytes = 256;
inline constexpr size_t kSectionAlign = 256;
// sizeof(LayoutWeightReordered), asserted in prepack_kernels.cu: the mainloop indexes the per-expert layouts as an
// array of that type, so the slots must be exactly that size.
inline constexpr size_t kLayoutSlotBytes = 12;
inline constexpr size_t kLutBytes = 8;
inline constexpr size_t kOddTableBytes = 4;

// The smallest |t| a table is built from (bounded_table_step): e4m3's smallest normal number. Every entry q * t is
// then normal, so the even entries are exactly the odd ones doubled, which expand_odd_table() does by adding to the
// exponent field (a subnormal or zero entry would not double that way). Only a group whose scale is below 1/3584 of
// its channel's largest takes the bound; its q then count 2^-6 each (an all-zero group, q = 0, is unaffected).
inline constexpr float kMinTableStep = 0.015625f;

W4A8_HOST_DEVICE inline float bounded_table_step(float step) {
  return fabsf(step) < kMinTableStep ? copysignf(kMinTableStep, step) : step;
}

// A table as two words (bytes 0-7: e4m3(-8 t), ..., e4m3(-1 t)) -> its odd entries, byte i e4m3(-(2i + 1) t).
W4A8_HOST_DEVICE inline uint32_t odd_table(uint32_t low, uint32_t high) {
  return (high >> 24) | ((high >> 8) & 0xFF) << 8 | (low >> 24) << 16 | ((low >> 8) & 0xFF) << 24;
}

// The inverse, for tables of bounded_table_step() steps: each even entry is an odd one with its exponent field raised
// (-8t = 8 * -1t by 3, -4t = 4 * -1t by 2, -6t = 2 * -3t and -2t = 2 * -1t by 1), which never carries out of the
// byte since |8t| <= 448. Two byte permutes and two adds on the device; the host version is for the tests.
struct TableWords {
  uint32_t low, high;
};
W4A8_HOST_DEVICE inline TableWords expand_odd_table(uint32_t odd) {
#if defined(__CUDA_ARCH__)
  return {__byte_perm(odd, 0, 0x2130) + 0x00080018u, __byte_perm(odd, 0, 0x0010) + 0x00080010u};
#else
  auto byte = [odd](int i) { return (odd >> (8 * i)) & 0xFFu; };
  return {(byte(0) | byte(3) << 8 | byte(1) << 16 | byte(2) << 24) + 0x00080018u,
          (byte(0) | byte(1) << 8 | byte(0) << 16 | byte(0) << 24) + 0x00080010u};
#endif
}

struct PackedHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  int32_t num_experts;
  int32_t n;
  int32_t k;
  int32_t group_size;
  uint64_t total_bytes;
  uint32_t bad_value_count;  // scales found breaking the rules while packing (must be 0)
  uint32_t reserved;
};
static_assert(sizeof(PackedHeader) <= kHeaderBytes, "header must fit its slot");

// The header of a buffer of `total_bytes` packed for `shape` in format `version` (either layout's; host side).
inline PackedHeader make_packed_header(ExpertWeightShape const& shape, uint32_t version, size_t total_bytes) {
  PackedHeader header{};
  for (size_t i = 0; i < sizeof header.magic; ++i) header.magic[i] = kPackedMagic[i];
  header.version = version;
  header.header_bytes = kHeaderBytes;
  header.num_experts = shape.num_experts;
  header.n = shape.n;
  header.k = shape.k;
  header.group_size = shape.group_size;
  header.total_bytes = total_bytes;
  return header;
}

W4A8_HOST_DEVICE inline size_t align_up(size_t bytes, size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

struct PackedSections {
  size_t weights = 0;
  size_t group_scales = 0;
  size_t odd_tables = 0;
  size_t channel_scales = 0;
  size_t layouts = 0;
  size_t total = 0;
  size_t weight_bytes_per_expert = 0;
  size_t group_scale_bytes_per_expert = 0;
  size_t odd_table_bytes_per_expert = 0;
};

// Byte offsets of the sections for a valid shape.
W4A8_HOST_DEVICE inline PackedSections packed_sections(ExpertWeightShape const& shape) {
  size_t const e = static_cast<size_t>(shape.num_experts);
  size_t const n = static_cast<size_t>(shape.n);
  size_t const k = static_cast<size_t>(padded_k(shape.k));
  PackedSections s;
  s.weight_bytes_per_expert = n * k / 2;
  s.group_scale_bytes_per_expert = (k / static_cast<size_t>(shape.group_size)) * n * kLutBytes;
  s.odd_table_bytes_per_expert = (k / static_cast<size_t>(shape.group_size)) * n * kOddTableBytes;
  s.weights = kHeaderBytes;
  s.group_scales = align_up(s.weights + e * s.weight_bytes_per_expert, kSectionAlign);
  s.odd_tables = align_up(s.group_scales + e * s.group_scale_bytes_per_expert, kSectionAlign);
  s.channel_scales = align_up(s.odd_tables + e * s.odd_table_bytes_per_expert, kSectionAlign);
  s.layouts = align_up(s.channel_scales + e * n * sizeof(float), kSectionAlign);
  s.total = align_up(s.layouts + e * kLayoutSlotBytes, kSectionAlign);
  return s;
}

// LUT-friendly int4 encoding: positive v in 1..7 becomes 8 - v, zero and negatives keep their
// two's-complement nibble, so +p and -p share their three low bits (the LUT index) and differ in the sign bit.
W4A8_HOST_DEVICE inline uint32_t encode_lut_nibble(int q) {
  return (q > 0) ? static_cast<uint32_t>(8 - q) : static_cast<uint32_t>(q) & 0xFu;
}

W4A8_HOST_DEVICE inline int decode_lut_nibble(uint32_t nibble) {
  nibble &= 0xFu;
  if (nibble >= 1 && nibble <= 7) return 8 - static_cast<int>(nibble);
  return nibble >= 8 ? static_cast<int>(nibble) - 16 : 0;
}

// Nibble offset of element (n, k) within one expert's reordered weights. The reorder atom of CUTLASS's
// compute_memory_reordering_atom<float_e4m3_t>() is, in CuTe notation,
//   (((8,2),1),((4,4,2),1)) : (((64,4),0),((1,16,8),0))        16 rows x 32 K, 512 nibbles
// tiled over (N, K) column-major (tile (tn, tk) at (tn + tk * N/16) * 512). Written out here so the CPU reference
// does not depend on CuTe; a CPU test checks it against the CuTe layout the kernel uses, element by element.
W4A8_HOST_DEVICE inline int64_t reorder_atom_offset(int64_t n, int64_t k, int64_t num_rows) {
  int64_t const rn = n % 16, rk = k % 32;
  int64_t const tile = n / 16 + (k / 32) * (num_rows / 16);
  int64_t const in_atom = (rn % 8) * 64 + (rn / 8) * 4 + (rk % 4) * 1 + ((rk / 4) % 4) * 16 + (rk / 16) * 8;
  return tile * 512 + in_atom;
}

}  // namespace w4a8moe::prepack
