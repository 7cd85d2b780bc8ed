// What the GEMM and prepack tests of both packed layouts share: the packed buffer prepacked on the GPU from either
// input format, and the comparison of a GEMM's output with its float64 reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "common/float_formats.h"
#include "gpu_test_util.h"
#include "reference/quantized_experts.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe::testing {

inline constexpr uint16_t kPoison = 0xFFFF;  // NaN in bf16 and fp16: the GEMM outputs are poisoned with it

// Prepacks `experts` on the GPU into a new buffer of `layout` from one of the two input formats: the checkpoint's
// (offset-binary int32 weights and the given bf16 scales) when bf16_scales is set, else the caller-quantized one
// (signed int4, e4m3 group scales, fp32 channel scales). The buffer is poisoned first: every byte must be written or
// be padding.
inline DeviceBuffer prepack_either_format(reference::QuantizedExperts const& experts,
                                          std::vector<uint16_t> const* bf16_scales, PackedLayout layout,
                                          Status* status) {
  bool const checkpoint = bf16_scales != nullptr;
  DeviceBuffer weights(checkpoint ? DeviceBuffer(reference::pack_offset_binary(experts))
                                  : DeviceBuffer(reference::pack_signed_int4(experts)));
  DeviceBuffer group_scales(checkpoint ? DeviceBuffer(*bf16_scales) : DeviceBuffer(experts.group_scale));
  DeviceBuffer channel_scales(experts.channel_scale);
  DeviceBuffer packed(packed_weights_bytes(experts.shape, layout));
  EXPECT_EQ(cudaMemset(packed.get(), 0xA5, packed.bytes()), cudaSuccess);
  PrepackArgs args;
  args.shape = experts.shape;
  args.weight_format = checkpoint ? WeightFormat::kOffsetBinaryInt32 : WeightFormat::kSignedInt4;
  args.weights = weights.get();
  args.scale_format = checkpoint ? ScaleFormat::kBF16 : ScaleFormat::kFP8WithChannelScale;
  args.group_scales = group_scales.get();
  args.channel_scales = checkpoint ? nullptr : channel_scales.as<float>();
  args.packed = packed.get();
  args.packed_bytes = packed.bytes();
  args.layout = layout;
  *status = prepack_weights(args);
  return packed;
}

// A grouped GEMM's output (bits of out_type, [total_rows, shape.n], poisoned before the call) against its float64
// reference on `rows` (ref and ref_abs indexed m * n + channel; ref_abs = |st * sc| * sum_k |a w|): every element
// within 2^-7 |ref| + 2^-10 ref_abs (the output rounding and fp8 wgmma's accumulation) and the relative Frobenius
// error within 2^-7; rows outside [offsets.front(), offsets.back()) must still hold the poison.
inline void expect_gemm_output_matches(std::vector<uint16_t> const& out, OutputType out_type,
                                       ExpertWeightShape const& shape, int64_t total_rows,
                                       std::vector<int64_t> const& offsets, std::vector<int64_t> const& rows,
                                       std::vector<double> const& ref, std::vector<double> const& ref_abs) {
  auto decode = [&](uint16_t bits) {
    return out_type == OutputType::kBF16 ? bf16_to_float(bits) : fp16_to_float(bits);
  };
  int64_t failures = 0;
  double err2 = 0, ref2 = 0;
  for (int64_t m : rows) {
    for (int n = 0; n < shape.n; ++n) {
      size_t const i = size_t(m) * shape.n + n;
      double const got = decode(out[i]);
      double const bound = std::ldexp(std::fabs(ref[i]), -7) + std::ldexp(ref_abs[i], -10);
      double const err = std::fabs(got - ref[i]);
      err2 += err * err;
      ref2 += ref[i] * ref[i];
      if (!(err <= bound) && failures++ < 8) {
        ADD_FAILURE() << "row " << m << " channel " << n << ": got " << got << ", reference " << ref[i]
                      << ", |error| " << err << " > bound " << bound;
      }
    }
  }
  EXPECT_EQ(failures, 0) << "elements out of tolerance";
  double const relative = std::sqrt(err2 / std::max(ref2, 1e-300));
  std::printf("  relative Frobenius error %.2e (K=%d)\n", relative, shape.k);
  EXPECT_LE(relative, std::ldexp(1.0, -7)) << "relative Frobenius error";
  for (int64_t m = 0; m < total_rows; ++m) {
    if (m >= offsets.front() && m < offsets.back()) continue;
    for (int n = 0; n < shape.n; ++n) {
      ASSERT_EQ(out[size_t(m) * shape.n + n], kPoison) << "row " << m << " belongs to no expert but was written";
    }
  }
}

}  // namespace w4a8moe::testing
