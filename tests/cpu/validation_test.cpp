// Every validation error of the grouped GEMM's and prepack's public entry points and of the packed header (the MoE
// layer's: moe_validation_test.cpp). All these calls fail before touching the device, so fake (aligned, never
// dereferenced) pointers are enough.
#include <gtest/gtest.h>
#include <cuda_runtime.h>

#include <cstring>
#include <functional>
#include <vector>

#include "prepack/packed_format.h"
#include "reference/exact_experts.h"
#include "reference/mxfp4_experts.h"
#include "reference/quantized_experts.h"
#include "test_data.h"
#include "validation_test_util.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::expect_error;
using testing::fake;
using testing::has_gpu;

GroupedGemmArgs valid_gemm_args() {
  GroupedGemmArgs args;
  args.shape = {8, 256, 384, 128};
  args.packed_weights = fake(0x100000);
  args.total_rows = 64;
  args.act = fake(0x200000);
  args.token_scales = static_cast<float const*>(fake(0x300000));
  args.expert_offsets = static_cast<int64_t const*>(fake(0x400000));
  args.out = fake(0x500000);
  args.workspace = fake(0x600000);
  args.workspace_bytes = grouped_gemm_workspace_bytes(args.shape.num_experts);
  return args;
}

TEST(Validation, WeightShapeRules) {
  expect_error(validate_weight_shape({0, 256, 384, 128}), StatusCode::kInvalidArgument, "num_experts=0");
  expect_error(validate_weight_shape({8, 100, 384, 128}), StatusCode::kInvalidArgument, "multiple of 16");
  expect_error(validate_weight_shape({8, 0, 384, 128}), StatusCode::kInvalidArgument, ".n=0");
  expect_error(validate_weight_shape({8, 256, 200, 128}), StatusCode::kInvalidArgument, ".k=200: K must be a positive "
               "multiple of 16");
  expect_error(validate_weight_shape({8, 256, 384, 64}), StatusCode::kInvalidArgument, "group_size=64");
  expect_error(validate_weight_shape({8, 65536, 65536, 128}), StatusCode::kInvalidArgument, "2^31");
  EXPECT_TRUE(validate_weight_shape({8, 16, 128, 128}).ok());
  EXPECT_TRUE(validate_weight_shape({1, 768, 384, 128}).ok());  // K = 384: Qwen3-30B-A3B GEMM2 at TP=2
  EXPECT_EQ(packed_weights_bytes({8, 100, 384, 128}), 0u);
  // K = 2880 (gpt-oss) is packed as 23 whole groups: the bytes of K = 2944, in either layout.
  EXPECT_TRUE(validate_weight_shape({8, 2880, 2880, 128}).ok());
  EXPECT_EQ(padded_k(2880), 2944);
  EXPECT_EQ(padded_k(2944), 2944);
  for (PackedLayout layout : {PackedLayout::kLookupTable, PackedLayout::kExactScales}) {
    EXPECT_EQ(packed_weights_bytes({8, 2880, 2880, 128}, layout), packed_weights_bytes({8, 2880, 2944, 128}, layout));
    EXPECT_GT(packed_weights_bytes({8, 2880, 2880, 128}, layout), packed_weights_bytes({8, 2880, 2816, 128}, layout));
  }
  // The MXFP4 layout also wants whole 32-K scale blocks; K = 2880 is 90 of them, packed as 2944.
  expect_error(validate_weight_shape({8, 256, 400, 128}, PackedLayout::kMxfp4), StatusCode::kInvalidArgument,
               ".k=400: the MXFP4 layout needs K a multiple of 32");
  EXPECT_TRUE(validate_weight_shape({8, 256, 400, 128}, PackedLayout::kExactScales).ok());
  EXPECT_EQ(packed_weights_bytes({8, 256, 400, 128}, PackedLayout::kMxfp4), 0u);
  EXPECT_EQ(packed_weights_bytes({8, 2880, 2880, 128}, PackedLayout::kMxfp4),
            packed_weights_bytes({8, 2880, 2944, 128}, PackedLayout::kMxfp4));
  // 0.5 + 1/32 bytes a weight, plus the channel scales and header.
  EXPECT_GT(packed_weights_bytes({8, 2880, 2880, 128}, PackedLayout::kMxfp4),
            packed_weights_bytes({8, 2880, 2880, 128}, PackedLayout::kExactScales));
  // The N * padded_k(K) bound counts the padding.
  expect_error(validate_weight_shape({1, 16, (1 << 27) - 16, 128}), StatusCode::kInvalidArgument, "2^31");
}

TEST(Validation, GroupedGemmArguments) {
  struct Case {
    char const* what;
    std::function<void(GroupedGemmArgs&)> mutate;
    StatusCode code;
    char const* needle;
  };
  std::vector<Case> const cases = {
      {"E=0", [](auto& a) { a.shape.num_experts = 0; }, StatusCode::kInvalidArgument, "num_experts"},
      {"K not multiple of 16", [](auto& a) { a.shape.k = 328; }, StatusCode::kInvalidArgument, "args.shape.k=328"},
      {"N not multiple of 16", [](auto& a) { a.shape.n = 250; }, StatusCode::kInvalidArgument, "args.shape.n=250"},
      {"group 64", [](auto& a) { a.shape.group_size = 64; }, StatusCode::kInvalidArgument, "group_size"},
      {"null weights", [](auto& a) { a.packed_weights = nullptr; }, StatusCode::kInvalidArgument, "packed_weights"},
      {"misaligned weights", [](auto& a) { a.packed_weights = fake(0x100010); }, StatusCode::kInvalidArgument,
       "packed_weights must be 256-byte aligned"},
      {"negative rows", [](auto& a) { a.total_rows = -1; }, StatusCode::kInvalidArgument, "total_rows=-1"},
      {"too many rows", [](auto& a) { a.total_rows = int64_t(1) << 31; }, StatusCode::kInvalidArgument,
       "total_rows"},
      {"null act", [](auto& a) { a.act = nullptr; }, StatusCode::kInvalidArgument, "args.act is null"},
      {"misaligned act", [](auto& a) { a.act = fake(0x200008); }, StatusCode::kInvalidArgument, "args.act must be"},
      {"null scales", [](auto& a) { a.token_scales = nullptr; }, StatusCode::kInvalidArgument, "token_scales"},
      {"null offsets", [](auto& a) { a.expert_offsets = nullptr; }, StatusCode::kInvalidArgument,
       "expert_offsets"},
      {"null out", [](auto& a) { a.out = nullptr; }, StatusCode::kInvalidArgument, "args.out is null"},
      {"misaligned out", [](auto& a) { a.out = fake(0x500002); }, StatusCode::kInvalidArgument, "args.out must be"},
      {"bad out type", [](auto& a) { a.out_type = OutputType(7); }, StatusCode::kInvalidArgument, "out_type"},
      {"null workspace", [](auto& a) { a.workspace = nullptr; }, StatusCode::kInvalidArgument, "workspace is null"},
      {"small workspace", [](auto& a) { a.workspace_bytes -= 1; }, StatusCode::kInvalidArgument,
       "workspace_bytes"},
      {"unknown config", [](auto& a) { a.config = "64x8_9x9_coop"; }, StatusCode::kNotSupported, "64x8_9x9_coop"},
      {"negative hint", [](auto& a) { a.max_rows_per_expert_hint = -3; }, StatusCode::kInvalidArgument,
       "max_rows_per_expert_hint"},
      {"unknown layout", [](auto& a) { a.layout = PackedLayout(5); }, StatusCode::kInvalidArgument,
       "args.layout=5"},
      {"exact layout without group sums", [](auto& a) { a.layout = PackedLayout::kExactScales; },
       StatusCode::kInvalidArgument, "act_group_sums is null"},
      {"misaligned group sums",
       [](auto& a) {
         a.layout = PackedLayout::kExactScales;
         a.act_group_sums = static_cast<float const*>(fake(0x700004));
       },
       StatusCode::kInvalidArgument, "act_group_sums must be 16-byte aligned"},
      {"lookup-table config on the exact layout",
       [](auto& a) {
         a.layout = PackedLayout::kExactScales;
         a.act_group_sums = static_cast<float const*>(fake(0x700000));
         a.config = "128x16_1x1_coop";
       },
       StatusCode::kInvalidArgument, "reads the \"lookup\" layout, not args.layout=\"exact\""},
      {"exact config on the lookup-table layout", [](auto& a) { a.config = "64x8_exact"; },
       StatusCode::kInvalidArgument, "reads the \"exact\" layout, not args.layout=\"lookup\""},
      {"exact config on the MXFP4 layout",
       [](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.config = "64x8_exact";
       },
       StatusCode::kInvalidArgument, "reads the \"exact\" layout, not args.layout=\"mxfp4\""},
      {"MXFP4 config on the lookup-table layout", [](auto& a) { a.config = "64x8_mxfp4"; },
       StatusCode::kInvalidArgument, "reads the \"mxfp4\" layout"},
      {"bias on the lookup-table layout", [](auto& a) { a.bias = static_cast<float const*>(fake(0x800000)); },
       StatusCode::kInvalidArgument, "expert biases are taken with PackedLayout::kMxfp4 only"},
      {"misaligned bias",
       [](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.bias = static_cast<float const*>(fake(0x800002));
       },
       StatusCode::kInvalidArgument, "args.bias must be 4-byte aligned"},
      {"MXFP4 layout with K off whole scale blocks",
       [](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.shape.k = 400;
       },
       StatusCode::kInvalidArgument, "args.shape.k=400: the MXFP4 layout needs K a multiple of 32"},
  };
  for (auto const& c : cases) {
    SCOPED_TRACE(c.what);
    GroupedGemmArgs args = valid_gemm_args();
    c.mutate(args);
    expect_error(grouped_gemm(args), c.code, c.needle);
  }
}

TEST(Validation, HostOffsetsAreChecked) {
  GroupedGemmArgs args = valid_gemm_args();
  std::vector<int64_t> offsets{0, 4, 8, 8, 16, 20, 30, 40, 64};
  offsets[3] = 5;  // decreasing: 8 -> 5
  args.host_expert_offsets = offsets.data();
  expect_error(grouped_gemm(args), StatusCode::kInvalidArgument, "not non-decreasing at expert 2");
  offsets = {-1, 4, 8, 8, 16, 20, 30, 40, 64};
  expect_error(grouped_gemm(args), StatusCode::kInvalidArgument, "host_expert_offsets[0]=-1");
  offsets = {0, 4, 8, 8, 16, 20, 30, 40, 65};
  expect_error(grouped_gemm(args), StatusCode::kInvalidArgument, "exceeds args.total_rows=64");
}

TEST(Validation, NoHopperGpuIsAClearError) {
  if (has_gpu()) GTEST_SKIP() << "a GPU is present; the GPU tests cover the device path";
  Status const status = grouped_gemm(valid_gemm_args());
  expect_error(status, StatusCode::kNotSupported, "Hopper");
}

TEST(Validation, ZeroRowsNeedNoActivations) {
  GroupedGemmArgs args = valid_gemm_args();
  args.total_rows = 0;
  args.act = nullptr;
  args.token_scales = nullptr;
  args.out = nullptr;
  Status const status = grouped_gemm(args);
  if (has_gpu()) {
    EXPECT_TRUE(status.ok()) << status.to_string();
  } else {
    expect_error(status, StatusCode::kNotSupported, "Hopper");
  }
}

TEST(Validation, PrepackArguments) {
  ExpertWeightShape const shape{4, 64, 256, 128};
  auto valid = [&] {
    PrepackArgs args;
    args.shape = shape;
    args.weights = fake(0x10000);
    args.group_scales = fake(0x20000);
    args.packed = fake(0x40000);
    args.packed_bytes = packed_weights_bytes(shape);
    return args;
  };
  struct Case {
    char const* what;
    std::function<void(PrepackArgs&)> mutate;
    char const* needle;
  };
  std::vector<Case> const cases = {
      {"bad shape", [](auto& a) { a.shape.k = 100; }, "args.shape.k=100"},
      {"null weights", [](auto& a) { a.weights = nullptr; }, "args.weights is null"},
      {"misaligned weights", [](auto& a) { a.weights = fake(0x10002); }, "args.weights must be 4-byte aligned"},
      {"null scales", [](auto& a) { a.group_scales = nullptr; }, "args.group_scales is null"},
      {"fp8 scales without channel scales", [](auto& a) { a.scale_format = ScaleFormat::kFP8WithChannelScale; },
       "channel_scales is null"},
      {"bf16 scales with channel scales",
       [](auto& a) { a.channel_scales = static_cast<float const*>(fake(0x30000)); }, "must be null"},
      {"null packed", [](auto& a) { a.packed = nullptr; }, "args.packed is null"},
      {"misaligned packed", [](auto& a) { a.packed = fake(0x40080); }, "256-byte aligned"},
      {"small packed", [](auto& a) { a.packed_bytes -= 1; }, "packed_bytes"},
      {"unknown weight format", [](auto& a) { a.weight_format = WeightFormat(9); }, "weight_format"},
      {"unknown scale format", [](auto& a) { a.scale_format = ScaleFormat(9); }, "scale_format"},
      {"unknown layout", [](auto& a) { a.layout = PackedLayout(3); }, "args.layout=3"},
      {"small packed for the exact layout",
       [&](auto& a) {
         a.layout = PackedLayout::kExactScales;
         a.packed_bytes = packed_weights_bytes(shape, PackedLayout::kExactScales) - 1;
       },
       "packed_bytes"},
      {"MXFP4 layout from int4 weights", [](auto& a) { a.layout = PackedLayout::kMxfp4; },
       "WeightFormat::kMxfp4 goes with PackedLayout::kMxfp4 and only with it"},
      {"MXFP4 weights into the lookup-table layout",
       [](auto& a) {
         a.weight_format = WeightFormat::kMxfp4;
         a.scale_format = ScaleFormat::kE8m0;
       },
       "WeightFormat::kMxfp4 goes with PackedLayout::kMxfp4"},
      {"MXFP4 weights with bf16 scales",
       [](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.weight_format = WeightFormat::kMxfp4;
       },
       "ScaleFormat::kE8m0 goes with PackedLayout::kMxfp4"},
      {"MXFP4 with channel scales",
       [&](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.weight_format = WeightFormat::kMxfp4;
         a.scale_format = ScaleFormat::kE8m0;
         a.channel_scales = static_cast<float const*>(fake(0x30000));
       },
       "must be null"},
      {"MXFP4 with K off whole scale blocks",
       [&](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.weight_format = WeightFormat::kMxfp4;
         a.scale_format = ScaleFormat::kE8m0;
         a.shape.k = 272;
       },
       "args.shape.k=272: the MXFP4 layout needs K a multiple of 32"},
      {"small packed for the MXFP4 layout",
       [&](auto& a) {
         a.layout = PackedLayout::kMxfp4;
         a.weight_format = WeightFormat::kMxfp4;
         a.scale_format = ScaleFormat::kE8m0;
         a.packed_bytes = packed_weights_bytes(shape, PackedLayout::kMxfp4) - 1;
       },
       "packed_bytes"},
  };
  for (auto const& c : cases) {
    SCOPED_TRACE(c.what);
    PrepackArgs args = valid();
    c.mutate(args);
    expect_error(prepack_weights(args), StatusCode::kInvalidArgument, c.needle);
  }
}

TEST(Validation, PackedHeaderChecks) {
  std::mt19937_64 rng(5);
  ExpertWeightShape const shape{2, 32, 256, 128};
  auto packed = reference::prepack(testing::random_experts(shape, rng));
  ExpertWeightShape read{};
  EXPECT_TRUE(read_packed_header(packed.data(), packed.size(), &read).ok());
  expect_error(read_packed_header(packed.data(), 100, &read), StatusCode::kInvalidArgument, "256-byte header");
  expect_error(read_packed_header(packed.data(), packed.size() - 1, &read), StatusCode::kInvalidArgument,
               "truncated");
  expect_error(read_packed_header(nullptr, packed.size(), &read), StatusCode::kInvalidArgument, "null");

  auto corrupt = packed;
  corrupt[0] = 'X';
  expect_error(read_packed_header(corrupt.data(), corrupt.size(), &read), StatusCode::kInvalidArgument, "magic");
  corrupt = packed;
  auto* header = reinterpret_cast<prepack::PackedHeader*>(corrupt.data());
  header->version = kPackedFormatVersion + 7;
  expect_error(read_packed_header(corrupt.data(), corrupt.size(), &read), StatusCode::kInvalidArgument,
               "format version");
  corrupt = packed;
  header = reinterpret_cast<prepack::PackedHeader*>(corrupt.data());
  header->k = 200;
  expect_error(read_packed_header(corrupt.data(), corrupt.size(), &read), StatusCode::kInvalidArgument,
               "multiple of 16");
  corrupt = packed;
  header = reinterpret_cast<prepack::PackedHeader*>(corrupt.data());
  header->total_bytes += 256;
  expect_error(read_packed_header(corrupt.data(), corrupt.size(), &read), StatusCode::kInvalidArgument,
               "does not match");

  // The exact-scale layout's header names its layout; its size is checked against that layout.
  std::vector<uint16_t> bf16_scales;
  auto const lut = testing::random_experts(shape, rng, &bf16_scales);
  auto const exact = reference::prepack_exact(reference::exact_from_checkpoint(shape, lut.q, bf16_scales));
  EXPECT_EQ(exact.size(), packed_weights_bytes(shape, PackedLayout::kExactScales));
  EXPECT_LT(exact.size(), packed.size());
  PackedLayout layout = PackedLayout::kLookupTable;
  EXPECT_TRUE(read_packed_header(exact.data(), exact.size(), &read, &layout).ok());
  EXPECT_EQ(layout, PackedLayout::kExactScales);
  EXPECT_TRUE(read_packed_header(packed.data(), packed.size(), &read, &layout).ok());
  EXPECT_EQ(layout, PackedLayout::kLookupTable);
  expect_error(read_packed_header(exact.data(), exact.size() - 1, &read), StatusCode::kInvalidArgument, "truncated");

  // So does the MXFP4 layout's, whose K must also be whole 32-K blocks.
  auto const mxfp4 = reference::prepack_mxfp4(testing::random_mxfp4_experts(shape, rng));
  EXPECT_EQ(mxfp4.size(), packed_weights_bytes(shape, PackedLayout::kMxfp4));
  EXPECT_TRUE(read_packed_header(mxfp4.data(), mxfp4.size(), &read, &layout).ok());
  EXPECT_EQ(layout, PackedLayout::kMxfp4);
  corrupt = mxfp4;
  reinterpret_cast<prepack::PackedHeader*>(corrupt.data())->k = 240;
  expect_error(read_packed_header(corrupt.data(), corrupt.size(), &read), StatusCode::kInvalidArgument,
               "MXFP4 layout needs K a multiple of 32");
}

}  // namespace
}  // namespace w4a8moe
