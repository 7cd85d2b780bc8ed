// The MXFP4 layout's streaming kernel (the "*_mxfp4" configs of gemm/block_stream_kernel.cuh) against the float64
// CPU reference of the dequantised MXFP4 weights: uneven and empty experts, a partial last tile, all-zero blocks
// (scale 2^-127), expert biases, K split over clusters, persistent workers, bf16 and fp16 out, stray rows before and
// after the experts, graph replay with new routing, and the public prepack (byte for byte the host packing, K = 2880
// padded) and grouped_gemm().
//
// Tolerance. The products e4m3(e2m1 * 2^-6) * a are exact in the tensor cores; each atom's 32 of them start a fresh
// fp32 accumulator (about 13-14 mantissa bits kept for the chunk's sum), which is then scaled by its power of two
// (exact) and added in fp32. So the error is about 2^-13 of the sum of |a w| of each atom, at most 2^-12 sum_k |a w|
// over K, within the GEMM tests' 2^-10 sum_k |a w|; the output cast adds at most 2^-8 relative (bf16). A wrong
// scale, code, atom or row breaks |out - ref| <= 2^-7 |ref| + 2^-10 sum |a w| by orders of magnitude, and unwritten
// outputs stay NaN (the poison).
#include <gtest/gtest.h>

#include <iterator>
#include <random>

#include "common/status_util.h"
#include "gemm/exact_stream_gemm.h"
#include "gemm/registry.h"
#include "gemm/stream_plan.h"
#include "gemm_test_checks.h"
#include "gpu_test_util.h"
#include "prepack/mxfp4_format.h"
#include "reference/mxfp4_experts.h"
#include "test_data.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::block_layout_plan;
using testing::CapturedGraph;
using testing::DeviceBuffer;

char const* const kMxfp4Configs[] = {"64x8_mxfp4",   "64x16_mxfp4",   "64x32_mxfp4",  "64x48_mxfp4",
                                     "64x64_mxfp4",  "128x64_mxfp4",  "128x128_mxfp4", "128x256_mxfp4"};
// The configs of one consumer warpgroup, which split K over clusters when the items are few.
char const* const kOneWarpgroupConfigs[] = {"64x8_mxfp4", "64x16_mxfp4", "64x32_mxfp4", "64x48_mxfp4", "64x64_mxfp4"};

struct Mxfp4Problem {
  ExpertWeightShape shape;
  reference::Mxfp4Experts experts;
  std::vector<int64_t> offsets;
  int64_t total_rows = 0;
  testing::QuantizedActivations acts;
  std::vector<float> bias;  // [E, N], or empty for none
  DeviceBuffer packed, act, token_scales, offsets_device, out, bias_device;
};

// Expert biases of gpt-oss's size (about the outputs' own).
void add_bias(Mxfp4Problem& p, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 0.5f);
  p.bias.resize(size_t(p.shape.num_experts) * p.shape.n);
  for (float& b : p.bias) b = normal(rng);
  p.bias_device = DeviceBuffer(p.bias);
}

// The device buffers of a problem whose shape, experts, offsets, total_rows and packed weights are set.
void upload(Mxfp4Problem& p, std::mt19937_64& rng) {
  p.acts = testing::random_activations(p.total_rows, p.shape.k, rng);
  p.act = DeviceBuffer(p.acts.act);
  p.token_scales = DeviceBuffer(p.acts.scales);
  p.offsets_device = DeviceBuffer(p.offsets);
  p.out = DeviceBuffer(size_t(std::max<int64_t>(p.total_rows, 1)) * p.shape.n * sizeof(uint16_t));
}

Mxfp4Problem make_problem(ExpertWeightShape shape, std::vector<int64_t> const& counts, std::mt19937_64& rng,
                          int64_t first_row = 0, int64_t trailing_rows = 0) {
  Mxfp4Problem p;
  p.shape = shape;
  p.experts = testing::random_mxfp4_experts(shape, rng);
  p.offsets = testing::offsets_from_counts(counts, first_row);
  p.total_rows = p.offsets.back() + trailing_rows;
  p.packed = DeviceBuffer(reference::prepack_mxfp4(p.experts));
  upload(p, rng);
  return p;
}

// The kernel directly, as grouped_gemm() hands it the arguments.
Status run(Mxfp4Problem const& p, OutputType out_type, int64_t expected_rows, cudaStream_t stream,
           std::string const& config) {
  gemm::GemmKernelEntry const* entry = testing::registered_kernel(config);
  if (entry == nullptr) return Status(StatusCode::kInvalidArgument, "no config " + config);
  gemm::GroupedGemmParams g;
  g.shape = p.shape;
  g.shape.k = padded_k(p.shape.k);
  g.packed = p.packed.as<uint8_t>();
  g.total_rows = p.total_rows;
  g.expected_rows = expected_rows;
  g.act = p.act.get();
  g.token_scales = p.token_scales.as<float>();
  g.expert_offsets = p.offsets_device.as<int64_t>();
  g.out = p.out.get();
  g.out_type = out_type;
  g.bias = p.bias.empty() ? nullptr : p.bias_device.as<float>();
  cudaDeviceGetAttribute(&g.sm_count, cudaDevAttrMultiProcessorCount, 0);
  g.stream = stream;
  return entry->run(g, nullptr, 0);
}

void expect_output_matches(Mxfp4Problem const& p, OutputType out_type) {
  std::vector<int64_t> const rows = reference::gemm_rows(p.offsets, {});
  std::vector<double> ref, ref_abs;
  testing::reference_on_host_threads(
      rows, p.total_rows, p.shape.n,
      [&](std::vector<int64_t> const& chunk, std::vector<double>* out, std::vector<double>* out_abs) {
        reference::grouped_gemm_mxfp4(p.experts, p.acts.act, p.acts.scales, p.offsets, out, out_abs, chunk, p.bias);
      },
      &ref, &ref_abs);
  testing::expect_gemm_output_matches(p.out.to_host<uint16_t>(), out_type, p.shape, p.total_rows, p.offsets, rows, ref,
                                      ref_abs);
}

void run_and_check(Mxfp4Problem& p, OutputType type, int64_t expected_rows, std::string const& config) {
  SCOPED_TRACE(config);
  ASSERT_CUDA(cudaMemset(p.out.get(), 0xFF, p.out.bytes()));
  ASSERT_OK(run(p, type, expected_rows, nullptr, config));
  ASSERT_CUDA(cudaDeviceSynchronize());
  expect_output_matches(p, type);
}

TEST(Mxfp4StreamGemm, UnevenExpertsPartialTileBothOutputTypes) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  // N = 208: 13 stripes, the last tile one stripe. Empty experts, experts of 33 and 49 rows (several chunks).
  auto p = make_problem({9, 208, 640, 128}, {3, 0, 9, 1, 33, 0, 2, 5, 49}, rng, /*first_row=*/3, /*trailing=*/2);
  for (bool bias : {false, true}) {
    SCOPED_TRACE(bias ? "with biases" : "no biases");
    if (bias) add_bias(p, rng);
    for (char const* config : kMxfp4Configs) {
      for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) {
        SCOPED_TRACE(type == OutputType::kBF16 ? "bf16" : "fp16");
        run_and_check(p, type, p.offsets.back() - p.offsets.front(), config);
      }
    }
  }
}

// Chunks of up to 256 rows (128x256_mxfp4, its stores in parts of 64 rows): experts past one chunk (300 and 513 rows:
// partial second and third chunks), one of fewer rows than a part, an empty one; N = 320 leaves a partial last
// two-warpgroup tile; with biases.
TEST(Mxfp4StreamGemm, ChunksOf256Rows) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  auto p = make_problem({4, 320, 640, 128}, {300, 0, 17, 513}, rng, /*first_row=*/2, /*trailing=*/3);
  add_bias(p, rng);
  for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) {
    SCOPED_TRACE(type == OutputType::kBF16 ? "bf16" : "fp16");
    run_and_check(p, type, p.offsets.back() - p.offsets.front(), "128x256_mxfp4");
  }
}

// One expected row over a long K: K split over clusters of blocks that sum their partial tiles (with and without
// biases); N = 320 leaves a partial last tile; with 70 rows the blocks loop.
TEST(Mxfp4StreamGemm, SplitsKOverClusters) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  ExpertWeightShape const shape{4, 320, 4096, 128};
  for (char const* config : kOneWarpgroupConfigs) ASSERT_GT(block_layout_plan(config, shape, 1).splits, 1) << config;
  for (auto const& counts : {std::vector<int64_t>{1, 0, 0, 0}, {1, 0, 3, 0}, {3, 0, 70, 5}}) {
    auto p = make_problem(shape, counts, rng, /*first_row=*/1, /*trailing=*/2);
    for (char const* config : kOneWarpgroupConfigs) {
      for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) run_and_check(p, type, 1, config);
    }
    add_bias(p, rng);
    for (char const* config : kOneWarpgroupConfigs) run_and_check(p, OutputType::kBF16, 1, config);
  }
}

// Many short items over 160 experts: dealt per SM in the configs of one warpgroup, one wave of persistent workers in
// the two-warpgroup tiles.
TEST(Mxfp4StreamGemm, PersistentWorkers) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  ExpertWeightShape const shape{160, 1024, 768, 128};
  auto p = make_problem(shape, testing::persistent_worker_counts(rng), rng);
  for (char const* config : kOneWarpgroupConfigs) {
    ASSERT_GT(block_layout_plan(config, shape, p.offsets.back()).workers_per_block, 1) << config;
  }
  for (char const* config : kMxfp4Configs) run_and_check(p, OutputType::kBF16, p.offsets.back(), config);
}

// Long items (K = 2304 - 32: 18 groups, the last partial) over 160 experts, with biases: the configs of at most two
// blocks an SM (64 rows, dealt per SM, and the two-warpgroup tiles) run one wave of persistent workers all the same.
TEST(Mxfp4StreamGemm, PersistentWorkersLongItems) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  ExpertWeightShape const shape{160, 256, 2272, 128};
  auto p = make_problem(shape, testing::persistent_worker_counts(rng), rng);
  add_bias(p, rng);
  int64_t const total = p.offsets.back();
  for (char const* config : {"64x64_mxfp4", "128x64_mxfp4", "128x128_mxfp4", "128x256_mxfp4"}) {
    ASSERT_TRUE(block_layout_plan(config, shape, total).persistent) << config;
  }
  for (char const* config : kMxfp4Configs) run_and_check(p, OutputType::kBF16, total, config);
}

// Captured once, replayed with new activations and new routing written into the captured buffers: N = 256, one item
// a block; N = 1024, 16 tiles of up to 26 chunks, dealt per SM.
TEST(Mxfp4StreamGemm, GraphReplayWithNewRouting) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  for (int n : {256, 1024}) {
    SCOPED_TRACE("N " + std::to_string(n));
    ExpertWeightShape const shape{16, n, 1024, 128};
    auto p = make_problem(shape, testing::uniform_routing_counts(16, 24, 4, rng), rng);
    ASSERT_EQ(block_layout_plan("64x8_mxfp4", shape, p.total_rows).workers_per_block > 1, n == 1024);
    CapturedGraph graph;
    ASSERT_NO_FATAL_FAILURE(
        graph.capture([&](cudaStream_t s) { return run(p, OutputType::kBF16, p.total_rows, s, "64x8_mxfp4"); }));
    testing::replay_with_new_routing(p, graph, rng,
                                     [](Mxfp4Problem const& q) { expect_output_matches(q, OutputType::kBF16); });
  }
}

// prepack_weights() from gpt-oss's arrays into the MXFP4 layout, filled over a poisoned buffer.
DeviceBuffer prepack_on_gpu(reference::Mxfp4Experts const& experts, Status* status) {
  DeviceBuffer blocks(experts.blocks), scales(experts.scales);
  DeviceBuffer packed(packed_weights_bytes(experts.shape, PackedLayout::kMxfp4));
  EXPECT_EQ(cudaMemset(packed.get(), 0xA5, packed.bytes()), cudaSuccess);
  PrepackArgs args;
  args.shape = experts.shape;
  args.weight_format = WeightFormat::kMxfp4;
  args.weights = blocks.get();
  args.scale_format = ScaleFormat::kE8m0;
  args.group_scales = scales.get();
  args.packed = packed.get();
  args.packed_bytes = packed.bytes();
  args.layout = PackedLayout::kMxfp4;
  *status = prepack_weights(args);
  return packed;
}

void public_prepack_and_gemm(ExpertWeightShape const& shape);

// K = 2880 (gpt-oss): 90 scale blocks, packed as 2944 with zero codes and 2^0 scales past K; the activation rows
// padded with zeros (random_activations), the reference reading K columns only.
TEST(Mxfp4StreamGemm, PublicPrepackAndGemm) {
  SKIP_WITHOUT_HOPPER();
  for (int k : {896, 2880}) {
    SCOPED_TRACE("K " + std::to_string(k));
    public_prepack_and_gemm({5, 208, k, 128});
  }
}

void public_prepack_and_gemm(ExpertWeightShape const& shape) {
  std::mt19937_64 rng(std::random_device{}());
  Mxfp4Problem p;
  p.shape = shape;
  p.experts = testing::random_mxfp4_experts(shape, rng);
  Status status;
  p.packed = prepack_on_gpu(p.experts, &status);
  ASSERT_OK(status);
  auto const gpu = p.packed.to_host<uint8_t>();
  auto const expected = reference::prepack_mxfp4(p.experts);
  auto const sections = prepack::mxfp4_sections(shape);
  ASSERT_NO_FATAL_FAILURE(testing::expect_packed_bytes_match(
      gpu, expected, sections.blocks, sections.blocks + shape.num_experts * sections.block_bytes_per_expert,
      sections.channel_scales, sections.channel_scales + size_t(shape.num_experts) * shape.n * 4));

  p.offsets = testing::offsets_from_counts({0, 3, 40, 1, 130}, 2);
  p.total_rows = p.offsets.back() + 1;
  upload(p, rng);
  add_bias(p, rng);
  DeviceBuffer workspace(grouped_gemm_workspace_bytes(shape.num_experts));
  auto configs = gemm_config_names(PackedLayout::kMxfp4);
  ASSERT_EQ(configs.size(), std::size(kMxfp4Configs));
  configs.push_back("");
  for (auto const& config : configs) {
    SCOPED_TRACE(config.empty() ? "heuristic" : config);
    ASSERT_CUDA(cudaMemset(p.out.get(), 0xFF, p.out.bytes()));
    GroupedGemmArgs g;
    g.shape = shape;
    g.packed_weights = p.packed.get();
    g.layout = PackedLayout::kMxfp4;
    g.total_rows = p.total_rows;
    g.act = p.act.get();
    g.token_scales = p.token_scales.as<float>();
    g.expert_offsets = p.offsets_device.as<int64_t>();
    g.out = p.out.get();
    g.bias = p.bias_device.as<float>();
    g.workspace = workspace.get();
    g.workspace_bytes = workspace.bytes();
    g.config = config;
    if (config.empty()) EXPECT_NE(select_gemm_config(g).find("_mxfp4"), std::string::npos);
    ASSERT_OK(grouped_gemm(g));
    ASSERT_CUDA(cudaDeviceSynchronize());
    expect_output_matches(p, OutputType::kBF16);
  }
}

// A NaN scale (255) is counted and refused; the message names the rule.
TEST(Mxfp4StreamGemm, PrepackRefusesNanScales) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  auto experts = testing::random_mxfp4_experts({2, 64, 256, 128}, rng);
  experts.scales[5] = prepack::kE8m0Nan;
  experts.scales[17] = prepack::kE8m0Nan;
  Status status;
  prepack_on_gpu(experts, &status);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("2 value(s) break the scale rules"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("e8m0"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace w4a8moe
