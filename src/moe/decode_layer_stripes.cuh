// The one-launch decode layer's GEMM phases (decode_layer.cu): how a warp streams stripes of one expert's packed
// weights, group by group, into mma.sync accumulators, for each packed layout, and the activations it multiplies.
#pragma once

#include <cstdint>

#include "gemm/exact_stripe_mma.cuh"
#include "gemm/stripe_mma.cuh"
#include "moe/decode_layer.h"
#include "moe/kernel_common.cuh"

namespace w4a8moe::moe {

using gemm::GroupWeights;
using gemm::kAtomK;
using gemm::kAtomsPerGroup;

inline constexpr int kStripeStages = 2;  // groups in flight per stripe, as the decode GEMM

// A lane's e4m3 activation words of one 128-K group for its row: per atom a and half h, the bytes of K
// 32 a + 16 h + 4c .. + 3 (c = lane % 4); as f16x2 pairs, mma.sync m16n8k16's B fragments (load_f16).
using ActivationWords = uint32_t[kAtomsPerGroup][2];

// The activations are written earlier in the same launch, so they load through L1 (plain loads, no read-only
// path): no block reads them before the barrier after which they are complete.
//
// GEMM1's activations: the token's e4m3 row (L1 hits: the block's warps share it).
struct E4m3Row {
  uint8_t const* row;  // the lane's row at K 4c, or null past the item's rows
  __device__ void load(int group, ActivationWords& b) const {
#pragma unroll
    for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        b[a][h] = row ? *reinterpret_cast<uint32_t const*>(row + group * kGroupSize + a * kAtomK + h * 16) : 0u;
      }
    }
  }
};

// GEMM2's activations: the fp32 SiLU(gate) * up row, quantised to e4m3 with the row's scale as it loads.
struct QuantisedFloatRow {
  float const* row;  // the lane's row at K 4c, or null past the item's rows
  float inverse;
  __device__ void load(int group, ActivationWords& b) const {
#pragma unroll
    for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float4 const v = row ? *reinterpret_cast<float4 const*>(row + group * kGroupSize + a * kAtomK + h * 16)
                             : make_float4(0.f, 0.f, 0.f, 0.f);
        b[a][h] = quantize4(v.x, v.y, v.z, v.w, inverse);
      }
    }
  }
};

// A group's activations as f16 B fragments (both layouts' mma.sync m16n8k16).
template <class Activations>
__device__ __forceinline__ void load_f16(Activations const& act, int group, gemm::F16GroupActivations& b) {
  ActivationWords words;
  act.load(group, words);
#pragma unroll
  for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      b[a][h][0] = gemm::e4m3x2_to_f16x2(words[a][h]);
      b[a][h][1] = gemm::e4m3x2_to_f16x2<true>(words[a][h]);
    }
  }
}

// How a warp streams one expert's stripes in each packed layout: a cursor per stripe, the group it loads, the terms
// a group's activations give every stripe, and the group's product into a stripe's accumulators.
struct LookupStripes {  // lookup, e4m3 -> f16 and mma.sync m16n8k16 (gemm/stripe_mma.cuh)
  uint8_t const* packed;
  prepack::PackedSections sections;
  int n, expert;
  using Cursor = gemm::StripeCursor;
  using Group = GroupWeights;
  struct Terms {};
  __device__ Cursor cursor(int stripe, int group) const {
    return gemm::stripe_cursor(packed, sections, n, expert, stripe, group);
  }
  __device__ void load(Cursor& c, Group& f) const { gemm::load_group(n, c, f); }
  __device__ Terms terms(gemm::F16GroupActivations const&) const { return {}; }
  __device__ void multiply(Group const& f, gemm::F16GroupActivations const& b, Terms, float (&acc)[4]) const {
    uint2 const positive_low = gemm::positive_table(f.table_low);
    uint2 const positive_high = gemm::positive_table(f.table_high);
#pragma unroll
    for (int a = 0; a < kAtomsPerGroup; ++a) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        gemm::F16Fragment const fragment =
            gemm::weight_fragment(h == 0 ? f.atoms[a].x : f.atoms[a].y, f, positive_low, positive_high);
        gemm::mma_f16_16x8x16(acc, fragment, b[a][h][0], b[a][h][1]);
      }
    }
  }
};

struct ExactStripes {  // masked nibbles, group scales per group (gemm/exact_stripe_mma.cuh)
  uint8_t const* packed;
  prepack::ExactSections sections;
  int n, groups, expert;
  using Cursor = gemm::ExactStripeCursor;
  using Group = gemm::ExactGroupWeights;
  struct Terms {
    float offset[4];  // one per column and group: the warp's stripes share it
  };
  __device__ Cursor cursor(int stripe, int group) const {
    return gemm::exact_stripe_cursor(packed, sections, n, groups, expert, stripe, group);
  }
  __device__ void load(Cursor& c, Group& f) const { gemm::load_exact_group(c, f); }
  __device__ Terms terms(gemm::F16GroupActivations const& b) const {
    Terms t;
    gemm::exact_group_offset(b, t.offset);
    return t;
  }
  __device__ void multiply(Group const& f, gemm::F16GroupActivations const& b, Terms const& t,
                           float (&acc)[4]) const {
    gemm::exact_group_mma(f, b, t.offset, acc);
  }
};

// One warp: kStripes stripes of one expert over K groups [begin, end), kStripeStages groups in flight per stripe.
template <class Stripes, int kStripes, class Activations>
__device__ __forceinline__ void stream_stripes(Stripes const& format, int const (&stripes)[kStripes], int begin,
                                               int end, Activations const& act, float (&acc)[kStripes][4]) {
  typename Stripes::Cursor cursor[kStripes];
  typename Stripes::Group stage[kStripeStages][kStripes];
#pragma unroll
  for (int s = 0; s < kStripes; ++s) cursor[s] = format.cursor(stripes[s], begin);
#pragma unroll
  for (int i = 0; i < kStripeStages; ++i) {
#pragma unroll
    for (int s = 0; s < kStripes; ++s) {
      if (begin + i < end) format.load(cursor[s], stage[i][s]);
    }
  }
  for (int g = begin; g < end; g += kStripeStages) {
#pragma unroll
    for (int i = 0; i < kStripeStages; ++i) {
      if (g + i >= end) break;
      gemm::F16GroupActivations b;
      load_f16(act, g + i, b);
      auto const terms = format.terms(b);
#pragma unroll
      for (int s = 0; s < kStripes; ++s) {
        format.multiply(stage[i][s], b, terms, acc[s]);
        if (g + i + kStripeStages < end) format.load(cursor[s], stage[i][s]);
      }
    }
  }
}

// The layout's stripe streaming over one GEMM's weights (N = n, K = groups * 128).
template <PackedLayout kLayout>
__device__ __forceinline__ auto stripes_of(DecodeLayerWeights const& w, int n, int groups, int expert) {
  if constexpr (kLayout == PackedLayout::kExactScales) {
    return ExactStripes{w.packed, w.exact, n, groups, expert};
  } else {
    return LookupStripes{w.packed, w.lookup, n, expert};
  }
}

}  // namespace w4a8moe::moe
