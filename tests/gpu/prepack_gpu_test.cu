// The GPU prepack against the CPU reference, byte for byte, for both input formats.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/float_formats.h"
#include "gemm/w4a8_types.cuh"
#include "gemm_test_checks.h"
#include "gpu_test_util.h"
#include "prepack/packed_format.h"
#include "reference/quantized_experts.h"
#include "test_data.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::DeviceBuffer;

// The lookup-table layout prepacked on the GPU (testing::prepack_either_format), read back.
std::vector<uint8_t> prepack_on_gpu(reference::QuantizedExperts const& experts,
                                    std::vector<uint16_t> const* bf16_scales, Status* status) {
  return testing::prepack_either_format(experts, bf16_scales, PackedLayout::kLookupTable, status).to_host<uint8_t>();
}

void expect_matches_reference(std::vector<uint8_t> const& gpu, reference::QuantizedExperts const& experts) {
  auto const expected = reference::prepack(experts);
  auto const sections = prepack::packed_sections(experts.shape);
  ASSERT_EQ(gpu.size(), expected.size());
  // Header through channel scales: identical bytes (padding between sections is never read).
  auto compare = [&](size_t begin, size_t end, char const* what) {
    for (size_t i = begin; i < end; ++i) ASSERT_EQ(gpu[i], expected[i]) << what << " byte " << i;
  };
  compare(0, sizeof(prepack::PackedHeader), "header");
  size_t const e = experts.shape.num_experts;
  compare(sections.weights, sections.weights + e * sections.weight_bytes_per_expert, "weights");
  compare(sections.group_scales, sections.group_scales + e * sections.group_scale_bytes_per_expert, "luts");
  compare(sections.channel_scales, sections.channel_scales + e * experts.shape.n * 4, "channel scales");
  // Layouts: the CuTe layout the kernel reads, once per expert.
  auto const layout = gemm::make_reordered_weight_layout(experts.shape.n, padded_k(experts.shape.k));
  for (size_t i = 0; i < e; ++i) {
    EXPECT_EQ(std::memcmp(gpu.data() + sections.layouts + i * prepack::kLayoutSlotBytes, &layout, sizeof layout), 0)
        << "layout of expert " << i;
  }
}

class PrepackGpu : public ::testing::TestWithParam<ExpertWeightShape> {};

TEST_P(PrepackGpu, CheckpointFormatMatchesReference) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  std::vector<uint16_t> bf16_scales;
  auto const experts = testing::random_experts(GetParam(), rng, &bf16_scales);
  Status status;
  auto const packed = prepack_on_gpu(experts, &bf16_scales, &status);
  ASSERT_OK(status);
  expect_matches_reference(packed, experts);
}

TEST_P(PrepackGpu, SignedInt4WithFp8ScalesMatchesReference) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(std::random_device{}());
  auto const experts = testing::random_experts(GetParam(), rng);
  Status status;
  auto const packed = prepack_on_gpu(experts, nullptr, &status);
  ASSERT_OK(status);
  expect_matches_reference(packed, experts);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PrepackGpu,
                         ::testing::Values(ExpertWeightShape{1, 16, 128, 128}, ExpertWeightShape{3, 48, 384, 128},
                                           ExpertWeightShape{8, 1536, 2048, 128}, ExpertWeightShape{2, 784, 7168, 128},
                                           // K off whole groups: zero weights packed up to padded_k(K)
                                           ExpertWeightShape{3, 48, 208, 128}, ExpertWeightShape{1, 2880, 2880, 128}),
                         [](auto const& info) {
                           auto const& s = info.param;
                           return "E" + std::to_string(s.num_experts) + "_N" + std::to_string(s.n) + "_K" +
                                  std::to_string(s.k);
                         });

TEST(PrepackGpuErrors, NonFiniteBf16ScalesAreReported) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(1);
  std::vector<uint16_t> bf16_scales;
  auto const experts = testing::random_experts({2, 32, 256, 128}, rng, &bf16_scales);
  bf16_scales[5] = 0x7FC0;   // NaN
  bf16_scales[17] = 0x7F80;  // +inf
  Status status;
  prepack_on_gpu(experts, &bf16_scales, &status);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("2 value(s)"), std::string::npos) << status.message();
}

TEST(PrepackGpuErrors, Fp8GroupScalesAbove56AreReported) {
  SKIP_WITHOUT_HOPPER();
  std::mt19937_64 rng(2);
  auto experts = testing::random_experts({1, 16, 128, 128}, rng);
  experts.group_scale[3] = float_to_e4m3(64.0f);  // 8 * 64 = 512 > 448
  Status status;
  prepack_on_gpu(experts, nullptr, &status);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("|sg| <= 56"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace w4a8moe
