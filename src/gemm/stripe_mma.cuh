// The mma.sync path over the packed format, shared by the decode GEMM (gemm/decode_gemm.cu) and the one-launch decode
// layer (moe/decode_layer.cu): a warp streams one 16-channel stripe of one expert group by group; a lane's 16
// nibbles of a group's atom are the A fragment of two mma.sync m16n8k16 after the lookup (e4m3) and e4m3 -> f16.
// The f16 products of e4m3 values are exact, and the MMA accumulates in fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemm/weight_stream.cuh"
#include "prepack/packed_format.h"

namespace w4a8moe::gemm {

// Two e4m3 in the low (kHigh: high) half of a word -> f16x2.
template <bool kHigh = false>
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t word) {
  uint32_t out;
  if constexpr (kHigh) {
    asm("{ .reg .b16 lo, hi; mov.b32 {lo, hi}, %1; cvt.rn.f16x2.e4m3x2 %0, hi; }" : "=r"(out) : "r"(word));
  } else {
    asm("{ .reg .b16 lo, hi; mov.b32 {lo, hi}, %1; cvt.rn.f16x2.e4m3x2 %0, lo; }" : "=r"(out) : "r"(word));
  }
  return out;
}

// A lane's A fragment of one m16n8k16: rows lane/4 and lane/4 + 8, as f16x2.
struct F16Fragment {
  uint32_t a0, a1, a2, a3;
};

__device__ __forceinline__ void mma_f16_16x8x16(float (&c)[4], F16Fragment const& a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a.a0), "r"(a.a1), "r"(a.a2), "r"(a.a3), "r"(b0), "r"(b1));
}

// One word of a half atom (nibbles 0-3: channel lane/4 at K 4c..4c+3, c = lane % 4; nibbles 4-7: channel + 8) ->
// the A fragment. mma k slots {2c, 2c+1} <- K {4c, 4c+1}, slots {2c+8, 2c+9} <- K {4c+2, 4c+3}: the activations'
// B fragment must take its four K values in the same order (four bytes of one word, e4m3x2_to_f16x2 low and high).
__device__ __forceinline__ F16Fragment weight_fragment(uint32_t word, GroupWeights const& f, uint2 positive_low,
                                                       uint2 positive_high) {
  uint32_t low, high;
  lookup8<false>(word, f.table_low, positive_low, f.table_high, positive_high, low, high);
  return {e4m3x2_to_f16x2(low), e4m3x2_to_f16x2(high), e4m3x2_to_f16x2<true>(low), e4m3x2_to_f16x2<true>(high)};
}

// A lane's pointers to the next group of its warp's stripe to load: each group adds a constant, so the loop has no
// 64-bit index arithmetic for the weights.
struct StripeCursor {
  uint8_t const* weights;  // the lane's 8 bytes of the group's first atom
  uint2 const* table;      // the table of channel lane/4 (channel lane/4 + 8: 8 entries on)
};

// Stripe `stripe` (channels 16 stripe ..) of `expert` in packed weights of N = n, from K group `group` on.
__device__ __forceinline__ StripeCursor stripe_cursor(uint8_t const* packed, prepack::PackedSections const& sections,
                                                      int n, int expert, int stripe, int group) {
  int const lane = int(threadIdx.x) % 32;
  StripeCursor c;
  c.weights = packed + sections.weights + size_t(expert) * sections.weight_bytes_per_expert +
              size_t(group) * kAtomsPerGroup * atom_stride(n) + size_t(stripe) * kAtomBytes + lane * 8;
  c.table = reinterpret_cast<uint2 const*>(packed + sections.group_scales +
                                           size_t(expert) * sections.group_scale_bytes_per_expert) +
            size_t(group) * n + stripe * kStripeChannels + lane / 4;
  return c;
}

// Issues the loads of the cursor's group: 4 atoms (8 bytes per lane each) and the two channels' tables. Before a PDL
// wait through L2 only (common/pdl.cuh), else on the non-coherent path.
template <bool kBeforeWait = false>
__device__ __forceinline__ void load_group(int n, StripeCursor& c, GroupWeights& f) {
#pragma unroll
  for (int a = 0; a < kAtomsPerGroup; ++a) {
    void const* atom = c.weights + a * atom_stride(n);
    f.atoms[a] = kBeforeWait ? load_through_l2(atom) : load_streaming(atom);
  }
  f.table_low = kBeforeWait ? __ldcg(c.table) : __ldg(c.table);
  f.table_high = kBeforeWait ? __ldcg(c.table + 8) : __ldg(c.table + 8);
  c.weights += kAtomsPerGroup * atom_stride(n);
  c.table += n;
}

}  // namespace w4a8moe::gemm
