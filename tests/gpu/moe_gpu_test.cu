// The fused MoE layer on the GPU against the CPU reference (which mirrors the pipeline's roundings): Qwen3-30B-A3B,
// Mixtral-8x7B and DeepSeek-V3 (expert-parallel rank of 32 experts) shapes at 1, 7, 64 and 1000 tokens, router
// logits and skewed precomputed routing; expert parallelism over 1/2/4/8 ranks; CUDA graph replay with new inputs.
// The routing kernels: moe_routing_gpu_test.cu.
//
// Tolerance. Kernel and reference quantise the same values the same way; they differ only in the GEMMs' summation
// order (the reference sums in float64, the fp8 wgmma in its own order with fast accumulation). That moves some
// GEMM1 outputs by one bf16 step, and SiLU(gate) * up then lands a few percent of GEMM2's e4m3 inputs on the other
// side of an e4m3 rounding boundary: one e4m3 step (2^-3) for each such element. That is the pipeline's own
// rounding noise, and it compounds to 1.5-3.5 % per token (relative L2) at K = 2048..7168, measured on an H100
// (2026-11-26). We allow 6 % per token and 15 % of the token's largest output for any element: a wrong expert,
// scale, row or weight moves a token by tens of percent. EveryStageMatchesReference checks each stage separately,
// fed the GPU's own input to that stage, so the rounding noise does not compound there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <utility>

#include "common/float_formats.h"
#include "common/parallel_for.h"
#include "gpu_test_util.h"
#include "moe_test_layer.h"
#include "moe/moe_kernels.h"
#include "moe/workspace_plan.h"
#include "reference/moe_reference.h"
#include "test_data.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::CapturedGraph;
using testing::DeviceBuffer;
using testing::DeviceInputs;
using testing::Inputs;
using testing::Layer;
using testing::download_output;
using testing::expect_tokens_match;
using testing::forward_args;
using testing::fresh_rng;
using testing::make_inputs;
using testing::make_layer;
using testing::prepack_on_device;
using testing::reference_tokens;
using testing::run_and_check;
using testing::sample_tokens;
using testing::upload;

// --- Model shapes -------------------------------------------------------------------------------------------------

struct ModelCase {
  char const* name;
  MoeShape shape;
};

ModelCase const kModels[] = {
    {"qwen3_30b_a3b", {128, 128, 8, 2048, 768}},
    {"mixtral_8x7b", {8, 8, 2, 4096, 14336}},
    {"deepseek_v3_ep8", {256, 32, 8, 7168, 2048}},  // rank 0 of 8: 32 of 256 experts local
};

Layer const& model_layer(ModelCase const& model) {
  static std::map<std::string, std::unique_ptr<Layer>> cache;
  auto& slot = cache[model.name];
  if (!slot) {
    auto rng = fresh_rng();
    slot = make_layer(model.shape, rng);
  }
  return *slot;
}

class MoeModel : public ::testing::TestWithParam<std::tuple<ModelCase, int64_t, bool>> {};

TEST_P(MoeModel, LayerMatchesReference) {
  SKIP_WITHOUT_HOPPER();
  auto const& [model, tokens, by_logits] = GetParam();
  auto rng = fresh_rng();
  run_and_check(model_layer(model), tokens, by_logits, /*fp16=*/false, /*weight_on_input=*/false, rng);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MoeModel,
                         ::testing::Combine(::testing::ValuesIn(kModels), ::testing::Values(1, 7, 64, 1000),
                                            ::testing::Bool()),
                         [](auto const& info) {
                           return std::string(std::get<0>(info.param).name) + "_T" +
                                  std::to_string(std::get<1>(info.param)) +
                                  (std::get<2>(info.param) ? "_logits" : "_skewed_ids");
                         });

// --- Options on a small layer -------------------------------------------------------------------------------------

MoeShape const kSmall{16, 16, 4, 256, 256};

// Every stage against the reference, each fed the GPU's own input to that stage, so a failure names the stage:
// quantised activations and scales bit for bit; GEMM outputs within the GEMM tests' estimate (2^-7 |ref| plus 2^-10
// of sum |a w| per 8192 of K, for the summation order; see gemm_close); the SiLU stage's e4m3 output within one e4m3
// step of the reference computed from the GPU's GEMM1 row (the GPU's ex2 and rcp approximations: a few ulp); the
// unpermuted sum within one bf16 step (plus the fp32 rounding of the k terms where they cancel).
// gemm_config: both GEMMs' config ("" = the heuristic's).
void check_every_stage(std::string const& gemm_config, MoeShape const& shape = {16, 16, 4, 256, 384},
                       int64_t tokens = 50) {
  auto rng = fresh_rng();
  auto const layer = make_layer(shape, rng);
  Inputs const in = make_inputs(shape, tokens, true, false, rng);
  DeviceInputs d = upload(*layer, in, tokens);
  MoeForwardArgs args = forward_args(*layer, in, d, false);
  args.gemm1_config = args.gemm2_config = gemm_config;
  ASSERT_CUDA(cudaMemset(d.workspace.get(), 0xFF, d.workspace.bytes()));  // poison every intermediate
  ASSERT_OK(moe_forward(args));
  ASSERT_CUDA(cudaDeviceSynchronize());

  auto const plan = moe::plan_workspace(shape, tokens);
  auto const ws = d.workspace.to_host<uint8_t>();
  auto view = [&](size_t offset) { return ws.data() + offset; };
  int const k = shape.top_k, h = shape.hidden, inter = shape.inter;
  int const h_columns = padded_k(h), inter_columns = padded_k(inter);  // the activation rows' columns
  int64_t const rows = tokens * k;
  auto const routing = reference::routing_data(in.topk.ids, tokens, k, shape.num_experts, shape.num_local_experts, {});
  auto const* offsets = reinterpret_cast<int64_t const*>(view(plan.offsets));
  auto const* dest_row = reinterpret_cast<int32_t const*>(view(plan.dest_row));
  ASSERT_EQ(std::vector<int64_t>(offsets, offsets + shape.num_local_experts + 1), routing.offsets) << "routing";
  ASSERT_EQ(std::vector<int32_t>(dest_row, dest_row + rows), routing.dest_row) << "routing";

  auto bf16_at = [](uint8_t const* base, size_t index) {
    uint16_t bits;
    std::memcpy(&bits, base + 2 * index, 2);
    return bf16_to_float(bits);
  };
  // The summation term is an estimate of the tensor cores' accumulation error, not a bound: each 32-wide step adds
  // its products into the fp32 accumulators at about 14 bits, the errors of the K / 32 steps add like a random walk
  // (sqrt(K / 32) * 2^-14 <= 2^-10 at K <= 8192), and past 8192 the allowance grows with K (at K = 32768 one output
  // in 6144 was past 2^-10). A walk's tail passes any multiple of its typical size now and then (H = I = 2880: one
  // output of ~230 000 at 1.04), so up to one output in 10^4 may pass the estimate, none twice it; a wrong scale,
  // row or channel moves whole rows by orders of magnitude. The worst ratio is printed.
  // Same sign and at most one code apart: e4m3 codes are ordered like their magnitudes.
  auto e4m3_step = [](uint8_t a, uint8_t b) {
    return (a & 0x80) == (b & 0x80) && std::abs(int(a & 0x7F) - int(b & 0x7F)) <= 1;
  };
  // The rows are checked on the host's threads, each chunk counting into its own tally, merged at its end.
  struct Tally {
    int bad_act1 = 0, bad_g1 = 0, bad_act2 = 0, bad_g2 = 0;
    float worst_g1 = 0.0f, worst_g2 = 0.0f;
    int64_t checked_gemm_outputs = 0, past_estimate = 0;
  } total;
  std::mutex total_mutex;
  parallel_for(rows, 64, host_threads(), [&](int64_t first_row, int64_t end_row) {
    Tally tally;
    auto gemm_close = [&](float got, float want, float magnitude, int gemm_k, float& worst) {
      float const ratio = std::fabs(got - want) / (std::ldexp(std::fabs(want), -7) + std::ldexp(magnitude, -10));
      float const allowance = float(std::max(1, gemm_k / 8192));
      worst = std::max(worst, ratio);
      ++tally.checked_gemm_outputs;
      tally.past_estimate += ratio > allowance;
      return ratio <= 2.0f * allowance;
    };
    std::vector<uint8_t> q(std::max(h, inter));
    std::vector<float> ref(std::max(2 * inter, h)), magnitude(ref.size()), hmid(inter), row(2 * inter);
    for (int64_t r = first_row; r < end_row; ++r) {
      int const slot = routing.row_slot[r];
      int64_t const t = slot / k;
      int const e =
          int(std::upper_bound(routing.offsets.begin(), routing.offsets.end(), r) - routing.offsets.begin()) - 1;
      // permute + quantize
      float scale;
      reference::quantize_row(in.hidden.data() + t * h, h, q.data(), &scale);
      uint8_t const* act1 = view(plan.act1) + r * h_columns;
      float const scale1 = reinterpret_cast<float const*>(view(plan.scale1))[r];
      tally.bad_act1 += std::memcmp(act1, q.data(), h) != 0 || scale1 != scale ||
                        std::any_of(act1 + h, act1 + h_columns, [](uint8_t b) { return b != 0; });  // zeros past H
      // GEMM1 from the GPU's quantised row
      reference::expert_gemm_row(layer->weights.gemm1, e, act1, scale1, false, ref.data(), magnitude.data());
      for (int c = 0; c < 2 * inter; ++c) {
        row[c] = bf16_at(view(plan.gemm1_out), r * 2 * inter + c);
        tally.bad_g1 += !gemm_close(row[c], ref[c], magnitude[c], h, tally.worst_g1);
      }
      // SiLU * up + requantise from the GPU's GEMM1 row
      reference::silu_mul(row.data(), inter, hmid.data());
      reference::quantize_row(hmid.data(), inter, q.data(), &scale);
      uint8_t const* act2 = view(plan.act2) + r * inter_columns;
      float const scale2 = reinterpret_cast<float const*>(view(plan.scale2))[r];
      // The row scale is amax / 448; each SiLU*up value may be off by (|gate| + 13) * 2^-24 of itself: the GPU's
      // ex2/rcp approximations (2 + 1 ulp), gate * log2 e rounded (|gate| * 2^-24 in the exponent) and the products,
      // plus this reference's own std::exp and division (kernel_common.cuh silu_mul).
      float amax_slack = 0.0f;
      for (int c = 0; c < inter; ++c) {
        amax_slack = std::max(amax_slack, (std::fabs(row[c]) + 13.0f) * std::ldexp(std::fabs(hmid[c]), -24));
      }
      bool act2_ok = std::fabs(scale2 - scale) <= amax_slack / 448.0f + std::ldexp(scale, -23);
      for (int c = 0; c < inter; ++c) act2_ok = act2_ok && e4m3_step(act2[c], q[c]);
      act2_ok = act2_ok && std::all_of(act2 + inter, act2 + inter_columns, [](uint8_t b) { return b == 0; });
      tally.bad_act2 += !act2_ok;
      // GEMM2 from the GPU's quantised row
      reference::expert_gemm_row(layer->weights.gemm2, e, act2, scale2, false, ref.data(), magnitude.data());
      for (int c = 0; c < h; ++c) {
        tally.bad_g2 +=
            !gemm_close(bf16_at(view(plan.gemm2_out), r * h + c), ref[c], magnitude[c], inter, tally.worst_g2);
      }
    }
    std::lock_guard<std::mutex> lock(total_mutex);
    total.bad_act1 += tally.bad_act1;
    total.bad_g1 += tally.bad_g1;
    total.bad_act2 += tally.bad_act2;
    total.bad_g2 += tally.bad_g2;
    total.worst_g1 = std::max(total.worst_g1, tally.worst_g1);
    total.worst_g2 = std::max(total.worst_g2, tally.worst_g2);
    total.checked_gemm_outputs += tally.checked_gemm_outputs;
    total.past_estimate += tally.past_estimate;
  });
  int bad_out = 0;
  // Unpermute from the GPU's GEMM2 rows
  auto const out = download_output(d, tokens, h, false);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int c = 0; c < h; ++c) {
      float sum = 0.0f, magnitude = 0.0f;
      for (int j = 0; j < k; ++j) {
        float const term =
            in.topk.weights[t * k + j] * bf16_at(view(plan.gemm2_out), size_t(dest_row[t * k + j]) * h + c);
        sum += term;
        magnitude += std::fabs(term);
      }
      // One bf16 step, plus the fp32 rounding of k terms (the GPU fuses multiply and add) when they cancel.
      float const want = bf16_to_float(float_to_bf16(sum));
      bad_out += !(std::fabs(out[t * h + c] - want) <= std::ldexp(std::fabs(want), -7) + std::ldexp(magnitude, -20));
    }
  }
  std::printf("  worst GEMM error over the accumulation estimate: GEMM1 %.2f, GEMM2 %.2f (%lld of %lld past it)\n",
              total.worst_g1, total.worst_g2, (long long)total.past_estimate, (long long)total.checked_gemm_outputs);
  EXPECT_EQ(total.bad_act1, 0) << "rows whose quantised activations differ";
  EXPECT_EQ(total.bad_g1, 0) << "GEMM1 outputs out of the GEMM bound";
  EXPECT_EQ(total.bad_act2, 0) << "rows whose SiLU*up quantisation differs by more than one e4m3 step";
  EXPECT_EQ(total.bad_g2, 0) << "GEMM2 outputs out of the GEMM bound";
  EXPECT_LE(total.past_estimate * 10000, total.checked_gemm_outputs) << "GEMM outputs past the accumulation estimate";
  EXPECT_EQ(bad_out, 0) << "unpermuted outputs more than one bf16 step off";
}

TEST(MoeLayer, EveryStageMatchesReference) {
  SKIP_WITHOUT_HOPPER();
  check_every_stage("");
}

// The token-row kernels' longer rows: I = 1536 holds two vectors a thread in the SiLU stage, I = 32768 (the limit)
// four in 1024 threads; H = 33792 is longer than the four a thread of the permute holds (the rest read twice).
TEST(MoeLayer, EveryStageMatchesReferenceForLongRows) {
  SKIP_WITHOUT_HOPPER();
  for (auto [hidden, inter] : {std::pair{256, 1536}, std::pair{256, 32768}, std::pair{33792, 256}}) {
    SCOPED_TRACE("H " + std::to_string(hidden) + ", I " + std::to_string(inter));
    check_every_stage("", MoeShape{4, 4, 2, hidden, inter}, 12);
  }
}

// More rows than the SMs hold SiLU blocks of (2112 at I = 256, 1188 at I = 1536 on 132 SMs): the blocks take
// several rows each.
TEST(MoeLayer, EveryStageMatchesReferenceWithSeveralRowsABlock) {
  SKIP_WITHOUT_HOPPER();
  for (auto [inter, tokens] : {std::pair{256, int64_t(700)}, std::pair{1536, int64_t(400)}}) {
    SCOPED_TRACE("I " + std::to_string(inter) + ", tokens " + std::to_string(tokens));
    check_every_stage("", MoeShape{16, 16, 4, 256, inter}, tokens);
  }
}

// H and I off whole 128-groups: every stage, the activation rows' padding (zeros over a poisoned workspace) included.
TEST(MoeLayer, EveryStageMatchesReferenceForSizesOffWholeGroups) {
  SKIP_WITHOUT_HOPPER();
  check_every_stage("", MoeShape{16, 16, 4, 208, 144}, 60);
  check_every_stage("", MoeShape{16, 16, 4, 2880, 2880}, 20);
}

// The few-slots routing (one warp sorts at most 32 slots: 8 tokens of top-4) in the layer, on the heuristic's configs
// and on a CUTLASS config, whose per-expert arrays that routing fills; 9 tokens take the one-block routing.
TEST(MoeLayer, EveryStageMatchesReferenceOnTheFewSlotsRouting) {
  SKIP_WITHOUT_HOPPER();
  static_assert(moe::kFewRoutingSlots == 8 * 4, "the tokens below straddle the few-slots limit");
  for (int64_t tokens : {1, 8, 9}) {
    for (char const* config : {"", "128x16_1x1_coop"}) {
      SCOPED_TRACE("tokens " + std::to_string(tokens) + ", config '" + config + "'");
      check_every_stage(config, MoeShape{16, 16, 4, 256, 384}, tokens);
    }
  }
}

// The decode kernel in the layer: 50 tokens x 4 over 16 experts make several 8-row chunks per expert. As GEMM1 it
// launches as the permute kernel starts and awaits the routing's end (MoePlan::gemm1_at_routing_end), after the
// one-block routing at 50 tokens and after the chunked routing at 2100 (8400 slots).
TEST(MoeLayer, EveryStageMatchesReferenceOnTheDecodeKernel) {
  SKIP_WITHOUT_HOPPER();
  check_every_stage("16x8_1x1_decode");
  static_assert(2100 * 4 > moe::kOneBlockRoutingSlots, "the chunked routing");
  check_every_stage("16x8_1x1_decode", MoeShape{16, 16, 4, 256, 384}, 2100);
}

// The wgmma streaming kernel in the layer: chunks of 8 rows, several per expert.
TEST(MoeLayer, EveryStageMatchesReferenceOnTheStreamKernel) {
  SKIP_WITHOUT_HOPPER();
  check_every_stage("64x8_stream");
}

TEST(MoeLayer, Fp16Activations) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto const layer = make_layer(kSmall, rng);
  run_and_check(*layer, 50, true, /*fp16=*/true, false, rng);
}

TEST(MoeLayer, RouterWeightOnInput) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto const layer = make_layer(kSmall, rng);
  run_and_check(*layer, 50, true, false, /*weight_on_input=*/true, rng);
  run_and_check(*layer, 50, false, false, /*weight_on_input=*/true, rng);
}

TEST(MoeLayer, ZeroTokensIsANoOp) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto const layer = make_layer(kSmall, rng);
  Inputs const in = make_inputs(kSmall, 0, true, false, rng);
  DeviceInputs d = upload(*layer, in, 0);
  ASSERT_OK(moe_forward(forward_args(*layer, in, d, false)));
  ASSERT_CUDA(cudaDeviceSynchronize());
  // Stage events still mark the (empty) stages, so that per-stage timing of an idle rank reads zeros, not the last
  // layer's times or an error.
  std::vector<cudaEvent_t> events(kMoeStageCount + 1);
  for (auto& event : events) ASSERT_CUDA(cudaEventCreate(&event));
  MoeForwardArgs args = forward_args(*layer, in, d, false);
  args.stage_events = events.data();
  Status const status = moe_forward(args);
  cudaError_t const sync = cudaDeviceSynchronize();
  float first_to_last = -1.0f;
  cudaError_t const elapsed = cudaEventElapsedTime(&first_to_last, events.front(), events.back());
  for (auto& event : events) cudaEventDestroy(event);
  ASSERT_OK(status);
  ASSERT_CUDA(sync);
  ASSERT_CUDA(elapsed);
  EXPECT_GE(first_to_last, 0.0f);
}

// Every rank holds a slice of the experts; the ranks' outputs sum to the single-rank output. Tokens whose experts
// are all elsewhere come out as exact zeros on that rank.
void expect_ranks_sum_to_single_rank(int64_t tokens) {
  auto rng = fresh_rng();
  std::vector<uint16_t> scales1, scales2;
  MoeShape const whole_shape{16, 16, 4, 256, 384};
  auto const gemm1 = testing::random_experts({16, 2 * 384, 256, 128}, rng, &scales1);
  auto const gemm2 = testing::random_experts({16, 256, 384, 128}, rng, &scales2);
  Inputs const in = make_inputs(whole_shape, tokens, true, false, rng);

  auto run_rank = [&](int ranks, int rank) {
    int const per_rank = 16 / ranks;
    auto slice = [&](reference::QuantizedExperts const& w, std::vector<uint16_t> const& scales) {
      auto const& s = w.shape;
      size_t const q_per = size_t(s.n) * s.k, sg_per = size_t(s.n) * group_count(s.k);
      reference::QuantizedExperts part;
      part.shape = {per_rank, s.n, s.k, 128};
      part.q.assign(w.q.begin() + rank * per_rank * q_per, w.q.begin() + (rank + 1) * per_rank * q_per);
      std::vector<uint16_t> part_scales(scales.begin() + rank * per_rank * sg_per,
                                        scales.begin() + (rank + 1) * per_rank * sg_per);
      return prepack_on_device(part, part_scales);
    };
    Layer layer;
    layer.shape = {16, per_rank, 4, 256, 384};
    layer.gemm1 = slice(gemm1, scales1);
    layer.gemm2 = slice(gemm2, scales2);
    if (ranks > 1) {
      layer.expert_map.assign(16, -1);
      for (int i = 0; i < per_rank; ++i) layer.expert_map[rank * per_rank + i] = i;
      layer.expert_map_device = DeviceBuffer(layer.expert_map);
    }
    DeviceInputs d = upload(layer, in, tokens);
    Status const status = moe_forward(forward_args(layer, in, d, false));
    EXPECT_TRUE(status.ok()) << status.to_string();
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    return download_output(d, tokens, 256, false);
  };

  auto const single = run_rank(1, 0);
  for (int ranks : {2, 4, 8}) {
    SCOPED_TRACE("ranks " + std::to_string(ranks));
    std::vector<double> sum(single.size(), 0.0), magnitude(single.size(), 0.0);
    for (int r = 0; r < ranks; ++r) {
      auto const part = run_rank(ranks, r);
      for (size_t i = 0; i < sum.size(); ++i) {
        sum[i] += part[i];
        magnitude[i] += std::fabs(part[i]);
      }
    }
    // Each rank rounds its partial sum to bf16 once, the single rank its total once: at most 2^-8 of each.
    int failures = 0;
    for (size_t i = 0; i < sum.size(); ++i) {
      double const bound = std::ldexp(magnitude[i] + std::fabs(single[i]), -8);
      if (std::fabs(sum[i] - single[i]) > bound && failures++ < 5) {
        ADD_FAILURE() << "element " << i << ": sum over ranks " << sum[i] << ", single rank " << single[i];
      }
    }
  }
}

TEST(MoeLayer, ExpertParallelRanksSumToSingleRank) {
  SKIP_WITHOUT_HOPPER();
  expect_ranks_sum_to_single_rank(77);
}

// At 1500 tokens the permute's grid takes more than one wave, so it leaves tokens with no local expert unread, and
// the SiLU stage's blocks take several rows each.
TEST(MoeLayer, ExpertParallelRanksSumToSingleRankAtPrefill) {
  SKIP_WITHOUT_HOPPER();
  expect_ranks_sum_to_single_rank(1500);
}

// Captured once, replayed with new hidden states and new router logits written into the captured buffers (so new
// routing): on the heuristic's configs and on the decode kernel, which sets its shared-memory attribute during the
// capture.
class MoeGraph : public ::testing::TestWithParam<std::string> {};

// Captures the layer at 64 tokens with both GEMMs on `config` (empty: the heuristic's) and checks `replays`
// replays, each with new hidden states and router logits written into the captured buffers.
void expect_graph_replays_match(Layer const& layer, std::string const& config, int replays, std::mt19937_64& rng) {
  MoeShape const& shape = layer.shape;
  int64_t const tokens = 64;
  Inputs in = make_inputs(shape, tokens, true, false, rng);
  DeviceInputs d = upload(layer, in, tokens);
  MoeForwardArgs args = forward_args(layer, in, d, false);
  args.gemm1_config = args.gemm2_config = config;
  CapturedGraph graph;
  ASSERT_NO_FATAL_FAILURE(graph.capture([&](cudaStream_t stream) {
    args.stream = stream;
    return moe_forward(args);
  }));
  for (int replay = 0; replay < replays; ++replay) {
    in = make_inputs(shape, tokens, true, false, rng);
    ASSERT_CUDA(cudaMemcpy(d.hidden.get(), in.hidden_bits.data(), in.hidden_bits.size() * 2, cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemcpy(d.logits.get(), in.logits.data(), in.logits.size() * 4, cudaMemcpyHostToDevice));
    ASSERT_CUDA(cudaMemset(d.out.get(), 0xFF, d.out.bytes()));
    ASSERT_CUDA(graph.replay());
    auto const gpu = download_output(d, tokens, shape.hidden, false);
    auto const sample = sample_tokens(tokens, rng);
    expect_tokens_match(gpu, shape.hidden, sample, reference_tokens(layer, in, sample, false, false));
  }
}

TEST_P(MoeGraph, CaptureReplaysWithNewInputs) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  auto const layer = make_layer(MoeShape{32, 32, 4, 512, 256}, rng);
  expect_graph_replays_match(*layer, GetParam(), 3, rng);
}

INSTANTIATE_TEST_SUITE_P(Configs, MoeGraph, ::testing::Values("", "16x8_1x1_decode", "16x16_1x1_decode", "64x8_stream"),
                         [](auto const& info) { return info.param.empty() ? std::string("Heuristic") : info.param; });

// The exact-scale layout through the layer: every exact config's chunk size is reached (1 to 1000 tokens), router
// logits and skewed ids, an expert-parallel rank, bf16 and fp16, and a graph replayed with new routing.
TEST(MoeLayer, ExactScaleLayoutMatchesReference) {
  SKIP_WITHOUT_HOPPER();
  auto rng = fresh_rng();
  for (MoeShape const shape : {MoeShape{64, 64, 8, 512, 384}, MoeShape{256, 32, 8, 768, 256},
                               MoeShape{32, 32, 4, 208, 144}}) {  // the last: sizes off whole 128-groups
    auto const layer = make_layer(shape, rng, PackedLayout::kExactScales);
    for (int64_t tokens : {1, 7, 64, 1000}) {
      for (bool by_logits : {true, false}) {
        SCOPED_TRACE("E " + std::to_string(shape.num_local_experts) + "/" + std::to_string(shape.num_experts) +
                     ", tokens " + std::to_string(tokens) + (by_logits ? ", logits" : ", ids"));
        run_and_check(*layer, tokens, by_logits, /*fp16=*/tokens == 7, /*weight_on_input=*/false, rng);
      }
    }
  }
  // Every exact config forced, and a graph replayed with new inputs.
  MoeShape const shape{32, 32, 4, 512, 256};
  auto const layer = make_layer(shape, rng, PackedLayout::kExactScales);
  for (auto const& config : gemm_config_names(PackedLayout::kExactScales)) {
    SCOPED_TRACE(config);
    expect_graph_replays_match(*layer, config, 2, rng);
  }
}

}  // namespace
}  // namespace w4a8moe
