// What the GEMM and prepack tests of the packed layouts share: the packed buffer prepacked on the GPU from either
// input format, the comparison of a GEMM's output with its float64 reference, and for the block layouts (exact-scale,
// MXFP4) their registered kernels, packed sections compared byte for byte, and graph replays with new routing.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "gemm/exact_stream_gemm.h"  // the block layouts' blocks an SM
#include "gemm/registry.h"
#include "gemm/stream_plan.h"
#include "gpu_test_util.h"
#include "prepack/packed_format.h"
#include "reference/quantized_experts.h"
#include "test_data.h"
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

// A reference grouped GEMM of `rows` on the host's threads: gemm(chunk, ref, ref_abs) computes the rows `chunk` (each
// reference GEMM writes only the rows it is given, so the chunks share ref and ref_abs, sized [max(total_rows, 1), n]
// here). Chunks of consecutive rows, as the references dequantise an expert once a call.
template <class Gemm>
void reference_on_host_threads(std::vector<int64_t> const& rows, int64_t total_rows, int n, Gemm const& gemm,
                               std::vector<double>* ref, std::vector<double>* ref_abs) {
  ref->assign(size_t(std::max<int64_t>(total_rows, 1)) * n, 0.0);
  ref_abs->assign(ref->size(), 0.0);
  constexpr int64_t kRowsPerChunk = 8;
  parallel_for(int64_t(rows.size()), kRowsPerChunk, host_threads(), [&](int64_t begin, int64_t end) {
    gemm(std::vector<int64_t>(rows.begin() + begin, rows.begin() + end), ref, ref_abs);
  });
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

// The registered kernel of `config` (a failure, and null, for an unknown name).
inline gemm::GemmKernelEntry const* registered_kernel(std::string const& config) {
  gemm::GemmKernelEntry const* entry = gemm::find_gemm_kernel(config);
  if (entry == nullptr) ADD_FAILURE() << "no config " << config;
  return entry;
}

// This device's SM count, as the launchers plan with it (a failure, and 0, where it cannot be read).
inline int device_sm_count() {
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) ADD_FAILURE() << "no SM count";
  return sms;
}

// The launch a block-layout config's kernel (exact-scale or MXFP4) plans for `rows` rows, all expected, on this
// device, dealt per SM where the kernel does; K padded as grouped_gemm() hands the kernels the shape.
inline gemm::StreamLaunchPlan block_layout_plan(std::string const& config, ExpertWeightShape shape, int64_t rows) {
  gemm::GemmKernelEntry const* entry = registered_kernel(config);
  int const sms = device_sm_count();
  if (entry == nullptr || sms == 0) return {};
  gemm::GemmConfig const& c = entry->config;
  int const consumers = c.tile_m / 64;
  int const blocks_per_sm = c.layout() == PackedLayout::kMxfp4 ? gemm::mxfp4_stream_blocks_per_sm(c.tile_n, consumers)
                                                               : gemm::exact_stream_blocks_per_sm(c.tile_n, consumers);
  shape.k = padded_k(shape.k);
  return gemm::plan_worker_launch(shape, rows, rows, sms, c.tile_n, consumers, blocks_per_sm, 0,
                                  gemm::block_stream_sm_workers(blocks_per_sm, c.tile_n, consumers), 0);
}

// A block layout packed on the GPU against its CPU packing, byte for byte: the header, the blocks (up to
// blocks_end) and the channel scales (channel_scales to channel_scales_end); the padding between them is free.
inline void expect_packed_bytes_match(std::vector<uint8_t> const& gpu, std::vector<uint8_t> const& expected,
                                      size_t blocks, size_t blocks_end, size_t channel_scales,
                                      size_t channel_scales_end) {
  ASSERT_EQ(gpu.size(), expected.size());
  for (size_t i = 0; i < sizeof(prepack::PackedHeader); ++i) ASSERT_EQ(gpu[i], expected[i]) << "header byte " << i;
  for (size_t i = blocks; i < channel_scales_end; ++i) {
    if (i >= blocks_end && i < channel_scales) continue;
    ASSERT_EQ(gpu[i], expected[i]) << "byte " << i;
  }
}

// 160 experts of 0 to 6 rows and one of 23: many short items, one wave of the streaming kernels' persistent workers.
inline std::vector<int64_t> persistent_worker_counts(std::mt19937_64& rng) {
  std::vector<int64_t> counts(160);
  std::uniform_int_distribution<int> rows(0, 6);
  for (auto& count : counts) count = rows(rng);
  counts[150] = 23;
  return counts;
}

// Replays `graph` (a GEMM captured over problem p's buffers) three times, each with new routing (24 tokens, top-4,
// over p's experts) and new activations written into the captured buffers, and checks each output with
// check(p). The problem type holds shape, offsets, acts and total_rows and their device buffers offsets_device,
// act, token_scales and out.
template <class Problem, class Check>
void replay_with_new_routing(Problem& p, CapturedGraph& graph, std::mt19937_64& rng, Check&& check) {
  for (int replay = 0; replay < 3; ++replay) {
    p.offsets = offsets_from_counts(uniform_routing_counts(p.shape.num_experts, 24, 4, rng));
    ASSERT_LE(p.offsets.back(), p.total_rows);
    p.acts = random_activations(p.total_rows, p.shape.k, rng);
    ASSERT_CUDA(cudaMemcpy(p.offsets_device.get(), p.offsets.data(), p.offsets.size() * 8, cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemcpy(p.act.get(), p.acts.act.data(), p.acts.act.size(), cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemcpy(p.token_scales.get(), p.acts.scales.data(), p.acts.scales.size() * 4,
                           cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemset(p.out.get(), 0xFF, p.out.bytes()));
    ASSERT_CUDA(graph.replay());
    check(p);
  }
}

}  // namespace w4a8moe::testing
