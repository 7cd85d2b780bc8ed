// The mma.sync path over the exact-scale layout (prepack/exact_format.h), for the one-launch decode layer
// (moe/decode_layer.cu): a warp streams one 16-channel stripe of one expert group by group. A lane's words of a
// group, masked, are e4m3 bytes u * 2^-9 (u = q + 8) in the places of mma's A fragments, so no table is involved;
// they and the activations become f16 (exact) for mma.sync m16n8k16. (Hopper has no fp8 mma.sync: ptxas emulates
// m16n8k32 e4m3 with these conversions and two f16 mmas from zero plus adds, more instructions than this.) Per group
// the products go to a fresh accumulator that starts at -2^-6 * sum_k x_k (the nibbles' offset, from mmas with every
// A entry -2^-6), and the exact bf16 group scale is applied in fp32 once per group:
//   acc += sg * (sum_k (u_k - 8) 2^-9 x_k) = sg * 2^-9 * sum_k q_k x_k.
// The stored channel scales hold 2^9 sc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemm/stripe_mma.cuh"
#include "prepack/exact_format.h"

namespace w4a8moe::gemm {

// -2^-6 (the nibbles' offset 8 at their scale 2^-9, negated) in both halves of an f16x2.
inline constexpr uint32_t kNegativeOffsetF16x2 = 0xA400A400u;
inline constexpr uint32_t kNibbleMask = 0x0F0F0F0Fu;

// A lane's share of one group of one stripe: halves h = 0, 1 (atoms 2h, 2h + 1; words 2b + w for atom 2h + b) and
// the bf16 group scales of channels lane/4 (low half) and lane/4 + 8 (high half).
struct ExactGroupWeights {
  uint4 halves[2];
  uint32_t scales;
};

// A lane's pointers to the next group of its warp's stripe: consecutive groups of a tile are `step` bytes apart.
struct ExactStripeCursor {
  uint8_t const* weights;  // the lane's 16 bytes of half 0
  uint8_t const* scales;   // the lane's two bf16 scales
  uint32_t step;
};

// Stripe `stripe` (channels 16 stripe ..) of `expert` in packed weights of N = n, K = 128 groups, from K group
// `group` on.
__device__ __forceinline__ ExactStripeCursor exact_stripe_cursor(uint8_t const* packed,
                                                                 prepack::ExactSections const& sections, int n,
                                                                 int groups, int expert, int stripe, int group) {
  int const lane = int(threadIdx.x) % 32;
  int const tile = stripe / 4, in_tile = stripe % 4, tile_stripes = prepack::exact_tile_stripes(n, tile);
  uint8_t const* block = packed + sections.blocks + size_t(expert) * sections.block_bytes_per_expert +
                         prepack::exact_block_offset(n, groups, tile, group);
  ExactStripeCursor c;
  c.weights = block + in_tile * prepack::kExactStripeWeightBytes + lane * 16;
  c.scales = block + tile_stripes * prepack::kExactStripeWeightBytes + in_tile * prepack::kExactStripeScaleBytes +
             (lane / 4) * 4;
  c.step = uint32_t(tile_stripes) * prepack::kExactStripeBytes;
  return c;
}

__device__ __forceinline__ uint4 load_streaming16(void const* address) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(address));
  return v;
}

// Issues the loads of the cursor's group (2 x 16 bytes of weights, 4 bytes of scales per lane) and moves it on.
__device__ __forceinline__ void load_exact_group(ExactStripeCursor& c, ExactGroupWeights& f) {
  f.halves[0] = load_streaming16(c.weights);
  f.halves[1] = load_streaming16(c.weights + 512);
  f.scales = __ldg(reinterpret_cast<uint32_t const*>(c.scales));
  c.weights += c.step;
  c.scales += c.step;
}

// The activations of a group as the B fragments of mma.sync m16n8k16 (f16, exact from e4m3): per atom a and word w
// (K 32 a + 16 w + 4c ..), k slots {2c, 2c + 1} <- K {4c, 4c + 1} and {2c + 8, 2c + 9} <- K {4c + 2, 4c + 3}, the
// k order of gemm::weight_fragment, which the A fragments below take too.
using F16GroupActivations = uint32_t[4][2][2];

// The group's offset term for the lane's accumulators: -2^-6 * sum_k x_k of its columns (every row alike), from
// one mma per atom and word with every A entry -2^-6 (products exact, fp32 sums).
__device__ __forceinline__ void exact_group_offset(F16GroupActivations const& b, float (&offset)[4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) offset[j] = 0.0f;
  F16Fragment const negative{kNegativeOffsetF16x2, kNegativeOffsetF16x2, kNegativeOffsetF16x2, kNegativeOffsetF16x2};
#pragma unroll
  for (int a = 0; a < 4; ++a) {
#pragma unroll
    for (int w = 0; w < 2; ++w) mma_f16_16x8x16(offset, negative, b[a][w][0], b[a][w][1]);
  }
}

// acc += sg * (offset + sum over the group's atoms of A * B). A word of the lane (byte j: u of row r at K 4c + j
// in the low nibble, of row r + 8 in the high one) masked is four e4m3 u * 2^-9 per row, then f16 (exact).
__device__ __forceinline__ void exact_group_mma(ExactGroupWeights const& f, F16GroupActivations const& b,
                                                float const (&offset)[4], float (&acc)[4]) {
  float group[4] = {offset[0], offset[1], offset[2], offset[3]};
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    uint4 const& h = f.halves[a / 2];
#pragma unroll
    for (int w = 0; w < 2; ++w) {
      uint32_t const word = a % 2 == 0 ? (w == 0 ? h.x : h.y) : (w == 0 ? h.z : h.w);
      uint32_t const low = word & kNibbleMask, high = (word >> 4) & kNibbleMask;  // rows r, r + 8
      F16Fragment const fragment{e4m3x2_to_f16x2(low), e4m3x2_to_f16x2(high), e4m3x2_to_f16x2<true>(low),
                                 e4m3x2_to_f16x2<true>(high)};
      mma_f16_16x8x16(group, fragment, b[a][w][0], b[a][w][1]);
    }
  }
  float const low = __uint_as_float(f.scales << 16), high = __uint_as_float(f.scales & 0xFFFF0000u);
  acc[0] = fmaf(low, group[0], acc[0]);
  acc[1] = fmaf(low, group[1], acc[1]);
  acc[2] = fmaf(high, group[2], acc[2]);
  acc[3] = fmaf(high, group[3], acc[3]);
}

}  // namespace w4a8moe::gemm
