// What differs between the two layouts of tile x group blocks that block_stream_kernel.cuh streams: how a lane's
// bytes become wgmma A registers, where its scales sit and how a group's wgmma sums are scaled into the result.
//
// A lane holds accumulator i for channel lane/4 + 8 ((i/2) % 2) of its warp's stripe (wgmma_rs.cuh). Exact-scale: a
// group's four atoms (32 K each) are summed into a fresh accumulator and promoted into the result with the group's
// scale. MXFP4 (kScaledInMma): the scales are in the A registers, so the wgmmas accumulate into the result itself.
#pragma once

#include <cstdint>

#include "gemm/async_copy.cuh"  // load_shared_*
#include "gemm/exact_stream_gemm.h"
#include "gemm/weight_stream.cuh"  // kAtomsPerGroup
#include "prepack/exact_format.h"
#include "prepack/mxfp4_format.h"

namespace w4a8moe::gemm {

// prepack/exact_format.h: offset-binary nibbles read as e4m3 u * 2^-9 by masks alone, one bf16 scale per channel and
// group, and the offset taken off with the activations' group sums: acc += sg * (group - 2^-6 sum_k x_k), or in the
// 128-row chunks acc += sg * group, the offset coming off every eight groups in one bf16 wgmma
// (block_stream_kernel.cuh's OffsetTile).
struct ExactScalesFormat {
  static constexpr uint32_t kStripeScaleBytes = prepack::kExactStripeScaleBytes;
  static constexpr uint32_t kLaneScaleBytes = 4;  // bf16 of channels r and r + 8
  static constexpr bool kGroupSums = true;
  static constexpr bool kTakesBias = false;
  static constexpr bool kScaledInMma = false;
  using Scales = float2;

  static constexpr int blocks_per_sm(int rows, int consumers) { return exact_stream_blocks_per_sm(rows, consumers); }

  __host__ __device__ static prepack::ExactSections sections(ExpertWeightShape const& shape) {
    return prepack::exact_sections_of_whole_groups(shape);
  }

  __device__ __forceinline__ static Scales load_scales(uint32_t address) {
    uint32_t const bits = load_shared_4(address);
    return {__uint_as_float(bits << 16), __uint_as_float(bits & 0xFFFF0000u)};
  }

  // Two words of one atom (K 4c.. and 16 + 4c.., rows r and r + 8 in the nibbles) -> the atom's four A registers.
  __device__ __forceinline__ static void unpack_atom(uint32_t x, uint32_t y, Scales, int, uint32_t (&a)[4]) {
    a[0] = x & 0x0F0F0F0Fu;
    a[1] = (x >> 4) & 0x0F0F0F0Fu;
    a[2] = y & 0x0F0F0F0Fu;
    a[3] = (y >> 4) & 0x0F0F0F0Fu;
  }

  // sums: the group sums of the lane's rows (8j + 2c, 8j + 2c + 1).
  template <int kRows>
  __device__ __forceinline__ static void promote(float (&acc)[kRows / 2], float const (&part)[kRows / 2],
                                                 Scales scale, float2 const (&sums)[kRows / 8]) {
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) {
      float const sum = i % 2 == 0 ? sums[i / 4].x : sums[i / 4].y;
      acc[i] = fmaf((i / 2) % 2 == 0 ? scale.x : scale.y, part[i] - sum, acc[i]);
    }
  }

  // acc += sg * group, the offset left to the OffsetTile.
  template <int kRows>
  __device__ __forceinline__ static void promote_scaled(float (&acc)[kRows / 2], float const (&part)[kRows / 2],
                                                        Scales scale) {
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) acc[i] = fmaf((i / 2) % 2 == 0 ? scale.x : scale.y, part[i], acc[i]);
  }

  // The scale of channel r (r + 8: scale.y) as a bf16 pair, the value twice: a group's two K slots in the OffsetTile's
  // wgmma.
  __device__ __forceinline__ static uint32_t scale_pair(float scale) {
    uint32_t out;
    asm("prmt.b32 %0, %1, 0, 0x3232;" : "=r"(out) : "r"(__float_as_uint(scale)));
    return out;
  }
};

// prepack/mxfp4_format.h: each block's scale folded into the e4m3 bytes, d bytes for channels r (scales.x, atom a
// at byte a) and r + 8 (scales.y); per atom one table a channel (two multiply-adds) and per word one lookup.
struct Mxfp4Format {
  static constexpr uint32_t kStripeScaleBytes = prepack::kMxfp4StripeScaleBytes;
  static constexpr uint32_t kLaneScaleBytes = 8;  // d of channel r for atoms 0..3, then of channel r + 8
  static constexpr bool kGroupSums = false;
  static constexpr bool kTakesBias = true;  // gpt-oss's expert biases (GroupedGemmParams::bias)
  static constexpr bool kScaledInMma = true;
  using Scales = uint2;

  static constexpr int blocks_per_sm(int rows, int consumers) { return mxfp4_stream_blocks_per_sm(rows, consumers); }

  __host__ __device__ static prepack::ExactSections sections(ExpertWeightShape const& shape) {
    return prepack::mxfp4_sections_of_whole_groups(shape);
  }

  __device__ __forceinline__ static Scales load_scales(uint32_t address) { return load_shared_8(address); }

  __device__ __forceinline__ static void unpack_atom(uint32_t x, uint32_t y, Scales scales, int atom,
                                                     uint32_t (&a)[4]) {
    prepack::Mxfp4Table const table = prepack::mxfp4_table((scales.x >> (8 * atom)) & 0xFFu);
    prepack::Mxfp4Table const table8 = prepack::mxfp4_table((scales.y >> (8 * atom)) & 0xFFu);
    prepack::mxfp4_unpack_word(x, table, table8, a[0], a[1]);
    prepack::mxfp4_unpack_word(y, table, table8, a[2], a[3]);
  }
};

}  // namespace w4a8moe::gemm
