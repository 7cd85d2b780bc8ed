// Where the streaming wgmma kernel (stream_gemm.cu) keeps a chunk's activations in shared memory, and the wgmma
// descriptor that reads them. Host and device, so a CPU test can hold them against CuTe's canonical layouts.
//
// One ring slot holds one 128-K group of kRows rows as the tensor copy engine writes it with the 128-byte swizzle:
// row r at 128 r, its 16-byte chunk c at chunk c ^ (r % 8). That is wgmma's canonical K-major layout with the
// 128-byte swizzle: 8-row groups 1024 bytes apart (the descriptor's stride byte offset), the leading byte offset
// unused. A 32-K atom starts 32 bytes further into the same rows; the swizzle applies to the address bits, so the
// slot must be 1024-byte aligned.
#pragma once

#include <cstdint>

#include "prepack/packed_format.h"  // W4A8_HOST_DEVICE

namespace w4a8moe::gemm {

inline constexpr uint32_t kSwizzleAtomBytes = 1024;  // 8 rows of 128 bytes
inline constexpr uint64_t kSwizzle128Layout = 1;     // the descriptor's layout type for the 128-byte swizzle

// Byte offset of activation (row, k) of a group in its slot; k in [0, 128).
W4A8_HOST_DEVICE constexpr uint32_t activation_slot_offset(int row, int k) {
  return uint32_t(row) * 128 + ((uint32_t(k / 16) ^ uint32_t(row % 8)) * 16) + uint32_t(k % 16);
}

// The wgmma shared-memory descriptor of K atom `atom` (32 bytes) of the slot at this 1024-byte aligned shared address:
// start address (16-byte units, 14 bits), leading byte offset 1 (unused with a swizzle), stride byte offset 1024,
// base offset 0, layout type 128-byte swizzle. The atom adds 2 to the slot's start address after the mask, not 32
// bytes before it (shared addresses stay below 2^18, so the 14-bit field never carries): the four descriptors of a
// group then cost one masked address and an OR each in the kernel's SASS.
W4A8_HOST_DEVICE constexpr uint64_t activation_descriptor(uint32_t slot_address, int atom) {
  return uint64_t((((slot_address & 0x3FFFF) >> 4) + uint32_t(atom) * 2) | (uint32_t(1) << 16)) |
         (uint64_t(kSwizzleAtomBytes >> 4) << 32) | (kSwizzle128Layout << 62);
}

}  // namespace w4a8moe::gemm
