// The exact-scale layout's streaming kernel (gemm/exact_stream_gemm.cu) against the float64 CPU reference of the
// checkpoint's own weights (q * bf16 sg, no rounding): uneven and empty experts, a partial last tile, K split over
// clusters, persistent workers, bf16 and fp16 out, stray rows before and after the experts, and graph replay with
// new routing.
//
// Tolerance. Each group's four wgmmas sum x * u * 2^-9 with u = q + 8 (the tensor core keeps about 13-14 mantissa
// bits per 32-wide product chunk, bench/NOTES.md §9d), and the group is then corrected by 2^-6 sum x and scaled in
// fp32. The error is bounded by the magnitude of what the tensor cores sum, st * sc * sum |a| |sg| (|q| + 8)
// (reference::grouped_gemm_exact's out_abs), times sqrt(K / 32) * 2^-14 <= 2^-10 for K up to 16384; the output cast
// adds at most 2^-8 relative (bf16). So |out - ref| <= 2^-7 |ref| + 2^-10 out_abs; a wrong scale, nibble or row
// breaks this by orders of magnitude, and unwritten outputs stay NaN (the poison).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/float_formats.h"
#include "common/status_util.h"
#include "gemm/exact_stream_gemm.h"
#include "gemm/registry.h"
#include "gemm/stream_plan.h"
#include "prepack/exact_format.h"
#include "gemm_test_checks.h"
#include "gpu_test_util.h"
#include "reference/exact_experts.h"
#include "test_data.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::block_layout_plan;
using testing::CapturedGraph;
using testing::DeviceBuffer;

struct ExactProblem {
  ExpertWeightShape shape;
  reference::ExactExperts experts;
  std::vector<int64_t> offsets;
  int64_t total_rows = 0;
  testing::QuantizedActivations acts;
  DeviceBuffer packed, act, token_scales, offsets_device, sums, out;
};

// The device buffers of a problem whose shape, experts, offsets, total_rows and packed weights are set.
void upload(ExactProblem& p, std::mt19937_64& rng) {
  p.acts = testing::random_activations(p.total_rows, p.shape.k, rng);
  p.act = DeviceBuffer(p.acts.act);
  p.token_scales = DeviceBuffer(p.acts.scales);
  p.offsets_device = DeviceBuffer(p.offsets);
  p.sums = DeviceBuffer(activation_group_sums_bytes(p.total_rows, p.shape.k));
  p.out = DeviceBuffer(size_t(std::max<int64_t>(p.total_rows, 1)) * p.shape.n * sizeof(uint16_t));
}

ExactProblem make_problem(ExpertWeightShape shape, std::vector<int64_t> const& counts, std::mt19937_64& rng,
                          int64_t first_row = 0, int64_t trailing_rows = 0) {
  ExactProblem p;
  p.shape = shape;
  std::vector<uint16_t> bf16_scales;
  auto lut_experts = testing::random_experts(shape, rng, &bf16_scales);
  p.experts = reference::exact_from_checkpoint(shape, lut_experts.q, bf16_scales);
  p.offsets = testing::offsets_from_counts(counts, first_row);
  p.total_rows = p.offsets.back() + trailing_rows;
  p.packed = DeviceBuffer(reference::prepack_exact(p.experts));
  upload(p, rng);
  return p;
}

gemm::GroupedGemmParams params(ExactProblem const& p, OutputType out_type, int64_t expected_rows, cudaStream_t stream) {
  gemm::GroupedGemmParams g;
  g.shape = p.shape;
  g.shape.k = padded_k(p.shape.k);  // as grouped_gemm() hands the kernels the shape
  g.packed = p.packed.as<uint8_t>();
  g.total_rows = p.total_rows;
  g.expected_rows = expected_rows;
  g.act = p.act.get();
  g.token_scales = p.token_scales.as<float>();
  g.expert_offsets = p.offsets_device.as<int64_t>();
  g.group_sums = p.sums.as<float>();
  g.out = p.out.get();
  g.out_type = out_type;
  cudaDeviceGetAttribute(&g.sm_count, cudaDevAttrMultiProcessorCount, 0);
  g.stream = stream;
  return g;
}

// The configs of one consumer warpgroup (64-channel tiles, K split over clusters when the items are few).
char const* const kNarrow = "64x8_exact";
char const* const kOneWarpgroupConfigs[] = {"64x8_exact", "64x16_exact", "64x32_exact", "64x48_exact"};

Status run(ExactProblem const& p, OutputType out_type, int64_t expected_rows, cudaStream_t stream = nullptr,
           std::string const& config = kNarrow) {
  gemm::GemmKernelEntry const* entry = testing::registered_kernel(config);
  if (entry == nullptr) return Status(StatusCode::kInvalidArgument, "no config " + config);
  W4A8_RETURN_IF_ERROR(
      gemm::launch_activation_group_sums(p.act.get(), p.total_rows, padded_k(p.shape.k), p.sums.as<float>(), stream));
  return entry->run(params(p, out_type, expected_rows, stream), nullptr, 0);
}

void expect_output_matches(ExactProblem const& p, OutputType out_type) {
  std::vector<int64_t> const rows = reference::gemm_rows(p.offsets, {});
  std::vector<double> ref, ref_abs;
  testing::reference_on_host_threads(
      rows, p.total_rows, p.shape.n,
      [&](std::vector<int64_t> const& chunk, std::vector<double>* out, std::vector<double>* out_abs) {
        reference::grouped_gemm_exact(p.experts, p.acts.act, p.acts.scales, p.offsets, out, out_abs, chunk);
      },
      &ref, &ref_abs);
  testing::expect_gemm_output_matches(p.out.to_host<uint16_t>(), out_type, p.shape, p.total_rows, p.offsets, rows, ref,
                                      ref_abs);
}

void run_and_check(ExactProblem& p, OutputType type, int64_t expected_rows, std::string const& config = kNarrow) {
  SCOPED_TRACE(config);
  ASSERT_CUDA(cudaMemset(p.out.get(), 0xFF, p.out.bytes()));
  ASSERT_OK(run(p, type, expected_rows, nullptr, config));
  ASSERT_CUDA(cudaDeviceSynchronize());
  expect_output_matches(p, type);
}

TEST(ExactStreamGemm, UnevenExpertsPartialTileBothOutputTypes) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  // N = 208: 13 stripes, the last tile one stripe. Empty experts, an expert of 33 rows (one to five chunks), one of
  // 49 (two chunks of 48).
  auto p = make_problem({9, 208, 640, 128}, {3, 0, 9, 1, 33, 0, 2, 5, 49}, rng, /*first_row=*/3, /*trailing=*/2);
  for (char const* config : kOneWarpgroupConfigs) {
    for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) {
      SCOPED_TRACE(type == OutputType::kBF16 ? "bf16" : "fp16");
      run_and_check(p, type, p.offsets.back() - p.offsets.front(), config);
    }
  }
}

// The wide shapes: 128-channel tiles (two warpgroups; N = 208 leaves the second warpgroup of the last tile
// without channels), chunks of 64 and 128 rows; experts of 1 to 300 rows, empty ones.
TEST(ExactStreamGemm, WideShapesUnevenExperts) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  for (int n : {208, 512}) {
    auto p = make_problem({6, n, 1152, 128}, {1, 0, 300, 64, 129, 7}, rng, /*first_row=*/2, /*trailing=*/3);
    for (char const* config : {"128x64_exact", "128x128_exact"}) {
      SCOPED_TRACE("N " + std::to_string(n));
      for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) {
        run_and_check(p, type, p.offsets.back() - p.offsets.front(), config);
      }
    }
  }
}

// One expected row over a long K: K split over clusters of blocks that sum their partial tiles; N = 320 leaves a
// partial last tile; with 70 rows the blocks loop.
TEST(ExactStreamGemm, SplitsKOverClusters) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  ExpertWeightShape const shape{4, 320, 4096, 128};
  for (char const* config : kOneWarpgroupConfigs) ASSERT_GT(block_layout_plan(config, shape, 1).splits, 1) << config;
  for (auto const& counts : {std::vector<int64_t>{1, 0, 0, 0}, {1, 0, 3, 0}, {3, 0, 70, 5}}) {
    auto p = make_problem(shape, counts, rng, /*first_row=*/1, /*trailing=*/2);
    for (char const* config : kOneWarpgroupConfigs) {
      for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) run_and_check(p, type, 1, config);
    }
  }
}

// Many items over 160 experts, short ones (6 groups) and long ones (18): the configs of one warpgroup deal them per
// SM (four or three workers in one block an SM), the two-warpgroup tiles run one wave of persistent workers.
TEST(ExactStreamGemm, PersistentWorkers) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  ExpertWeightShape const short_items{160, 1024, 768, 128}, long_items{160, 256, 2304, 128};
  for (ExpertWeightShape const& shape : {short_items, long_items}) {
    SCOPED_TRACE("K " + std::to_string(shape.k));
    auto p = make_problem(shape, testing::persistent_worker_counts(rng), rng);
    int64_t const total = p.offsets.back();
    for (char const* config : kOneWarpgroupConfigs) {
      ASSERT_GT(block_layout_plan(config, shape, total).workers_per_block, 1) << config;
    }
    for (char const* config : {"128x64_exact", "128x128_exact"}) {
      ASSERT_TRUE(block_layout_plan(config, shape, total).persistent) << config;
    }
    for (auto const& config : gemm_config_names(PackedLayout::kExactScales)) {
      run_and_check(p, OutputType::kBF16, total, config);
    }
  }
}

// Captured once, replayed with new activations and new routing written into the captured buffers: N = 256, one item
// a block; N = 1024, 16 tiles of up to 26 chunks, dealt per SM.
TEST(ExactStreamGemm, GraphReplayWithNewRouting) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  for (int n : {256, 1024}) {
    SCOPED_TRACE("N " + std::to_string(n));
    ExpertWeightShape const shape{16, n, 1024, 128};
    auto p = make_problem(shape, testing::uniform_routing_counts(16, 24, 4, rng), rng);
    ASSERT_EQ(block_layout_plan(kNarrow, shape, p.total_rows).workers_per_block > 1, n == 1024);
    CapturedGraph graph;
    ASSERT_NO_FATAL_FAILURE(
        graph.capture([&](cudaStream_t s) { return run(p, OutputType::kBF16, p.total_rows, s); }));
    testing::replay_with_new_routing(p, graph, rng,
                                     [](ExactProblem const& q) { expect_output_matches(q, OutputType::kBF16); });
  }
}

// The public path: prepack_weights() into the exact layout (byte for byte the CPU packing, from the checkpoint format
// and from signed int4 with fp8 group and fp32 channel scales), then grouped_gemm() with every exact config and the
// heuristic, the group sums from compute_activation_group_sums().
void public_prepack_and_gemm(ExpertWeightShape const& shape);

// K = 2880 (gpt-oss) is not a multiple of 128: packed with zero weights up to 2944, the activation rows padded
// with zeros (random_activations), the reference reading K columns only.
TEST(ExactStreamGemm, PublicPrepackAndGemm) {
  SKIP_WITHOUT_HOPPER();
  for (int k : {896, 2880}) {
    SCOPED_TRACE("K " + std::to_string(k));
    public_prepack_and_gemm({5, 208, k, 128});
  }
}

void public_prepack_and_gemm(ExpertWeightShape const& shape) {
  std::mt19937_64 rng(std::random_device{}());
  std::vector<uint16_t> bf16_scales;
  auto const lut = testing::random_experts(shape, rng, &bf16_scales);
  for (bool checkpoint : {true, false}) {
    SCOPED_TRACE(checkpoint ? "checkpoint format" : "signed int4, fp8 scales");
    reference::ExactExperts experts = reference::exact_from_checkpoint(shape, lut.q, bf16_scales);
    if (!checkpoint) {  // W = q * sg * sc with the split's e4m3 sg (exact in bf16) and fp32 sc
      for (size_t i = 0; i < experts.group_scale.size(); ++i) {
        experts.group_scale[i] = float_to_bf16(e4m3_to_float(lut.group_scale[i]));
      }
      experts.channel_scale = lut.channel_scale;
    }
    Status status;
    DeviceBuffer packed = testing::prepack_either_format(lut, checkpoint ? &bf16_scales : nullptr,
                                                         PackedLayout::kExactScales, &status);
    ASSERT_OK(status);
    auto const gpu = packed.to_host<uint8_t>();
    auto const expected = reference::prepack_exact(experts);
    auto const sections = prepack::exact_sections(shape);
    ASSERT_NO_FATAL_FAILURE(testing::expect_packed_bytes_match(
        gpu, expected, sections.blocks, sections.blocks + shape.num_experts * sections.block_bytes_per_expert,
        sections.channel_scales, sections.channel_scales + size_t(shape.num_experts) * shape.n * 4));

    ExactProblem p;
    p.shape = shape;
    p.experts = experts;
    p.offsets = testing::offsets_from_counts({0, 3, 40, 1, 130}, 2);
    p.total_rows = p.offsets.back() + 1;
    p.packed = std::move(packed);
    upload(p, rng);
    DeviceBuffer workspace(grouped_gemm_workspace_bytes(shape.num_experts));
    auto configs = gemm_config_names(PackedLayout::kExactScales);
    configs.push_back("");
    for (auto const& config : configs) {
      SCOPED_TRACE(config.empty() ? "heuristic" : config);
      ASSERT_CUDA(cudaMemset(p.out.get(), 0xFF, p.out.bytes()));
      ASSERT_OK(compute_activation_group_sums(p.act.get(), p.total_rows, shape.k, p.sums.as<float>(), nullptr));
      GroupedGemmArgs g;
      g.shape = shape;
      g.packed_weights = p.packed.get();
      g.layout = PackedLayout::kExactScales;
      g.total_rows = p.total_rows;
      g.act = p.act.get();
      g.token_scales = p.token_scales.as<float>();
      g.expert_offsets = p.offsets_device.as<int64_t>();
      g.act_group_sums = p.sums.as<float>();
      g.out = p.out.get();
      g.workspace = workspace.get();
      g.workspace_bytes = workspace.bytes();
      g.config = config;
      ASSERT_OK(grouped_gemm(g));
      ASSERT_CUDA(cudaDeviceSynchronize());
      expect_output_matches(p, OutputType::kBF16);
    }
  }
}

}  // namespace
}  // namespace w4a8moe
