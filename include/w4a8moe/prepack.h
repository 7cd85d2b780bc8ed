// Offline weight prepacking: from the checkpoint layout (or caller-quantized int4 and fp8 scales) to the library's
// private packed format, which the grouped GEMM reads. Run once at load time; the result is an opaque device buffer.
//
// The packed format is private and versioned: query its size with packed_weights_bytes(), never interpret its bytes,
// and when a serialized copy is loaded back, check it with read_packed_header() first.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "w4a8moe/status.h"
#include "w4a8moe/types.h"

namespace w4a8moe {

// Bumped whenever the bytes produced by prepack_weights() change meaning (the lookup-table layout's version; the
// exact-scale layout is version 2, the MXFP4 layout version 4). Version 5 added each table's odd entries beside it
// (4 bytes a channel and group, which the decode streaming kernels read) and bounds table steps to e4m3's normal
// range; version 1 buffers are refused.
inline constexpr uint32_t kPackedFormatVersion = 5;


enum class WeightFormat : int {
  // compressed-tensors "pack-quantized": int32 [E, N, K/8]; nibble i (bits 4i..4i+3) of word j holds q + 8 for
  // k = 8j + i, with q in [-8, 7].
  kOffsetBinaryInt32 = 0,
  // two's-complement int4, two per byte: uint8 [E, N, K/2]; the low nibble holds the even k.
  kSignedInt4 = 1,
  // MXFP4 blocks as gpt-oss's checkpoints hold them: uint8 [E, N, K/32, 16], two e2m1 codes a byte (sign bit 3,
  // then {0, 0.5, 1, 1.5, 2, 3, 4, 6}); byte j of block b holds k = 32 b + 2 j in its low nibble, k + 1 in its high
  // one. Only with ScaleFormat::kE8m0 and PackedLayout::kMxfp4.
  kMxfp4 = 2,
};

enum class ScaleFormat : int {
  // bf16 [E, N, padded_k(K)/128]: W = q * s (the checkpoint's weight_scale). Split per output channel n into
  //   c = max_g |s[n,g]| / 448,  t[n,g] = s[n,g] / c / 8,  sc[n] = 8 c
  // so that every |q * t| <= 448 fits e4m3; the lookup-table layout's tables hold e4m3(q * t), each entry rounded
  // once (the exact-scale layout keeps s itself).
  kBF16 = 0,
  // e4m3 [E, N, padded_k(K)/128] group scales and fp32 [E, N] channel scales, W = q * sg * sc, from callers that
  // quantized themselves. Requires |sg| <= 56 so that |q * sg| <= 448 stays finite in e4m3; the lookup-table
  // layout's tables hold e4m3(q * sg).
  kFP8WithChannelScale = 1,
  // e8m0 uint8 [E, N, K/32]: W = e2m1 * 2^(s - 127) (MXFP4's block scales). 255 (NaN) is refused; 0 (2^-127) is
  // taken as zero (its weights are below 6 * 2^-127). Only with WeightFormat::kMxfp4.
  kE8m0 = 2,
};

struct PrepackArgs {
  ExpertWeightShape shape;
  WeightFormat weight_format = WeightFormat::kOffsetBinaryInt32;
  void const* weights = nullptr;  // device, layout per weight_format
  ScaleFormat scale_format = ScaleFormat::kBF16;
  void const* group_scales = nullptr;    // device, layout per scale_format
  float const* channel_scales = nullptr;  // device [E, N]; only with kFP8WithChannelScale
  void* packed = nullptr;                 // device, packed_weights_bytes(shape, layout) bytes, 256-byte aligned
  size_t packed_bytes = 0;
  PackedLayout layout = PackedLayout::kLookupTable;
  cudaStream_t stream = nullptr;
};

// Checks the shape rules: E >= 1, N a positive multiple of 16, K a positive multiple of 16 (packed as padded_k(K):
// the last group's missing K are zero weights), group 128, and one expert's N * padded_k(K) below 2^31; with the
// MXFP4 layout also K a multiple of 32 (whole scale blocks).
Status validate_weight_shape(ExpertWeightShape const& shape, char const* arg_name = "shape");
Status validate_weight_shape(ExpertWeightShape const& shape, PackedLayout layout, char const* arg_name = "shape");

// An error naming `arg_name` unless `layout` is one of the PackedLayout values.
Status validate_packed_layout(PackedLayout layout, char const* arg_name = "layout");

// The layouts' names wherever a string names one (the CLI's --layout, the benchmarks' output, the Python ops):
// "lookup" (kLookupTable), "exact" (kExactScales) and "mxfp4" (kMxfp4); "unknown" for any other value.
char const* packed_layout_name(PackedLayout layout);

// The layout `name` names; an error naming `arg_name` and the accepted names otherwise.
Status parse_packed_layout(char const* name, PackedLayout* layout, char const* arg_name = "layout");

// Bytes of the packed buffer for this shape and layout (0 if the shape or the layout is invalid).
size_t packed_weights_bytes(ExpertWeightShape const& shape, PackedLayout layout = PackedLayout::kLookupTable);

// Runs the prepack on args.stream and waits for it: a load-time step, which also checks the values (finite scales,
// |sg| <= 56, finite channel scales, no e8m0 NaN) and reports how many break the rules. Inputs are read, never
// modified. The MXFP4 layout takes WeightFormat::kMxfp4 with ScaleFormat::kE8m0 and nothing else; the int4 layouts
// take the other formats.
Status prepack_weights(PrepackArgs const& args);

// Reads the header of a packed buffer copied to the host (for example loaded from disk) and checks its magic,
// format version and size. On success *shape holds the shape the buffer was packed for and, if layout is not null,
// *layout its layout.
Status read_packed_header(void const* host_bytes, size_t num_bytes, ExpertWeightShape* shape,
                          PackedLayout* layout = nullptr);

}  // namespace w4a8moe
