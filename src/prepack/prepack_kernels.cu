// Prepack kernels: int4 encode + reorder, scale split + lookup tables, per-expert layouts (see packed_format.h).
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstring>

#include "gemm/w4a8_types.cuh"
#include "prepack/prepack_kernels.h"

namespace w4a8moe::prepack {
namespace {

using gemm::LayoutWeightReordered;
using gemm::make_reordered_weight_layout;
using gemm::ReorderAtom;

static_assert(sizeof(LayoutWeightReordered) == kLayoutSlotBytes && alignof(LayoutWeightReordered) <= 4,
              "the layouts section is read as an array of LayoutWeightReordered");
// The weight kernel writes runs of 4 consecutive K as one 16-bit store: the atom's innermost K mode must be 4
// elements of stride 1.
static_assert(decltype(cute::size<1, 0, 0>(ReorderAtom{}))::value == 4 &&
                  decltype(cute::stride<1, 0, 0>(ReorderAtom{}))::value == 1,
              "reorder atom no longer keeps 4 consecutive K contiguous");
static_assert(gemm::kReorderAtomRows == 16 && gemm::kReorderAtomK == 32,
              "reorder atom changed: update reorder_atom_offset() and the N/K rules");

constexpr int kThreads = 256;

__device__ uint8_t to_e4m3(float value) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(value, __NV_SATFINITE, __NV_E4M3));
}

__device__ float from_e4m3(uint8_t bits) {
  __half_raw raw = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(bits), __NV_E4M3);
  return __half2float(__half(raw));
}

__device__ bool is_e4m3_nan(uint8_t bits) { return (bits & 0x7F) == 0x7F; }

__global__ void write_header_and_layouts(PackedHeader header, uint8_t* packed, size_t layouts_offset) {
  int64_t const e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e == 0) {  // the whole header slot, padding zeroed, so packed buffers are byte-for-byte reproducible
    for (size_t i = sizeof header; i < kHeaderBytes; ++i) packed[i] = 0;
    *reinterpret_cast<PackedHeader*>(packed) = header;
  }
  if (e < header.num_experts) {
    LayoutWeightReordered const layout = make_reordered_weight_layout(header.n, padded_k(header.k));
    uint8_t* slot = packed + layouts_offset + e * kLayoutSlotBytes;
    memcpy(slot, &layout, sizeof layout);
  }
}

// One thread per 8 consecutive K of one row (one int32 of the checkpoint layout); the words past K (up to
// padded_k) are q = 0.
__global__ void encode_and_reorder_weights(void const* __restrict__ weights, WeightFormat format, int num_experts,
                                           int n_rows, int k_cols, uint8_t* __restrict__ packed_weights,
                                           size_t bytes_per_expert) {
  int64_t const words_per_row = k_cols / 8, padded_words = padded_k(k_cols) / 8;
  int64_t const words_per_expert = int64_t(n_rows) * padded_words;
  int64_t const total_words = words_per_expert * num_experts;
  LayoutWeightReordered const layout = make_reordered_weight_layout(n_rows, padded_k(k_cols));
  for (int64_t word = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; word < total_words;
       word += int64_t(gridDim.x) * blockDim.x) {
    int64_t const e = word / words_per_expert;
    int64_t const in_expert = word % words_per_expert;
    int const n = int(in_expert / padded_words);
    int64_t const word_in_row = in_expert % padded_words;
    int const k0 = int(word_in_row) * 8;

    uint32_t codes = 0;  // encode_lut_nibble(0) past K
    if (word_in_row < words_per_row) {
      uint32_t const bits = static_cast<uint32_t const*>(weights)[(e * n_rows + n) * words_per_row + word_in_row];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        int const nibble = int((bits >> (4 * i)) & 0xF);
        int const q =
            (format == WeightFormat::kOffsetBinaryInt32) ? nibble - 8 : (nibble >= 8 ? nibble - 16 : nibble);
        codes |= encode_lut_nibble(q) << (4 * i);
      }
    }
    uint8_t* expert_base = packed_weights + e * bytes_per_expert;
    int64_t const nibble_lo = layout(n, k0, 0);
    int64_t const nibble_hi = layout(n, k0 + 4, 0);
    *reinterpret_cast<uint16_t*>(expert_base + nibble_lo / 2) = uint16_t(codes & 0xFFFF);
    *reinterpret_cast<uint16_t*>(expert_base + nibble_hi / 2) = uint16_t(codes >> 16);
  }
}

// Splits (kBF16) or checks (kFP8WithChannelScale) the scales of one (expert, channel) row and writes its lookup
// tables (whole and odd entries) and channel scale.
__device__ void split_row(void const* __restrict__ group_scales, float const* __restrict__ channel_scales,
                          ScaleFormat format, int64_t row, int n_rows, int groups, uint8_t* __restrict__ packed,
                          PackedSections const& sections, uint32_t* bad_value_count) {
  int64_t const e = row / n_rows;
  int const n = int(row % n_rows);
  uint32_t bad = 0;

  float c = 0.0f;  // kBF16: each table entry e4m3(q * s / c / 8), rounded once
  float channel_scale;
  if (format == ScaleFormat::kBF16) {
    __nv_bfloat16 const* s = static_cast<__nv_bfloat16 const*>(group_scales) + row * groups;
    float amax = 0.0f;
    for (int g = 0; g < groups; ++g) {
      float const v = __bfloat162float(s[g]);
      if (!isfinite(v)) ++bad;
      amax = fmaxf(amax, fabsf(v));
    }
    c = amax / 448.0f;
    channel_scale = 8.0f * c;
  } else {
    channel_scale = channel_scales[row];
    if (!isfinite(channel_scale)) ++bad;
  }
  reinterpret_cast<float*>(packed + sections.channel_scales)[row] = channel_scale;

  uint8_t* luts = packed + sections.group_scales + e * sections.group_scale_bytes_per_expert;
  uint8_t* odd_tables = packed + sections.odd_tables + e * sections.odd_table_bytes_per_expert;
  for (int g = 0; g < groups; ++g) {
    // What the table multiplies q by before its e4m3 rounding: the unrounded s / c / 8 (at most 56, so |q| * 56
    // <= 448; rounding it to e4m3 first, then q times that, lost 0.6-0.8 points of layer accuracy, bench/NOTES.md
    // §51), or the caller's e4m3 sg.
    float step;
    if (format == ScaleFormat::kBF16) {
      float const s = __bfloat162float(static_cast<__nv_bfloat16 const*>(group_scales)[row * groups + g]);
      step = (c == 0.0f) ? 0.0f : s / c / 8.0f;
    } else {
      uint8_t const sg_bits = static_cast<uint8_t const*>(group_scales)[row * groups + g];
      if (is_e4m3_nan(sg_bits) || fabsf(from_e4m3(sg_bits)) > 56.0f) ++bad;
      step = from_e4m3(sg_bits);
    }
    step = bounded_table_step(step);
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo |= uint32_t(to_e4m3(float(i - 8) * step)) << (8 * i);
      hi |= uint32_t(to_e4m3(float(i - 4) * step)) << (8 * i);
    }
    int64_t const table = int64_t(g) * n_rows + n;
    *reinterpret_cast<uint2*>(luts + table * kLutBytes) = make_uint2(lo, hi);
    *reinterpret_cast<uint32_t*>(odd_tables + table * kOddTableBytes) = odd_table(lo, hi);
  }
  if (bad) atomicAdd(bad_value_count, bad);
}

// Grid-stride over (expert, output channel) rows.
__global__ void split_scales_and_write_luts(void const* __restrict__ group_scales, float const* __restrict__ channel_scales,
                                            ScaleFormat format, int num_experts, int n_rows, int groups,
                                            uint8_t* __restrict__ packed, PackedSections sections,
                                            uint32_t* bad_value_count) {
  for (int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; row < int64_t(num_experts) * n_rows;
       row += int64_t(gridDim.x) * blockDim.x) {  // row = e * N + n
    split_row(group_scales, channel_scales, format, row, n_rows, groups, packed, sections, bad_value_count);
  }
}

unsigned grid_for(int64_t items, int64_t max_blocks = int64_t(1) << 20) {
  int64_t blocks = (items + kThreads - 1) / kThreads;
  return unsigned(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

}  // namespace

cudaError_t launch_prepack(PrepackArgs const& args, PackedSections const& sections) {
  auto const& s = args.shape;
  uint8_t* packed = static_cast<uint8_t*>(args.packed);

  PackedHeader const header = make_packed_header(s, kPackedFormatVersion, sections.total);

  write_header_and_layouts<<<grid_for(s.num_experts), kThreads, 0, args.stream>>>(header, packed, sections.layouts);
  cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) return error;

  int64_t const words = int64_t(s.num_experts) * s.n * (padded_k(s.k) / 8);
  encode_and_reorder_weights<<<grid_for(words), kThreads, 0, args.stream>>>(
      args.weights, args.weight_format, s.num_experts, s.n, s.k, packed + sections.weights,
      sections.weight_bytes_per_expert);
  error = cudaGetLastError();
  if (error != cudaSuccess) return error;

  int64_t const rows = int64_t(s.num_experts) * s.n;
  split_scales_and_write_luts<<<grid_for(rows), kThreads, 0, args.stream>>>(
      args.group_scales, args.channel_scales, args.scale_format, s.num_experts, s.n, group_count(s.k), packed,
      sections, &reinterpret_cast<PackedHeader*>(packed)->bad_value_count);
  return cudaGetLastError();
}

}  // namespace w4a8moe::prepack
