// Prepack kernels of the two layouts of tile x group blocks: the exact-scale layout (exact_format.h: offset-binary
// nibbles placed as the wgmma fragments want them, bf16 group scales beside each block, channel scales times 2^9)
// and the MXFP4 layout (mxfp4_format.h: e2m1 codes placed as the fragments and the unpacking tables want them, the
// block scales folded against each channel's reference exponent beside each block, channel scales 2^(r - 121)).
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstring>

#include "prepack/exact_format.h"
#include "prepack/mxfp4_format.h"
#include "prepack/prepack_kernels.h"

namespace w4a8moe::prepack {
namespace {

constexpr int kThreads = 256;

// The reference exponent r of an MXFP4 channel scale 2^(r - 121) (mxfp4_channel_scale).
__device__ int reference_exponent_of(float channel_scale) { return int(__float_as_uint(channel_scale) >> 23) - 6; }

// One thread per channel pair (n, n + 8) of a 16-channel stripe and 8 consecutive K (one checkpoint word per
// channel, nibble i holding k = 8 word + i in every format taken here): the pair shares the layout's bytes, so one
// thread writes them whole. kMxfp4: e2m1 codes placed by mxfp4_place_code, 0 past K, those of blocks below their
// channel's fold rounded (e8m0 scales [rows, K/32], and the reference exponents from the packed channel scales that
// place_mxfp4_scales wrote); otherwise offset-binary nibbles (low channel n, high n + 8), q = 0 (u = 8) past K.
template <bool kMxfp4>
__global__ void place_block_weights(uint32_t const* __restrict__ words, WeightFormat format, ExpertWeightShape shape,
                                    uint8_t* __restrict__ blocks, size_t bytes_per_expert,
                                    uint8_t const* __restrict__ mxfp4_scales = nullptr,
                                    float const* __restrict__ mxfp4_channel_scales = nullptr) {
  int const words_per_row = shape.k / 8, padded_words = padded_k(shape.k) / 8, groups = group_count(shape.k);
  int64_t const pairs_per_expert = int64_t(shape.n / 2) * padded_words;
  int64_t const total = pairs_per_expert * shape.num_experts;
  uint32_t const stripe_bytes = kMxfp4 ? kMxfp4StripeBytes : kExactStripeBytes;
  uint32_t const padding = kMxfp4 ? 0u : 0x88888888u;
  // Signed int4 (two's complement t) becomes offset binary by flipping each nibble's top bit: t + 8 mod 16.
  uint32_t const flip = format == WeightFormat::kSignedInt4 ? 0x88888888u : 0u;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < total;
       item += int64_t(gridDim.x) * blockDim.x) {
    int64_t const e = item / pairs_per_expert, in_expert = item % pairs_per_expert;
    int const pair = int(in_expert / padded_words), word = int(in_expert % padded_words);
    int const n = (pair / 8) * 16 + pair % 8;  // channels n and n + 8 of one stripe
    bool const in_k = word < words_per_row;
    uint32_t const low = in_k ? words[(e * shape.n + n) * words_per_row + word] ^ flip : padding;
    uint32_t const high = in_k ? words[(e * shape.n + n + 8) * words_per_row + word] ^ flip : padding;
    uint8_t* expert = blocks + e * bytes_per_expert;
    int low_shift = 0, high_shift = 0;  // MXFP4: binades the codes of a block below its channel's fold lose
    if constexpr (kMxfp4) {
      if (in_k) {
        int const row_blocks = shape.k / kMxfp4BlockSize, block = word / (kMxfp4BlockSize / 8);
        int64_t const low_row = e * shape.n + n, high_row = low_row + 8;
        low_shift = mxfp4_fold_shift(mxfp4_scales[low_row * row_blocks + block],
                                     reference_exponent_of(mxfp4_channel_scales[low_row]));
        high_shift = mxfp4_fold_shift(mxfp4_scales[high_row * row_blocks + block],
                                      reference_exponent_of(mxfp4_channel_scales[high_row]));
      }
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      uint32_t out = 0;
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        uint32_t const lo = (low >> (4 * (4 * half + b))) & 0xFu, hi = (high >> (4 * (4 * half + b))) & 0xFu;
        if constexpr (kMxfp4) {
          out |= mxfp4_place_code(mxfp4_round_code(lo, low_shift), false, b) |
                 mxfp4_place_code(mxfp4_round_code(hi, high_shift), true, b);
        } else {
          out |= (lo | hi << 4) << (8 * b);
        }
      }
      auto const place = exact_weight_place(shape.n, groups, n, 8 * word + 4 * half, stripe_bytes);
      *reinterpret_cast<uint32_t*>(expert + place.byte) = out;
    }
  }
}

// One thread per (expert, channel): its group scales as bf16 (exact for both input formats) and 2^9 sc; counts
// non-finite scales.
__global__ void place_exact_scales(void const* __restrict__ group_scales, float const* __restrict__ channel_scales,
                                   ScaleFormat format, ExpertWeightShape shape, uint8_t* __restrict__ blocks,
                                   size_t bytes_per_expert, float* __restrict__ packed_channel_scales,
                                   uint32_t* bad_value_count) {
  int const groups = group_count(shape.k);
  for (int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; row < int64_t(shape.num_experts) * shape.n;
       row += int64_t(gridDim.x) * blockDim.x) {
    int64_t const e = row / shape.n;
    int const n = int(row % shape.n);
    uint32_t bad = 0;
    float channel = 1.0f;
    if (format == ScaleFormat::kFP8WithChannelScale) {
      channel = channel_scales[row];
      if (!isfinite(channel)) ++bad;
    }
    packed_channel_scales[row] = channel * kExactNibbleScale;
    for (int g = 0; g < groups; ++g) {
      __nv_bfloat16 sg;
      if (format == ScaleFormat::kBF16) {
        sg = static_cast<__nv_bfloat16 const*>(group_scales)[row * groups + g];
      } else {
        uint8_t const bits = static_cast<uint8_t const*>(group_scales)[row * groups + g];
        __half_raw const h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(bits), __NV_E4M3);
        sg = __float2bfloat16_rn(__half2float(__half(h)));  // e4m3 values are exact in bf16
      }
      if (!isfinite(__bfloat162float(sg))) ++bad;
      *reinterpret_cast<__nv_bfloat16*>(blocks + e * bytes_per_expert + exact_scale_offset(shape.n, groups, n, g)) =
          sg;
    }
    if (bad) atomicAdd(bad_value_count, bad);
  }
}

// One thread per (expert, channel): the reference exponent r from its largest e8m0 scale, the channel scale
// 2^(r - 121), and each block's d = s - r (at least 1; 1 past K); counts NaN scales.
__global__ void place_mxfp4_scales(uint8_t const* __restrict__ scales, ExpertWeightShape shape,
                                   uint8_t* __restrict__ blocks, size_t bytes_per_expert,
                                   float* __restrict__ packed_channel_scales, uint32_t* bad_value_count) {
  int const groups = group_count(shape.k), blocks_per_row = shape.k / kMxfp4BlockSize;
  for (int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; row < int64_t(shape.num_experts) * shape.n;
       row += int64_t(gridDim.x) * blockDim.x) {
    int64_t const e = row / shape.n;
    int const n = int(row % shape.n);
    uint32_t bad = 0;
    int s_max = 0;
    for (int b = 0; b < blocks_per_row; ++b) {
      uint8_t const s = scales[row * blocks_per_row + b];
      bad += s == kE8m0Nan;
      if (s != kE8m0Nan) s_max = max(s_max, int(s));
    }
    int const r = mxfp4_reference_exponent(s_max);
    packed_channel_scales[row] = mxfp4_channel_scale(r);
    for (int b = 0; b < groups * 4; ++b) {
      int const d = b < blocks_per_row ? mxfp4_fold_d(scales[row * blocks_per_row + b], r) : 1;
      blocks[e * bytes_per_expert + mxfp4_scale_offset(shape.n, groups, n, b)] = uint8_t(d);
    }
    if (bad) atomicAdd(bad_value_count, bad);
  }
}

__global__ void write_block_layout_header(PackedHeader header, uint8_t* packed) {
  for (size_t i = sizeof header; i < kHeaderBytes; ++i) packed[i] = 0;
  *reinterpret_cast<PackedHeader*>(packed) = header;
}

unsigned grid_for(int64_t items) {
  int64_t const blocks = (items + kThreads - 1) / kThreads;
  return unsigned(blocks < 1 ? 1 : (blocks > (int64_t(1) << 20) ? (int64_t(1) << 20) : blocks));
}

// place_block_weights' items: channel pairs times 8-K words.
int64_t weight_pair_words(ExpertWeightShape const& s) {
  return int64_t(s.num_experts) * (s.n / 2) * (padded_k(s.k) / 8);
}

cudaError_t launch_header(PrepackArgs const& args, ExactSections const& sections, uint32_t version) {
  write_block_layout_header<<<1, 1, 0, args.stream>>>(make_packed_header(args.shape, version, sections.total),
                                                      static_cast<uint8_t*>(args.packed));
  return cudaGetLastError();
}

// The weights of either block layout (kMxfp4: the MXFP4 layout's, after its scales).
template <bool kMxfp4>
cudaError_t launch_weights(PrepackArgs const& args, ExactSections const& sections) {
  uint8_t* packed = static_cast<uint8_t*>(args.packed);
  place_block_weights<kMxfp4><<<grid_for(weight_pair_words(args.shape)), kThreads, 0, args.stream>>>(
      static_cast<uint32_t const*>(args.weights), args.weight_format, args.shape, packed + sections.blocks,
      sections.block_bytes_per_expert, kMxfp4 ? static_cast<uint8_t const*>(args.group_scales) : nullptr,
      kMxfp4 ? reinterpret_cast<float const*>(packed + sections.channel_scales) : nullptr);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_prepack_exact(PrepackArgs const& args, ExactSections const& sections) {
  auto const& s = args.shape;
  uint8_t* packed = static_cast<uint8_t*>(args.packed);
  cudaError_t error = launch_header(args, sections, kExactFormatVersion);
  if (error == cudaSuccess) error = launch_weights<false>(args, sections);
  if (error != cudaSuccess) return error;
  place_exact_scales<<<grid_for(int64_t(s.num_experts) * s.n), kThreads, 0, args.stream>>>(
      args.group_scales, args.channel_scales, args.scale_format, s, packed + sections.blocks,
      sections.block_bytes_per_expert, reinterpret_cast<float*>(packed + sections.channel_scales),
      &reinterpret_cast<PackedHeader*>(packed)->bad_value_count);
  return cudaGetLastError();
}

cudaError_t launch_prepack_mxfp4(PrepackArgs const& args, ExactSections const& sections) {
  auto const& s = args.shape;
  uint8_t* packed = static_cast<uint8_t*>(args.packed);
  cudaError_t error = launch_header(args, sections, kMxfp4FormatVersion);
  if (error != cudaSuccess) return error;
  place_mxfp4_scales<<<grid_for(int64_t(s.num_experts) * s.n), kThreads, 0, args.stream>>>(
      static_cast<uint8_t const*>(args.group_scales), s, packed + sections.blocks, sections.block_bytes_per_expert,
      reinterpret_cast<float*>(packed + sections.channel_scales),
      &reinterpret_cast<PackedHeader*>(packed)->bad_value_count);
  error = cudaGetLastError();
  return error == cudaSuccess ? launch_weights<true>(args, sections) : error;
}

}  // namespace w4a8moe::prepack
