// gpt-oss's MoE layer on the MXFP4 experts: moe_forward with the MXFP4 layout, gpt-oss's clamped SwiGLU and both
// expert biases, against the CPU reference that mirrors the staged path's roundings
// (reference::gpt_oss_layer_as_staged, on the checkpoint's interleaved gate/up rows, so the layer order the test
// packs is checked too), and against gpt-oss's float64 layer with nothing rounded. H and I off whole 128-groups
// (2880 and small ones), 1 to 64 tokens, router logits, bf16 and fp16, expert-parallel ranks, CUDA graph replay with
// new inputs.
//
// Tolerance. Against the mirrored reference, as moe_gpu_test.cu argues for the SiLU layers: only the GEMMs'
// summation order differs, which moves GEMM outputs by a bf16 step and some requantised values by an e4m3 step;
// 6 % per token. Against the float64 layer the e4m3 quantisation of both GEMMs' inputs adds its own error (about
// 2^-4 / sqrt(3) = 3.6 % of each input, measured 4-5 % for the int4 layers' outputs): we allow 12.5 % (2^-3) per
// token there, which a wrong bias, clamp or gate/up order passes by far.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "gpu_test_util.h"
#include "moe_test_layer.h"
#include "reference/gpt_oss.h"
#include "test_data.h"
#include "gpt_oss_layer.h"
#include "w4a8moe/checkpoint.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::CapturedGraph;
using testing::DeviceBuffer;

constexpr double kSwigluLimit = 7.0;

// A gpt-oss layer: experts in the checkpoint's order (the reference's), packed on the device in the layer's order by
// the program's own packing (tools/gpt_oss_layer.h: reorder, prepack, fp32 biases).
struct GptOssLayer {
  MoeShape shape;
  Mxfp4LayerExperts checkpoint;
  reference::GptOssExperts dequantised;
  tools::PackedGptOssLayer packed;
  std::vector<int32_t> expert_map;  // empty: every expert local
  DeviceBuffer expert_map_device;
};

// Packs `experts` (a rank's, expert_map sending the global ids to them) for `shape`.
std::unique_ptr<GptOssLayer> pack_layer(MoeShape const& shape, Mxfp4LayerExperts experts,
                                        std::vector<int32_t> expert_map = {}) {
  auto layer = std::make_unique<GptOssLayer>();
  layer->shape = shape;
  layer->checkpoint = std::move(experts);
  Mxfp4LayerExperts const& c = layer->checkpoint;
  layer->dequantised = reference::dequantize_gpt_oss_experts(
      c.num_experts, c.hidden_size, c.intermediate_size, c.gemm1_blocks.data(), c.gemm1_scales.data(),
      c.gemm1_bias.data(), c.gemm2_blocks.data(), c.gemm2_scales.data(), c.gemm2_bias.data());
  Status const status = tools::pack_gpt_oss_layer(c, &layer->packed);
  EXPECT_TRUE(status.ok()) << status.to_string();
  layer->expert_map = std::move(expert_map);
  if (!layer->expert_map.empty()) layer->expert_map_device = DeviceBuffer(layer->expert_map);
  return layer;
}

// Random experts; GEMM1's biases spread past the clamp limit (some gates and ups clamp), GEMM2's about its outputs'
// size.
Mxfp4LayerExperts random_experts(MoeShape const& shape, std::mt19937_64& rng) {
  int const e = shape.num_local_experts, h = shape.hidden, inter = shape.inter;
  auto const w1 = testing::random_mxfp4_experts({e, 2 * inter, h, kGroupSize}, rng);
  auto const w2 = testing::random_mxfp4_experts({e, h, inter, kGroupSize}, rng);
  Mxfp4LayerExperts c;
  c.num_experts = e;
  c.hidden_size = h;
  c.intermediate_size = inter;
  c.gemm1_blocks = w1.blocks;
  c.gemm1_scales = w1.scales;
  c.gemm2_blocks = w2.blocks;
  c.gemm2_scales = w2.scales;
  std::normal_distribution<float> wide(0.0f, 4.0f), narrow(0.0f, 0.3f);
  for (int i = 0; i < e * 2 * inter; ++i) c.gemm1_bias.push_back(float_to_bf16(wide(rng)));
  for (int i = 0; i < e * h; ++i) c.gemm2_bias.push_back(float_to_bf16(narrow(rng)));
  return c;
}

std::unique_ptr<GptOssLayer> make_layer(MoeShape const& shape, std::mt19937_64& rng) {
  return pack_layer(shape, random_experts(shape, rng));
}

struct Call {
  testing::Inputs in;
  DeviceBuffer hidden, logits, out, workspace;
};

Call make_call(GptOssLayer const& layer, int64_t tokens, bool fp16, std::mt19937_64& rng) {
  Call call;
  call.in = testing::make_inputs(layer.shape, tokens, /*by_logits=*/true, fp16, rng);
  call.hidden = DeviceBuffer(call.in.hidden_bits);
  call.logits = DeviceBuffer(call.in.logits);
  call.out = DeviceBuffer(size_t(tokens) * layer.shape.hidden * sizeof(uint16_t));
  call.workspace = DeviceBuffer(moe_workspace_bytes(layer.shape, tokens));
  return call;
}

MoeForwardArgs forward_args(GptOssLayer const& layer, Call const& call, bool fp16) {
  MoeForwardArgs a;
  a.shape = layer.shape;
  a.gemm1_weights = layer.packed.gemm1.get();
  a.gemm2_weights = layer.packed.gemm2.get();
  a.weight_layout = PackedLayout::kMxfp4;
  a.activation = MoeActivation::kGptOssSwiglu;
  a.swiglu_limit = float(kSwigluLimit);
  a.gemm1_bias = layer.packed.gemm1_bias.as<float>();
  a.gemm2_bias = layer.packed.gemm2_bias.as<float>();
  a.expert_map = layer.expert_map.empty() ? nullptr : layer.expert_map_device.as<int32_t>();
  a.num_tokens = call.in.tokens;
  a.hidden = call.hidden.get();
  a.act_type = fp16 ? ActivationType::kFP16 : ActivationType::kBF16;
  a.router_logits = call.logits.get();
  a.renormalize = true;  // gpt-oss: the softmax over the top-k logits
  a.out = call.out.get();
  a.workspace = call.workspace.get();
  a.workspace_bytes = call.workspace.bytes();
  return a;
}

std::vector<float> download(Call const& call, int hidden, bool fp16) {
  auto const bits = call.out.to_host<uint16_t>();
  std::vector<float> out(size_t(call.in.tokens) * hidden);
  for (size_t i = 0; i < out.size(); ++i) out[i] = fp16 ? fp16_to_float(bits[i]) : bf16_to_float(bits[i]);
  return out;
}

// The output of sampled tokens against both references, computed on the host's threads.
void expect_matches_references(GptOssLayer const& layer, Call const& call, bool fp16, std::mt19937_64& rng) {
  int const h = layer.shape.hidden, k = layer.shape.top_k, e = layer.shape.num_experts;
  std::vector<float> const gpu = download(call, h, fp16);
  std::vector<int64_t> const tokens = testing::sample_tokens(call.in.tokens, rng);
  std::vector<float> const staged = reference::gpt_oss_layer_as_staged(call.in.hidden, call.in.topk, k,
                                                                       layer.dequantised, kSwigluLimit, fp16, tokens,
                                                                       host_threads());
  std::vector<double> exact(tokens.size() * h);  // gpt-oss's own layer in float64, a token a thread
  parallel_for(int64_t(tokens.size()), 1, host_threads(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int64_t const t = tokens[size_t(i)];
      std::vector<float> const hidden(call.in.hidden.begin() + t * h, call.in.hidden.begin() + (t + 1) * h);
      std::vector<float> const logits(call.in.logits.begin() + t * e, call.in.logits.begin() + (t + 1) * e);
      std::vector<double> const own = reference::gpt_oss_moe_layer(hidden, logits, 1, k, layer.dequantised,
                                                                   kSwigluLimit);
      std::copy(own.begin(), own.end(), exact.begin() + i * h);
    }
  });
  testing::expect_tokens_match(gpu, h, tokens, staged);
  double worst = 0.0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    double err = 0.0, norm = 0.0;
    for (int c = 0; c < h; ++c) {
      double const d = double(gpu[size_t(tokens[i]) * h + c]) - exact[i * h + c];
      err += d * d;
      norm += exact[i * h + c] * exact[i * h + c];
    }
    double const relative = std::sqrt(err / norm);
    worst = std::max(worst, relative);
    EXPECT_LE(relative, 0.125) << "token " << tokens[i] << " against the float64 layer";
  }
  std::printf("  worst per-token error against gpt-oss's float64 layer %.2e\n", worst);
}

void run_and_check(GptOssLayer const& layer, int64_t tokens, bool fp16, std::mt19937_64& rng) {
  SCOPED_TRACE(std::to_string(tokens) + " tokens" + (fp16 ? ", fp16" : ", bf16"));
  Call call = make_call(layer, tokens, fp16, rng);
  ASSERT_CUDA(cudaMemset(call.out.get(), 0xFF, call.out.bytes()));  // poison: NaN in bf16 and fp16
  ASSERT_CUDA(cudaMemset(call.workspace.get(), 0xFF, call.workspace.bytes()));
  ASSERT_OK(moe_forward(forward_args(layer, call, fp16)));
  ASSERT_CUDA(cudaDeviceSynchronize());
  expect_matches_references(layer, call, fp16, rng);
}

// 16 experts, top-4, H = 320 and I = 192 (multiples of 32, off whole 128-groups).
TEST(GptOssLayer, SmallLayerMatchesReferences) {
  SKIP_WITHOUT_HOPPER();
  auto rng = testing::fresh_rng();
  auto const layer = make_layer({16, 16, 4, 320, 192}, rng);
  for (int64_t tokens : {1, 3, 8, 64}) run_and_check(*layer, tokens, false, rng);
  run_and_check(*layer, 5, true, rng);
}

// gpt-oss's H = I = 2880 (8 of its experts, top-4): 23 groups of K with the last one two blocks long.
TEST(GptOssLayer, GptOssSizesMatchReferences) {
  SKIP_WITHOUT_HOPPER();
  auto rng = testing::fresh_rng();
  auto const layer = make_layer({8, 8, 4, 2880, 2880}, rng);
  for (int64_t tokens : {1, 4, 24}) run_and_check(*layer, tokens, false, rng);
}

// Expert parallelism: each of 2 and 4 ranks holds a slice of the experts (expert_map), and the ranks' outputs sum to
// the single rank's. Each rank rounds its partial sum to bf16 once, the single rank its total once: at most 2^-8 of
// each (GEMM2's biases, weighted like the rest, sum over the ranks too).
TEST(GptOssLayer, ExpertParallelRanksSumToOneRank) {
  SKIP_WITHOUT_HOPPER();
  auto rng = testing::fresh_rng();
  MoeShape const whole{16, 16, 4, 320, 192};
  Mxfp4LayerExperts const experts = random_experts(whole, rng);
  auto const single = pack_layer(whole, experts);
  Call call = make_call(*single, 24, false, rng);
  ASSERT_OK(moe_forward(forward_args(*single, call, false)));
  ASSERT_CUDA(cudaDeviceSynchronize());
  std::vector<float> const one = download(call, whole.hidden, false);
  for (int ranks : {2, 4}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    int const per_rank = whole.num_experts / ranks;
    std::vector<double> sum(one.size(), 0.0), magnitude(one.size(), 0.0);
    for (int rank = 0; rank < ranks; ++rank) {
      std::vector<int> ids;
      std::vector<int32_t> map(whole.num_experts, -1);
      for (int i = 0; i < per_rank; ++i) ids.push_back(rank * per_rank + i), map[rank * per_rank + i] = i;
      MoeShape shape = whole;
      shape.num_local_experts = per_rank;
      auto const layer = pack_layer(shape, tools::select_experts(experts, ids), map);
      ASSERT_CUDA(cudaMemset(call.out.get(), 0xFF, call.out.bytes()));
      ASSERT_OK(moe_forward(forward_args(*layer, call, false)));
      ASSERT_CUDA(cudaDeviceSynchronize());
      std::vector<float> const part = download(call, whole.hidden, false);
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += part[i], magnitude[i] += std::fabs(part[i]);
    }
    int failures = 0;
    for (size_t i = 0; i < sum.size(); ++i) {
      double const bound = std::ldexp(magnitude[i] + std::fabs(one[i]), -8);
      if (!(std::fabs(sum[i] - one[i]) <= bound) && failures++ < 5) {
        ADD_FAILURE() << "output " << i << ": ranks sum to " << sum[i] << ", one rank " << one[i];
      }
    }
    EXPECT_EQ(failures, 0);
  }
}

// Captured once at 16 tokens, replayed with new hidden states and logits (new routing) in the captured buffers.
TEST(GptOssLayer, GraphReplayWithNewInputs) {
  SKIP_WITHOUT_HOPPER();
  auto rng = testing::fresh_rng();
  auto const layer = make_layer({16, 16, 4, 320, 192}, rng);
  Call call = make_call(*layer, 16, false, rng);
  CapturedGraph graph;
  ASSERT_NO_FATAL_FAILURE(graph.capture([&](cudaStream_t stream) {
    MoeForwardArgs a = forward_args(*layer, call, false);
    a.stream = stream;
    return moe_forward(a);
  }));
  for (int replay = 0; replay < 3; ++replay) {
    call.in = testing::make_inputs(layer->shape, 16, true, false, rng);
    ASSERT_CUDA(cudaMemcpy(call.hidden.get(), call.in.hidden_bits.data(), call.in.hidden_bits.size() * 2,
                           cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemcpy(call.logits.get(), call.in.logits.data(), call.in.logits.size() * 4,
                           cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemset(call.out.get(), 0xFF, call.out.bytes()));
    ASSERT_CUDA(graph.replay());
    expect_matches_references(*layer, call, false, rng);
  }
}

}  // namespace
}  // namespace w4a8moe
