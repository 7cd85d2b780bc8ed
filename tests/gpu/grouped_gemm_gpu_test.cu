// The grouped GEMM on the GPU against the float64 CPU reference: every registered config and the heuristic path,
// bf16 and fp16 out, zero-row experts, one expert holding every row, rows per expert from 1 to 4096, K from 128 to
// 7168, E from 1 to 256, the int64 case, CUDA graph capture with new routing (CUTLASS and streaming kernels), corrupt
// device offsets, the streaming kernels with more rows than the caller expected (the decode kernel's blocks looping
// over more chunks than their grid), and the wgmma kernel's K split over clusters.
//
// Tolerance. The kernel and the reference multiply the same e4m3 values (the reference rounds q * sg to e4m3 as the
// lookup table does), so differences come only from (a) the order and precision of the accumulation and (b) the
// cast of the output:
//   (a) fp8 wgmma accumulates without promotion to full fp32 ("fast accumulation"); the tensor core keeps about
//       13-14 mantissa bits per 32-wide product chunk. Over K/32 chunks the rounding errors add like a random walk:
//       about sqrt(K/32) * 2^-14 * sum_k |a w| <= 2^-10 * sum_k |a w| for K up to 16384.
//   (b) bf16 output rounding is at most 2^-8 relative (fp16: 2^-11); we allow 2^-7.
// So each element must satisfy |out - ref| <= 2^-7 |ref| + 2^-10 * st * sc * sum_k |a w|. A wrong group scale, a
// wrong element order or a wrong row breaks this by orders of magnitude; unwritten outputs stay NaN (the poison).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "common/float_formats.h"
#include "gemm/registry.h"
#include "gemm/stream_plan.h"
#include "gemm_test_checks.h"
#include "gpu_test_util.h"
#include "reference/quantized_experts.h"
#include "test_data.h"
#include "w4a8moe/grouped_gemm.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::CapturedGraph;
using testing::DeviceBuffer;
using testing::device_sm_count;

using testing::kPoison;

std::mt19937_64 fresh_rng() { return std::mt19937_64(std::random_device{}()); }

// One grouped GEMM problem: host data, reference inputs and device buffers.
struct Problem {
  ExpertWeightShape shape;
  reference::QuantizedExperts experts;
  std::vector<int64_t> offsets;  // [E + 1]
  int64_t total_rows = 0;
  testing::QuantizedActivations acts;
  DeviceBuffer packed, act, token_scales, offsets_device, out, workspace;
};

void prepack_experts(Problem& p, std::vector<uint16_t> const& bf16_scales) {
  DeviceBuffer weights(reference::pack_offset_binary(p.experts)), scales(bf16_scales);
  Status const status = prepack_to_new_buffer(weights.get(), scales.get(), p.shape, &p.packed);
  ASSERT_TRUE(status.ok()) << status.to_string();
}

// Rows [0, first_row) and [offsets[E], total_rows) belong to no expert and must stay untouched.
Problem make_problem(ExpertWeightShape shape, std::vector<int64_t> const& counts, std::mt19937_64& rng,
                     int64_t first_row = 0, int64_t trailing_rows = 0) {
  Problem p;
  p.shape = shape;
  std::vector<uint16_t> bf16_scales;
  p.experts = testing::random_experts(shape, rng, &bf16_scales);
  p.offsets = testing::offsets_from_counts(counts, first_row);
  p.total_rows = p.offsets.back() + trailing_rows;
  p.acts = testing::random_activations(p.total_rows, shape.k, rng);
  prepack_experts(p, bf16_scales);
  p.act = DeviceBuffer(p.acts.act);
  p.token_scales = DeviceBuffer(p.acts.scales);
  p.offsets_device = DeviceBuffer(p.offsets);
  p.out = DeviceBuffer(size_t(std::max<int64_t>(p.total_rows, 1)) * shape.n * sizeof(uint16_t));
  p.workspace = DeviceBuffer(grouped_gemm_workspace_bytes(shape.num_experts));
  return p;
}

GroupedGemmArgs gemm_args(Problem const& p, OutputType out_type, std::string const& config) {
  GroupedGemmArgs args;
  args.shape = p.shape;
  args.packed_weights = p.packed.get();
  args.total_rows = p.total_rows;
  args.act = p.act.get();
  args.token_scales = p.token_scales.as<float>();
  args.expert_offsets = p.offsets_device.as<int64_t>();
  args.out = p.out.get();
  args.out_type = out_type;
  args.workspace = p.workspace.get();
  args.workspace_bytes = p.workspace.bytes();
  args.config = config;
  return args;
}

void poison_output(Problem const& p) {
  ASSERT_CUDA(cudaMemset(p.out.get(), 0xFF, p.out.bytes()));
}

// Reference for the given rows, computed on the host's threads.
void reference_rows(Problem const& p, std::vector<int64_t> const& rows, std::vector<double>* ref,
                    std::vector<double>* ref_abs) {
  testing::reference_on_host_threads(
      rows, p.total_rows, p.shape.n,
      [&](std::vector<int64_t> const& chunk, std::vector<double>* out, std::vector<double>* out_abs) {
        reference::grouped_gemm(p.experts, p.acts.act, p.acts.scales, p.offsets, out, out_abs, chunk);
      },
      ref, ref_abs);
}

// Compares the device output with the reference on `rows` (all expert rows if empty); rows outside every expert
// must still hold the poison.
void expect_output_matches(Problem const& p, OutputType out_type, std::vector<int64_t> rows = {}) {
  if (rows.empty()) rows = reference::gemm_rows(p.offsets, {});
  std::vector<double> ref, ref_abs;
  reference_rows(p, rows, &ref, &ref_abs);
  testing::expect_gemm_output_matches(p.out.to_host<uint16_t>(), out_type, p.shape, p.total_rows, p.offsets, rows, ref,
                                      ref_abs);
}

// expected_rows_hint > 0: the caller's expected rows (an expert-parallel rank's hint), which size the streaming
// configs' grids; 0 lets the call count them.
void run_and_check(Problem& p, OutputType out_type, std::string const& config, int64_t expected_rows_hint = 0) {
  poison_output(p);
  GroupedGemmArgs args = gemm_args(p, out_type, config);
  args.expected_rows_hint = expected_rows_hint;
  ASSERT_OK(grouped_gemm(args));
  ASSERT_CUDA(cudaDeviceSynchronize());
  expect_output_matches(p, out_type);
}

// --- Every registered config, both output types ----------------------------------------------------------------

class EveryConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryConfig, UnevenExpertsBothOutputTypes) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  // Zero-row experts, rows that are not multiples of any tile, and stray rows before and after the experts; experts
  // and last chunks of at most 8 rows, which the 16- and 32-row streaming configs multiply as 8 rows.
  auto p = make_problem({8, 272, 384, 128}, {0, 1, 17, 0, 130, 5, 64, 33}, rng, /*first_row=*/3, /*trailing=*/5);
  for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) {
    SCOPED_TRACE(output_type_name(type));
    run_and_check(p, type, GetParam());
  }
}

TEST_P(EveryConfig, LargeUniformRouting) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({16, 512, 1024, 128}, testing::uniform_routing_counts(16, 256, 4, rng), rng);
  run_and_check(p, OutputType::kBF16, GetParam());
}

// K off whole groups (208 = 128 + 80; gpt-oss has 2880): zero weights packed past K, activation rows padded with
// zeros (random_activations); the reference reads K columns.
TEST_P(EveryConfig, KNotAMultipleOf128) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({4, 144, 208, 128}, {3, 0, 40, 9}, rng, /*first_row=*/1, /*trailing=*/2);
  run_and_check(p, OutputType::kBF16, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryConfig, ::testing::ValuesIn(gemm_config_names()),
                         [](auto const& info) { return info.param; });

// The streaming configs (decode and wgmma kernels) size their grid from the expected rows (an expert-parallel
// rank's hint); when the experts hold far more rows than that, the blocks loop over the remaining chunks.
std::vector<std::string> streaming_configs() {
  std::vector<std::string> names;
  for (auto const& name : gemm_config_names()) {
    if (name.find("_decode") != std::string::npos || name.find("_stream") != std::string::npos) names.push_back(name);
  }
  return names;
}

TEST(GroupedGemm, StreamingKernelsCoverMoreRowsThanExpected) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({6, 160, 1280, 128}, {3, 0, 40, 1, 17, 9}, rng);
  for (auto const& config : streaming_configs()) {
    SCOPED_TRACE(config);
    run_and_check(p, OutputType::kBF16, config, /*expected_rows_hint=*/1);
  }
}

// The decode kernel's blocks past their grid's chunks: one expected row makes a grid of 16 chunk rows (grid_chunks),
// and 230 rows make 32 chunks of 8 rows (every block takes two) and 18 of 16 (two blocks take two); a block requests
// its next chunk's first weights and channel scales before the epilogue of the one before. K of 10 and 27 groups over
// 8 K splits gives warps 1, 2, 3 and 4 groups a chunk: fewer than the groups in flight, as many, and past them; N of
// 160 spreads the grid over the SMs, and 2304 (144 blocks a chunk row) fills them.
TEST(GroupedGemm, DecodeKernelBlocksLoopOverMoreChunksThanTheirGrid) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  std::vector<int64_t> const counts{3, 0, 200, 1, 17, 9};
  for (auto [n, k] : {std::pair{160, 1280}, std::pair{160, 3456}, std::pair{2304, 1280}}) {
    auto p = make_problem({6, n, k, 128}, counts, rng, /*first_row=*/2, /*trailing=*/3);
    for (auto const& config : streaming_configs()) {
      if (config.find("_decode") == std::string::npos) continue;
      int64_t const chunk_rows = gemm::find_gemm_kernel(config)->config.tile_n;
      int64_t chunks = 0;
      for (int64_t rows : counts) chunks += (rows + chunk_rows - 1) / chunk_rows;
      ASSERT_LT(gemm::grid_chunks(p.total_rows, 1, p.shape.num_experts, chunk_rows), chunks) << config;
      for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) {
        SCOPED_TRACE(config + " " + output_type_name(type) + " N " + std::to_string(n) + " K " + std::to_string(k));
        run_and_check(p, type, config, /*expected_rows_hint=*/1);
      }
    }
  }
}

// One expected row over 6 tiles of a long K: the wgmma kernel splits K over clusters of 8 blocks, which sum their
// partial tiles through distributed shared memory, and its split-K config over the four workers of one block, which
// sum them in the block's shared memory; N = 336 leaves the last tile one stripe of four. With 1 and 3 rows per
// expert, and with an expert of 70 rows that the blocks reach by looping. K of 32 groups: the wgmma kernel copies the
// weights in 3D tensor copies (gemm::weights_in_one_tensor_copy), whose box runs past N on that last tile.
TEST(GroupedGemm, StreamKernelSplitsKOverClusters) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  for (auto const& counts : {std::vector<int64_t>{1, 0, 0, 0}, {1, 0, 3, 0}, {3, 0, 70, 5}}) {
    auto p = make_problem({4, 336, 4096, 128}, counts, rng, /*first_row=*/1, /*trailing=*/2);
    for (auto const& config : streaming_configs()) {
      if (config.find("_stream") == std::string::npos) continue;
      SCOPED_TRACE(config + " with " + std::to_string(p.offsets.back() - p.offsets.front()) + " rows");
      for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) run_and_check(p, type, config, 1);
    }
  }
}

// Rows over kManyExperts experts for plans dealt per SM: 0-6 rows each, expert 3 empty, expert 150 of 23 rows (three
// 8-row chunks), so that the chunks are found 128 experts at a time from a cursor that crosses windows.
constexpr int kManyExperts = 160;

std::vector<int64_t> many_uneven_experts(std::mt19937_64& rng) {
  std::vector<int64_t> counts(kManyExperts);
  std::uniform_int_distribution<int> rows(0, 6);
  for (auto& count : counts) count = rows(rng);
  counts[3] = 0;
  counts[150] = 23;
  return counts;
}

// Many short items (K = 768: 6 groups) over many_uneven_experts: persistent wgmma workers dealt per SM, each streaming
// several items back to back.
TEST(GroupedGemm, StreamKernelPersistentWorkers) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  ExpertWeightShape const shape{kManyExperts, 1024, 768, 128};
  auto p = make_problem(shape, many_uneven_experts(rng), rng);
  int64_t const total = p.offsets.back() - p.offsets.front();
  int const sms = device_sm_count();
  ASSERT_GT(sms, 0);
  gemm::StreamLaunchPlan const plan =
      gemm::plan_stream_launch(shape, total, total, sms, gemm::kStreamChunkRows, gemm::kStreamBlocksPerSm, 0);
  ASSERT_TRUE(plan.persistent);
  ASSERT_GT(gemm::deal_per_sm(plan, sms, gemm::kStreamBlocksPerSm, 0).workers_per_block, 1);
  for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) run_and_check(p, type, "64x8_stream");
}

// The split-K config on a plan dealt per SM: the block's four workers take each of the SM's items together, a slice
// of K each (9 groups: slices of 2, 2, 2 and 3), over many_uneven_experts and a partial last tile of N (GraphCapture
// replays the config with new routing).
TEST(GroupedGemm, SplitKConfigSlicesDealtItems) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  ExpertWeightShape const shape{kManyExperts, 272, 1152, 128};
  auto p = make_problem(shape, many_uneven_experts(rng), rng);
  int64_t const total = p.offsets.back() - p.offsets.front();
  int const sms = device_sm_count();
  ASSERT_GT(sms, 0);
  int constexpr kWorkers = gemm::kStreamBlocksPerSm;
  gemm::StreamLaunchPlan const dealt =
      gemm::plan_worker_launch(shape, total, total, sms, gemm::kStreamChunkRows, 1, kWorkers, 0, kWorkers, 0);
  ASSERT_GT(dealt.workers_per_block, 1);
  ASSERT_EQ(gemm::split_k_in_block(dealt, 9, kWorkers, 0).block_splits, kWorkers);
  for (OutputType type : {OutputType::kBF16, OutputType::kFP16}) run_and_check(p, type, "64x8_splitk_stream");
}

// --- The heuristic path over shapes ---------------------------------------------------------------------------

class KSweep : public ::testing::TestWithParam<int> {};

TEST_P(KSweep, HeuristicPath) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({4, 256, GetParam(), 128}, {40, 0, 7, 129}, rng);
  run_and_check(p, OutputType::kBF16, "");
}

INSTANTIATE_TEST_SUITE_P(K, KSweep, ::testing::Values(128, 384, 768, 2048, 7168),
                         [](auto const& info) { return "K" + std::to_string(info.param); });

class ExpertCountSweep : public ::testing::TestWithParam<int> {};

TEST_P(ExpertCountSweep, UniformRoutingHeuristicPath) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  int const experts = GetParam();
  auto counts = testing::uniform_routing_counts(experts, 96, std::min(8, experts), rng);
  auto p = make_problem({experts, 256, 256, 128}, counts, rng);
  run_and_check(p, OutputType::kBF16, "");
  run_and_check(p, OutputType::kFP16, "");
}

INSTANTIATE_TEST_SUITE_P(E, ExpertCountSweep, ::testing::Values(1, 8, 128, 256, 2048),
                         [](auto const& info) { return "E" + std::to_string(info.param); });

TEST(GroupedGemm, OneExpertHoldsAllRows) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({8, 256, 512, 128}, {0, 0, 0, 1000, 0, 0, 0, 0}, rng);
  run_and_check(p, OutputType::kBF16, "");
}

TEST(GroupedGemm, RowsPerExpertFrom1To4096) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({9, 128, 256, 128}, {1, 2, 15, 33, 127, 257, 1000, 4095, 4096}, rng);
  for (std::string config : {"", "128x16_1x1_coop", "256x128_2x1_coop", "128x256_2x1_coop"}) {
    SCOPED_TRACE(config);
    run_and_check(p, OutputType::kBF16, config);
  }
}

TEST(GroupedGemm, Qwen3GemmShapesHeuristicPath) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  // GEMM1 [rows, 2048] x [2048, 1536] and GEMM2 at 2-way tensor parallelism [rows, 384] x [384, 2048].
  for (auto shape : {ExpertWeightShape{128, 1536, 2048, 128}, ExpertWeightShape{128, 2048, 384, 128}}) {
    auto p = make_problem(shape, testing::uniform_routing_counts(128, 64, 8, rng), rng);
    // A sample of rows keeps the float64 reference quick.
    std::vector<int64_t> rows;
    for (int64_t m = 0; m < p.total_rows; m += 7) rows.push_back(m);
    poison_output(p);
    ASSERT_OK(grouped_gemm(gemm_args(p, OutputType::kBF16, "")));
    ASSERT_CUDA(cudaDeviceSynchronize());
    expect_output_matches(p, OutputType::kBF16, rows);
  }
}

TEST(GroupedGemm, ZeroTotalRowsLaunchesNothing) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({4, 128, 128, 128}, {0, 0, 0, 0}, rng);
  ASSERT_OK(grouped_gemm(gemm_args(p, OutputType::kBF16, "")));
  ASSERT_CUDA(cudaDeviceSynchronize());
}

// Offsets that break the rules on the device (the host cannot see them) must not make the kernel touch memory
// outside its buffers: an expert whose range is decreasing or runs past total_rows gets zero rows. A range that is
// in bounds but overlaps another expert's is computed (the device cannot tell which expert owns the rows).
TEST(GroupedGemm, CorruptDeviceOffsetsComputeNothingForThoseExperts) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto p = make_problem({4, 128, 256, 128}, {10, 20, 30, 40}, rng);  // offsets {0, 10, 30, 60, 100}
  std::vector<int64_t> corrupt = p.offsets;
  corrupt[2] = 5;                    // expert 1: [10, 5) decreasing -> nothing; expert 2: [5, 60) in bounds
  corrupt[4] = p.total_rows + 1000;  // expert 3: [60, 1100) past the buffer -> nothing
  ASSERT_CUDA(cudaMemcpy(p.offsets_device.get(), corrupt.data(), corrupt.size() * 8, cudaMemcpyHostToDevice));
  poison_output(p);
  ASSERT_OK(grouped_gemm(gemm_args(p, OutputType::kBF16, "")));
  ASSERT_CUDA(cudaDeviceSynchronize());
  auto const out = p.out.to_host<uint16_t>();

  // Rows 0..4 belong to expert 0 alone and match the reference of the uncorrupted routing.
  std::vector<int64_t> rows{0, 1, 2, 3, 4};
  std::vector<double> ref, ref_abs;
  reference_rows(p, rows, &ref, &ref_abs);
  for (int64_t m : rows) {
    for (int n = 0; n < p.shape.n; ++n) {
      size_t const i = size_t(m) * p.shape.n + n;
      EXPECT_LE(std::fabs(bf16_to_float(out[i]) - ref[i]),
                std::ldexp(std::fabs(ref[i]), -7) + std::ldexp(ref_abs[i], -10));
    }
  }
  // Rows 5..59 were written by expert 2 (finite); rows 60..99 by nobody (still the poison).
  for (int64_t m = 5; m < 60; ++m) {
    for (int n = 0; n < p.shape.n; ++n) ASSERT_TRUE(std::isfinite(bf16_to_float(out[size_t(m) * p.shape.n + n])));
  }
  for (int64_t m = 60; m < 100; ++m) {
    for (int n = 0; n < p.shape.n; ++n) ASSERT_EQ(out[size_t(m) * p.shape.n + n], kPoison) << m;
  }
}

// --- CUDA graph: capture once, replay with new routing and new activations ----------------------------------------

// (config, rows): the heuristic's CUTLASS kernel at 400 rows; the decode and wgmma streaming kernels at 12 rows,
// whose grids of a few blocks are spread with dynamic shared memory past the default limit (an attribute set during
// the capture), the latter in clusters that split K; the wgmma kernel at 400 rows, up to 64 chunks x 4 tiles dealt
// per SM, whole or, in the split-K config, split over each block's four workers.
class GraphCapture : public ::testing::TestWithParam<std::tuple<std::string, int64_t>> {};

TEST_P(GraphCapture, ReplaysWithNewRouting) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto const& [config, rows] = GetParam();
  auto p = make_problem({16, 256, 512, 128}, testing::uniform_routing_counts(16, rows / 4, 4, rng), rng);
  ASSERT_EQ(p.total_rows, rows);
  GroupedGemmArgs args = gemm_args(p, OutputType::kBF16, config);
  CapturedGraph graph;
  ASSERT_NO_FATAL_FAILURE(graph.capture([&](cudaStream_t stream) {
    args.stream = stream;
    return grouped_gemm(args);
  }));

  for (int replay = 0; replay < 3; ++replay) {
    SCOPED_TRACE("replay " + std::to_string(replay));
    // New routing (same total rows), new activations, written into the captured buffers.
    auto counts = testing::uniform_routing_counts(16, rows / 4, 4, rng);
    if (replay == 2) {  // all rows to one expert
      counts.assign(16, 0);
      counts[7] = rows;
    }
    p.offsets = testing::offsets_from_counts(counts);
    p.acts = testing::random_activations(rows, p.shape.k, rng);
    ASSERT_CUDA(cudaMemcpy(p.offsets_device.get(), p.offsets.data(), p.offsets.size() * 8, cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemcpy(p.act.get(), p.acts.act.data(), p.acts.act.size(), cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemcpy(p.token_scales.get(), p.acts.scales.data(), rows * 4, cudaMemcpyHostToDevice));
    poison_output(p);
    ASSERT_CUDA(graph.replay());
    expect_output_matches(p, OutputType::kBF16);
  }
}

INSTANTIATE_TEST_SUITE_P(GroupedGemm, GraphCapture,
                         ::testing::Values(std::make_tuple(std::string(), int64_t(400)),
                                           std::make_tuple(std::string("16x8_1x1_decode"), int64_t(12)),
                                           std::make_tuple(std::string("64x8_stream"), int64_t(12)),
                                           std::make_tuple(std::string("64x8_stream"), int64_t(400)),
                                           std::make_tuple(std::string("64x8_splitk_stream"), int64_t(400))),
                         [](auto const& info) {
                           std::string const& config = std::get<0>(info.param);
                           return (config.empty() ? std::string("Heuristic") : config) + "_" +
                                  std::to_string(std::get<1>(info.param)) + "Rows";
                         });

// --- E=128, N=8192, K=4096: 4.3e9 weights, offsets past 2^31 ----------------------------------------------------

__global__ void fill_random_words(uint32_t* words, size_t count, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;  // splitmix64
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    words[i] = uint32_t(x ^ (x >> 31));
  }
}

TEST(GroupedGemm, Int64SizedExperts) {
  SKIP_WITHOUT_HOPPER();
  ExpertWeightShape const shape{128, 8192, 4096, 128};
  size_t const words = size_t(shape.num_experts) * shape.n * shape.k / 8;  // 2 GiB of checkpoint int32
  size_t const groups = shape.k / 128;
  auto rng = fresh_rng();

  // Any 32-bit word is valid offset-binary int4 data: generate the weights on the device.
  DeviceBuffer weights(words * 4);
  ASSERT_TRUE(weights.ok()) << "could not allocate 2 GiB";
  fill_random_words<<<4096, 256>>>(weights.as<uint32_t>(), words, rng());
  ASSERT_CUDA(cudaGetLastError());
  std::vector<uint16_t> bf16_scales(size_t(shape.num_experts) * shape.n * groups);
  std::uniform_real_distribution<float> scale_dist(0.001f, 0.02f);
  for (auto& s : bf16_scales) s = float_to_bf16(scale_dist(rng));
  DeviceBuffer scales(bf16_scales);

  Problem p;
  p.shape = shape;
  ASSERT_OK(prepack_to_new_buffer(weights.get(), scales.get(), shape, &p.packed));

  // Rows for a few experts, the last one included (its weights start past 2^31 elements).
  std::vector<int64_t> counts(shape.num_experts, 0);
  counts[0] = 3;
  counts[64] = 20;
  counts[126] = 1;
  counts[127] = 37;
  p.offsets = testing::offsets_from_counts(counts);
  p.total_rows = p.offsets.back();
  p.acts = testing::random_activations(p.total_rows, shape.k, rng);
  p.act = DeviceBuffer(p.acts.act);
  p.token_scales = DeviceBuffer(p.acts.scales);
  p.offsets_device = DeviceBuffer(p.offsets);
  p.out = DeviceBuffer(size_t(p.total_rows) * shape.n * 2);
  p.workspace = DeviceBuffer(grouped_gemm_workspace_bytes(shape.num_experts));
  poison_output(p);
  ASSERT_OK(grouped_gemm(gemm_args(p, OutputType::kBF16, "")));
  ASSERT_CUDA(cudaDeviceSynchronize());

  // The reference sees only the experts that received rows (their rows are contiguous and in expert order), with
  // their weight words copied back from the device.
  std::vector<int> const used{0, 64, 126, 127};
  ExpertWeightShape const used_shape{int(used.size()), shape.n, shape.k, 128};
  size_t const expert_words = size_t(shape.n) * shape.k / 8;
  std::vector<int32_t> used_words(used.size() * expert_words);
  std::vector<uint16_t> used_scales;
  std::vector<int64_t> used_counts;
  for (size_t i = 0; i < used.size(); ++i) {
    ASSERT_CUDA(cudaMemcpy(used_words.data() + i * expert_words, weights.as<int32_t>() + used[i] * expert_words,
                           expert_words * 4, cudaMemcpyDeviceToHost));
    auto const first = bf16_scales.begin() + size_t(used[i]) * shape.n * groups;
    used_scales.insert(used_scales.end(), first, first + size_t(shape.n) * groups);
    used_counts.push_back(counts[used[i]]);
  }
  p.experts.shape = used_shape;
  p.experts.q = reference::unpack_offset_binary(used_words, used_shape);
  reference::split_bf16_scales(used_scales, &p.experts);
  p.offsets = testing::offsets_from_counts(used_counts);
  std::vector<int64_t> rows;
  for (int64_t m = 0; m < p.total_rows; m += 3) rows.push_back(m);
  rows.push_back(p.total_rows - 1);
  expect_output_matches(p, OutputType::kBF16, rows);
}

}  // namespace
}  // namespace w4a8moe
