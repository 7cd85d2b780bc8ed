// Element types and shapes shared by the public headers.
#pragma once

#include <cstdint>

namespace w4a8moe {

enum class OutputType : int { kBF16 = 0, kFP16 = 1 };

char const* output_type_name(OutputType type);

// Quantization group along K. The lookup-table conversion needs the group to be a multiple of the fp8 mainloop's
// K tile (128), and no checkpoint format in use has a larger one, so 128 is the only value accepted.
inline constexpr int kGroupSize = 128;

// K as the packed weights and the activation rows the GEMMs read hold it: whole 128-groups. A K that is not a
// multiple of 128 (gpt-oss: 2880) is padded once, with zero weights at prepack and zero activations by the
// library's quantisation, so no call pads at run time.
inline constexpr int padded_k(int k) { return (k + kGroupSize - 1) / kGroupSize * kGroupSize; }

// The 128-groups of a K of any valid size (the last one may be partial): the group scales' columns.
inline constexpr int group_count(int k) { return padded_k(k) / kGroupSize; }

// The rule every weight size (N, K, and so the layer's H and I) follows: a positive multiple of 16, the rows of one
// wgmma / mma fragment and one 16-byte vector of e4m3 activations. K need not be whole 128-groups (padded_k).
inline constexpr int kSizeGranule = 16;
inline constexpr bool is_valid_size(int64_t size) { return size >= kSizeGranule && size % kSizeGranule == 0; }

// Rows (token slots) one call holds at most: the kernels index them with 32-bit integers. rows_fit(count, per): count
// items of `per` rows each stay within it (checked without overflow, for any count).
inline constexpr int64_t kMaxRows = 0x7FFFFFFF;
inline constexpr bool rows_fit(int64_t count, int64_t per) { return count >= 0 && per > 0 && count <= kMaxRows / per; }

// How the packed bytes are laid out; the grouped GEMM and the MoE layer must be told the layout they were packed in.
enum class PackedLayout : int {
  // int4 beside an 8-byte e4m3 lookup table per (group, channel) holding q * t rounded to e4m3 (t: ScaleFormat, in
  // prepack.h), as CUTLASS's mixed-input mainloop reads it. Every config of gemm_config_names(kLookupTable); 0.5625 B.
  kLookupTable = 0,
  // Offset-binary int4 that the fp8 tensor cores read as they are, the checkpoint's group scales kept exact (bf16)
  // and applied in fp32 per 128-K group: 0.516 bytes per weight, products q * sg not rounded. Read by the configs
  // of gemm_config_names(kExactScales) only; the grouped GEMM then takes the activations' group sums
  // (compute_activation_group_sums, grouped_gemm.h).
  kExactScales = 1,
  // MXFP4 weights (e2m1 values with one e8m0 power-of-two scale per 32 inputs, as gpt-oss ships its experts): the
  // e2m1 bits placed so that masks and shifts make e4m3 bytes (e2m1 * 2^-6, exact), each 32-input scale applied to
  // its wgmma's fp32 sum: 0.531 bytes per weight, nothing rounded but the accumulation. Read by the configs of
  // gemm_config_names(kMxfp4) only; K must be a multiple of 32.
  kMxfp4 = 2,
};

// Stacked weights of the experts of one projection: E experts, each [N output channels, K inputs].
struct ExpertWeightShape {
  int num_experts = 0;
  int n = 0;  // output channels; a multiple of 16
  int k = 0;  // inputs (reduction); a multiple of 16, packed as padded_k(k)
  int group_size = kGroupSize;
};

}  // namespace w4a8moe
