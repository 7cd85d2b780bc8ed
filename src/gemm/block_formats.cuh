// What differs between the two layouts of tile x group blocks that block_stream_kernel.cuh streams: how a lane's
// bytes become wgmma A registers, where its scales sit and how a group's wgmma sums are scaled into the result.
//
// A lane holds accumulator i for channel lane/4 + 8 ((i/2) % 2) of its warp's stripe (wgmma_rs.cuh). A group's four
// atoms (32 K each) are summed and promoted into the result kPromotions times, a quarter, half or all of them each
// time; the atoms of one promotion run into kParts accumulators, its j-th atom into part[j % kParts].
#pragma once

#include <cstdint>

#include "gemm/exact_stream_gemm.h"
#include "gemm/weight_stream.cuh"  // kAtomsPerGroup
#include "prepack/exact_format.h"
#include "prepack/mxfp4_format.h"

namespace w4a8moe::gemm {

__device__ __forceinline__ uint32_t load_shared_4(uint32_t address) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(address));
  return v;
}
__device__ __forceinline__ uint2 load_shared_8(uint32_t address) {
  uint2 v;
  asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "r"(address));
  return v;
}

// prepack/exact_format.h: offset-binary nibbles read as e4m3 u * 2^-9 by masks alone, one bf16 scale per channel and
// group, and the offset taken off with the activations' group sums: acc += sg * (group - 2^-6 sum_k x_k), or in the
// 128-row chunks acc += sg * group, the offset coming off every eight groups in one bf16 wgmma
// (block_stream_kernel.cuh's OffsetTile).
struct ExactScalesFormat {
  static constexpr uint32_t kStripeScaleBytes = prepack::kExactStripeScaleBytes;
  static constexpr uint32_t kLaneScaleBytes = 4;  // bf16 of channels r and r + 8
  static constexpr bool kGroupSums = true;
  static constexpr bool kTakesBias = false;
  static constexpr int kPromotions = 1;
  static constexpr int kParts = 1;
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
  __device__ __forceinline__ static void unpack_atom(uint32_t x, uint32_t y, uint32_t (&a)[4]) {
    a[0] = x & 0x0F0F0F0Fu;
    a[1] = (x >> 4) & 0x0F0F0F0Fu;
    a[2] = y & 0x0F0F0F0Fu;
    a[3] = (y >> 4) & 0x0F0F0F0Fu;
  }

  // sums: the group sums of the lane's rows (8j + 2c, 8j + 2c + 1).
  template <int kRows>
  __device__ __forceinline__ static void promote(float (&acc)[kRows / 2], float const (&part)[kParts][kRows / 2],
                                                 Scales scale, float2 const (&sums)[kRows / 8], int) {
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) {
      float const sum = i % 2 == 0 ? sums[i / 4].x : sums[i / 4].y;
      acc[i] = fmaf((i / 2) % 2 == 0 ? scale.x : scale.y, part[0][i] - sum, acc[i]);
    }
  }

  // acc += sg * group, the offset left to the OffsetTile.
  template <int kRows>
  __device__ __forceinline__ static void promote_scaled(float (&acc)[kRows / 2], float const (&part)[kParts][kRows / 2],
                                                        Scales scale) {
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) acc[i] = fmaf((i / 2) % 2 == 0 ? scale.x : scale.y, part[0][i], acc[i]);
  }

  // The scale of channel r (r + 8: scale.y) as a bf16 pair, the value twice: a group's two K slots in the OffsetTile's
  // wgmma.
  __device__ __forceinline__ static uint32_t scale_pair(float scale) {
    uint32_t out;
    asm("prmt.b32 %0, %1, 0, 0x3232;" : "=r"(out) : "r"(__float_as_uint(scale)));
    return out;
  }
};

// prepack/mxfp4_format.h: placed e2m1 codes read as e4m3 e2m1 * 2^-6 after masks and shifts, one e8m0 scale per
// channel and atom, so each atom has its own accumulator: acc += 2^(s - 127) * part. All four atoms at once
// (kPromotions 1: four accumulators, chunks of up to 32 rows), or two at a time (kPromotions 2: two accumulators and
// two waits a group, which larger chunks can hold; bench/NOTES.md §32).
template <int kPromotionsPerGroup>
struct Mxfp4FormatOf {
  static constexpr uint32_t kStripeScaleBytes = prepack::kMxfp4StripeScaleBytes;
  static constexpr uint32_t kLaneScaleBytes = 8;  // e8m0 of channel r for atoms 0..3, then of channel r + 8
  static constexpr bool kGroupSums = false;
  static constexpr bool kTakesBias = true;  // gpt-oss's expert biases (GroupedGemmParams::bias)
  static constexpr int kPromotions = kPromotionsPerGroup;
  static constexpr int kParts = kAtomsPerGroup / kPromotions;
  using Scales = uint2;

  static constexpr int blocks_per_sm(int rows, int consumers) { return mxfp4_stream_blocks_per_sm(rows, consumers); }

  __host__ __device__ static prepack::ExactSections sections(ExpertWeightShape const& shape) {
    return prepack::mxfp4_sections_of_whole_groups(shape);
  }

  __device__ __forceinline__ static Scales load_scales(uint32_t address) { return load_shared_8(address); }

  __device__ __forceinline__ static void unpack_atom(uint32_t x, uint32_t y, uint32_t (&a)[4]) {
    a[0] = prepack::mxfp4_unpack_low(x);
    a[1] = prepack::mxfp4_unpack_high(x);
    a[2] = prepack::mxfp4_unpack_low(y);
    a[3] = prepack::mxfp4_unpack_high(y);
  }

  // The atoms kParts * promotion.. of the group.
  template <int kRows>
  __device__ __forceinline__ static void promote(float (&acc)[kRows / 2], float const (&part)[kParts][kRows / 2],
                                                 Scales scales, float2 const (&)[kRows / 8], int promotion) {
#pragma unroll
    for (int j = 0; j < kParts; ++j) {
      int const atom = promotion * kParts + j;
      float const low = prepack::e8m0_to_float((scales.x >> (8 * atom)) & 0xFFu);
      float const high = prepack::e8m0_to_float((scales.y >> (8 * atom)) & 0xFFu);
#pragma unroll
      for (int i = 0; i < kRows / 2; ++i) acc[i] = fmaf((i / 2) % 2 == 0 ? low : high, part[j][i], acc[i]);
    }
  }
};

// The MXFP4 configs' format: four accumulators up to 32 rows, two beyond.
template <int kRows>
using Mxfp4Format = Mxfp4FormatOf<(kRows <= 32 ? 1 : 2)>;

}  // namespace w4a8moe::gemm
