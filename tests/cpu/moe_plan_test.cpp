// The MoE layer's plan: one launch or stages, the GEMMs' configs and shapes, the routing path, which GEMMs' arrays
// the routing fills, the workspace, for the shapes of the benchmark models; and how the unpermute splits its rows.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "moe/decode_layer.h"
#include "moe/moe_kernels.h"
#include "moe/moe_plan.h"

namespace w4a8moe::moe {
namespace {

MoeShape const kQwen3{128, 128, 8, 2048, 768};
MoeShape const kDeepSeekEp8{256, 32, 8, 7168, 2048};
MoeShape const kMixtral{8, 8, 2, 4096, 14336};

TEST(MoePlan, DecodeRoutesInOneBlockAndSkipsArraysTheStreamingKernelsDoNotRead) {
  MoePlan const p = plan_moe(kQwen3, 1, 0);
  EXPECT_EQ(p.rows, 8);
  EXPECT_EQ(p.expected_local_rows, 8);
  EXPECT_TRUE(p.one_block_routing);
  EXPECT_EQ(p.gemm1.shape.n, 2 * 768);
  EXPECT_EQ(p.gemm1.shape.k, 2048);
  EXPECT_EQ(p.gemm2.shape.n, 2048);
  EXPECT_EQ(p.gemm2.shape.k, 768);
  EXPECT_EQ(p.gemm1.config, "16x8_1x1_decode");  // the heuristic's pick (heuristic_test.cpp)
  EXPECT_FALSE(p.gemm1.arrays_from_routing);
  EXPECT_FALSE(p.gemm2.arrays_from_routing);
}

TEST(MoePlan, OneBlockRoutingFillsTheArraysOfTheGemmsThatReadThem) {
  // Slots that route in one block (Mixtral at 64 tokens: 128, Qwen3 at 16: 128): a CUTLASS config reads per-expert
  // arrays (Mixtral's GEMM1, 16 rows an expert), the wgmma streaming kernel does not (Qwen3's GEMM2).
  MoePlan const mixtral = plan_moe(kMixtral, 64, 0);
  EXPECT_TRUE(mixtral.one_block_routing);
  EXPECT_EQ(mixtral.gemm1.config, "256x64_1x1_coop");
  EXPECT_TRUE(mixtral.gemm1.arrays_from_routing);
  MoePlan const p = plan_moe(kQwen3, 16, 0);
  EXPECT_TRUE(p.one_block_routing);
  EXPECT_EQ(p.gemm2.config, "64x8_stream");
  EXPECT_FALSE(p.gemm2.arrays_from_routing);
  // A caller's configs win.
  MoePlanOptions options;
  options.gemm1_config = "16x8_1x1_decode";
  options.gemm2_config = "128x16_1x1_coop";
  MoePlan const forced = plan_moe(kQwen3, 16, 0, options);
  EXPECT_EQ(forced.gemm1.config, "16x8_1x1_decode");
  EXPECT_FALSE(forced.gemm1.arrays_from_routing);
  EXPECT_EQ(forced.gemm2.config, "128x16_1x1_coop");
  EXPECT_TRUE(forced.gemm2.arrays_from_routing);
}

TEST(MoePlan, OnlyTheDecodeKernelWorksBeforeItsWait) {
  // What the SiLU kernel's early launch of GEMM2 follows (bench/NOTES.md §93): the decode kernel (Qwen3 at 1 token),
  // not the wgmma streaming kernels (Mixtral at 1 token, Qwen3 at 16) nor CUTLASS's (Mixtral at 64).
  MoePlan const qwen3 = plan_moe(kQwen3, 1, 0);
  EXPECT_EQ(qwen3.gemm2.config, "16x8_1x1_decode");
  EXPECT_TRUE(qwen3.gemm2.works_before_wait);
  EXPECT_TRUE(qwen3.gemm1.works_before_wait);
  MoePlan const mixtral = plan_moe(kMixtral, 1, 0);
  EXPECT_EQ(mixtral.gemm2.config, "64x8_splitk_stream");
  EXPECT_FALSE(mixtral.gemm2.works_before_wait);
  EXPECT_FALSE(plan_moe(kQwen3, 16, 0).gemm2.works_before_wait);
  EXPECT_FALSE(plan_moe(kMixtral, 64, 0).gemm1.works_before_wait);
  MoePlanOptions options;
  options.gemm2_config = "16x16_1x1_decode";  // a caller's config counts as its kernel
  EXPECT_TRUE(plan_moe(kMixtral, 64, 0, options).gemm2.works_before_wait);
}

TEST(MoePlan, GemmOneAwaitsTheRoutingsEndOnlyOnTheDecodeKernel) {
  // The permute kernel lets GEMM1 launch as it starts only where GEMM1 is the decode kernel, which awaits the
  // routing's end before its search (common/pdl.cuh's third exception); the other GEMM1 kernels read the offsets
  // after their waits, and the one launch has no permute kernel.
  EXPECT_TRUE(plan_moe(kQwen3, 1, 0).gemm1_at_routing_end);
  EXPECT_TRUE(plan_moe(kDeepSeekEp8, 2, 0).gemm1_at_routing_end);
  EXPECT_FALSE(plan_moe(kQwen3, 16, 0).gemm1_at_routing_end);   // 64x8_stream
  EXPECT_FALSE(plan_moe(kMixtral, 1, 0).gemm1_at_routing_end);  // not the decode kernel
  MoePlanOptions options;
  options.path = MoePath::kOneLaunch;
  EXPECT_FALSE(plan_moe(kQwen3, 1, 0, options).gemm1_at_routing_end);
  options = {};
  options.gemm1_config = "16x16_1x1_decode";  // a caller's config counts as its kernel
  EXPECT_TRUE(plan_moe(kQwen3, 16, 0, options).gemm1_at_routing_end);
  // Its word comes first in every plan's workspace, so that layers of other shapes sharing a workspace never keep
  // their data where it is polled, and nothing else overlaps it.
  for (MoeShape const& shape : {kQwen3, kDeepSeekEp8, kMixtral}) {
    for (int64_t tokens : {1, 16, 8192}) {
      WorkspacePlan const w = plan_moe(shape, tokens, 0).workspace;
      EXPECT_EQ(w.routing_end, 0u);
      EXPECT_GE(w.topk_ids, sizeof(uint32_t));
    }
  }
}

TEST(MoePlan, PrefillRoutesInChunks) {
  MoePlan const p = plan_moe(kQwen3, 8192, 0);
  EXPECT_FALSE(p.one_block_routing);  // 65536 slots
  EXPECT_FALSE(p.gemm1.arrays_from_routing);
  EXPECT_FALSE(p.gemm2.arrays_from_routing);
  EXPECT_EQ(p.workspace.total, plan_workspace(kQwen3, 8192).total);
  EXPECT_TRUE(plan_moe(kQwen3, 1024, 0).one_block_routing);   // 8192 slots: the one block's limit
  EXPECT_FALSE(plan_moe(kQwen3, 1025, 0).one_block_routing);  // 8200 slots
}

TEST(MoePlan, ExpertParallelRankExpectsItsShareAndTheWorkspaceFitsMaxTokens) {
  MoePlan const p = plan_moe(kDeepSeekEp8, 16, 64);
  EXPECT_EQ(p.rows, 128);
  EXPECT_EQ(p.expected_local_rows, 16);  // 32 of 256 experts
  EXPECT_EQ(p.gemm1.shape.num_experts, 32);
  EXPECT_EQ(p.workspace.total, plan_workspace(kDeepSeekEp8, 64).total);
  EXPECT_EQ(plan_moe(kDeepSeekEp8, 1, 0).expected_local_rows, 1);  // at least one row
  EXPECT_EQ(moe_gemm1_config(kDeepSeekEp8, 16), p.gemm1.config);  // the public query is the plan's
}

// moe_forward_kernels() names what the call runs: the overrides as given, else the heuristic's configs (the public
// per-GEMM queries'); the one launch where the plan takes it, with the staged path's configs beside it; nothing for
// an invalid shape or no tokens. No pointer in the arguments is read.
TEST(MoePlan, ForwardKernelsAreThePlansForTheArguments) {
  MoeForwardArgs a;
  a.shape = kDeepSeekEp8;
  a.num_tokens = 16;
  MoeForwardKernels const heuristic = moe_forward_kernels(a);
  EXPECT_EQ(heuristic.gemm1_config, moe_gemm1_config(kDeepSeekEp8, 16));
  EXPECT_EQ(heuristic.gemm2_config, moe_gemm2_config(kDeepSeekEp8, 16));
  EXPECT_FALSE(heuristic.gemm1_config.empty());
  a.gemm2_config = "64x8_stream";
  MoeForwardKernels const overridden = moe_forward_kernels(a);
  EXPECT_EQ(overridden.gemm1_config, heuristic.gemm1_config);
  EXPECT_EQ(overridden.gemm2_config, "64x8_stream");
  EXPECT_FALSE(overridden.one_launch);  // an override asks for the staged path
  a.gemm2_config.clear();
  a.num_tokens = 1;
  a.path = MoePath::kOneLaunch;
  MoeForwardKernels const one = moe_forward_kernels(a);
  EXPECT_EQ(one.one_launch, plan_moe(kDeepSeekEp8, 1, 0, {.path = MoePath::kOneLaunch}).one_launch);
  EXPECT_EQ(one.gemm1_config, moe_gemm1_config(kDeepSeekEp8, 1));
  a.num_tokens = 0;
  EXPECT_TRUE(moe_forward_kernels(a).gemm1_config.empty());
  EXPECT_TRUE(moe_gemm1_config(kDeepSeekEp8, 0).empty());  // the queries agree: nothing runs without tokens
  EXPECT_TRUE(moe_gemm2_config(kDeepSeekEp8, 0).empty());
  a.num_tokens = 1;
  a.shape.top_k = 0;
  EXPECT_TRUE(moe_forward_kernels(a).gemm1_config.empty());
}

// C(E - L, k) / C(E, k) from log-gamma, an independent statement of the per-token chance that none of a token's k
// experts is one of the rank's L.
double no_local_slot_chance(MoeShape const& s) {
  double const e = s.num_experts, l = s.num_local_experts, k = s.top_k;
  if (e - l < k) return 0.0;
  return std::exp(std::lgamma(e - l + 1) - std::lgamma(e - l - k + 1) - std::lgamma(e + 1) + std::lgamma(e - k + 1));
}

TEST(MoePlan, RankIdleProbabilityIsTheChanceThatNoTokenHasALocalSlot) {
  MoeShape const one_of_eight{8, 1, 2, 2048, 768};
  EXPECT_DOUBLE_EQ(rank_idle_probability(one_of_eight, 1), 21.0 / 28.0);  // C(7, 2) / C(8, 2)
  EXPECT_DOUBLE_EQ(rank_idle_probability(one_of_eight, 2), (21.0 / 28.0) * (21.0 / 28.0));
  EXPECT_EQ(rank_idle_probability(kQwen3, 1), 0.0);                   // every expert local
  EXPECT_EQ(rank_idle_probability(MoeShape{8, 7, 2, 2048, 768}, 1), 0.0);  // one non-local expert, two slots
  for (MoeShape const& s : {kDeepSeekEp8, MoeShape{4096, 32, 8, 2048, 768}, MoeShape{64, 16, 6, 2048, 768}}) {
    for (int64_t tokens : {1, 2, 8}) {
      // lgamma(4097) is ~3e4, whose last bits are ~4e-12: the log-gamma form agrees to ~1e-11.
      EXPECT_NEAR(rank_idle_probability(s, tokens), std::pow(no_local_slot_chance(s), tokens), 1e-9);
    }
  }
  EXPECT_NEAR(rank_idle_probability(kDeepSeekEp8, 1), 0.338, 0.001);
}

// The one launch where it pays (decode_layer_pays): the exact-scale layout at 1 token, and where a rank is likely
// idle, the lookup-table layout from an idle chance of 0.5, the exact-scale layout from 0.3; neither for experts
// their stripe loop streams slower.
TEST(MoePlan, AutoRunsOneLaunchAtOneTokenOnTheExactLayoutAndOnRanksLikelyIdle) {
  MoeShape const wide{4096, 32, 8, 2048, 768};        // 1 of 128 ranks: idle with chance 0.94 at 1 token, 0.61 at 8
  MoeShape const mixtral_ep8{8, 1, 2, 4096, 14336};   // idle with chance 0.75, but 117M GEMM1 weights (88 MB)
  MoeShape const small_ep8{8, 1, 2, 2048, 768};
  MoePlanOptions exact;
  exact.layout = PackedLayout::kExactScales;
  struct Case {
    MoeShape shape;
    int64_t tokens;
    bool lookup_one_launch, exact_one_launch;
  };
  for (Case const& c : {Case{kQwen3, 1, false, true},  // the exact-scale layout at 1 token: busy ranks too
                        Case{kQwen3, 2, false, false},
                        Case{kDeepSeekEp8, 1, false, true},  // idle chance 0.34
                        Case{kDeepSeekEp8, 2, false, false},  // 0.11
                        Case{kDeepSeekEp8, 8, false, false}, Case{kMixtral, 1, false, false},
                        Case{mixtral_ep8, 1, false, false}, Case{small_ep8, 1, true, true},  // 0.75
                        Case{small_ep8, 2, true, true},                                   // 0.56
                        Case{small_ep8, 3, false, true},                                  // 0.42
                        Case{small_ep8, 5, false, false}}) {                              // 0.24
    SCOPED_TRACE("E " + std::to_string(c.shape.num_experts) + " of which " +
                 std::to_string(c.shape.num_local_experts) + " local, H " + std::to_string(c.shape.hidden) +
                 ", tokens " + std::to_string(c.tokens));
    EXPECT_EQ(plan_moe(c.shape, c.tokens, 0).one_launch, c.lookup_one_launch);
    MoePlan const p = plan_moe(c.shape, c.tokens, 0, exact);
    EXPECT_EQ(p.one_launch, c.exact_one_launch);
    EXPECT_EQ(p.group_sums, !c.exact_one_launch);  // only the staged GEMMs take them
  }
  // Precomputed top-k (4096 experts are past the one warp router); a workspace for more tokens is fine.
  MoePlanOptions from_topk;
  from_topk.from_logits = false;
  EXPECT_TRUE(plan_moe(wide, 8, 64, from_topk).one_launch);
  EXPECT_FALSE(plan_moe(wide, 9, 0, from_topk).one_launch);  // past the kernel's 8 tokens
}

TEST(MoePlan, OneLaunchWheneverItFitsWhenAskedAndNeverWhenStaged) {
  MoePlanOptions options;
  options.path = MoePath::kOneLaunch;
  for (int64_t tokens = 1; tokens <= 8; ++tokens) EXPECT_TRUE(plan_moe(kQwen3, tokens, 0, options).one_launch);
  EXPECT_FALSE(plan_moe(kQwen3, 9, 0, options).one_launch);
  options.path = MoePath::kStaged;
  EXPECT_FALSE(plan_moe(kDeepSeekEp8, 1, 0, options).one_launch);
}

// The exact-scale layout staged: its own GEMM configs and the activations' group sums; the workspace holds them
// whichever layout runs.
TEST(MoePlan, ExactLayoutHasItsOwnConfigsAndGroupSums) {
  MoePlanOptions options;
  options.layout = PackedLayout::kExactScales;
  options.path = MoePath::kStaged;
  for (int64_t tokens : {1, 4, 16, 1024}) {
    MoePlan const p = plan_moe(kDeepSeekEp8, tokens, 0, options);
    EXPECT_FALSE(p.one_launch);
    EXPECT_TRUE(p.group_sums);
    EXPECT_NE(p.gemm1.config.find("_exact"), std::string::npos) << p.gemm1.config;
    EXPECT_NE(p.gemm2.config.find("_exact"), std::string::npos) << p.gemm2.config;
    EXPECT_FALSE(p.gemm1.arrays_from_routing);
    EXPECT_FALSE(p.gemm2.arrays_from_routing);
  }
  EXPECT_EQ(plan_moe(kQwen3, 1, 0, options).gemm1.config, "64x8_exact");
  EXPECT_EQ(plan_moe(kQwen3, 8192, 0, options).gemm1.config, "128x128_exact");
  EXPECT_FALSE(plan_moe(kQwen3, 1, 0).group_sums);
  WorkspacePlan const w = plan_workspace(kQwen3, 64);
  EXPECT_GE(w.sums2 - w.sums1, activation_group_sums_bytes(64 * 8, kQwen3.hidden));
  EXPECT_GE(w.total - w.sums2, activation_group_sums_bytes(64 * 8, kQwen3.inter));
}

// H and I that are not multiples of 128 (gpt-oss: 2880): the weights keep the model's K, the activation rows and
// group sums hold padded_k of it, and the one-launch layer's fp32 SiLU rows fit where GEMM1's output goes.
TEST(MoePlan, SizesOffWholeGroupsPadTheActivationRows) {
  MoeShape const odd{32, 32, 4, 2880, 2880};
  EXPECT_TRUE(validate_moe_shape(odd).ok());
  EXPECT_FALSE(validate_moe_shape({32, 32, 4, 2888, 2880}).ok());
  EXPECT_FALSE(validate_moe_shape({32, 32, 4, 2880, 2872}).ok());
  EXPECT_EQ(gemm1_shape(odd).k, 2880);
  EXPECT_EQ(gemm2_shape(odd).k, 2880);
  int64_t const rows = 16 * 4;
  WorkspacePlan const w = plan_workspace(odd, 16);
  EXPECT_GE(w.scale1 - w.act1, size_t(rows * 2944));
  EXPECT_GE(w.act2 - w.gemm1_out, size_t(rows * 2944 * 4));
  EXPECT_GE(w.scale2 - w.act2, size_t(rows * 2944));
  EXPECT_EQ(activation_group_sums_bytes(rows, 2880), activation_group_sums_bytes(rows, 2944));
  EXPECT_GE(w.sums2 - w.sums1, activation_group_sums_bytes(rows, 2880));
  EXPECT_GT(moe_workspace_bytes(odd, 16), 0u);
}

TEST(MoePlan, AutoStagesTheLayerForKernelOverridesStageEventsAndWideRouters) {
  MoePlanOptions options;
  options.gemm2_config = "16x8_1x1_decode";  // a kernel override: the stages that run it
  EXPECT_FALSE(plan_moe(kDeepSeekEp8, 1, 0, options).one_launch);
  options = {};
  options.stage_events = true;  // per-stage timing: only the staged path has stages
  EXPECT_FALSE(plan_moe(kDeepSeekEp8, 1, 0, options).one_launch);
  MoeShape const many{1024, 64, 8, 2048, 768};  // one warp's router takes up to 512 logits
  EXPECT_FALSE(plan_moe(many, 1, 0).one_launch);
  options = {};
  options.from_logits = false;  // precomputed top-k: any expert count
  EXPECT_TRUE(plan_moe(many, 1, 0, options).one_launch);
}

// gpt-oss (MXFP4 experts, its SwiGLU, expert biases) runs the staged path on the MXFP4 kernels, whatever the path
// asked for: the one-launch layer takes none of the three (moe_forward refuses kOneLaunch for them).
TEST(MoePlan, GptOssStagesOnTheMxfp4Kernels) {
  MoeShape const gpt_oss_120b{128, 128, 4, 2880, 2880};
  MoePlanOptions options;
  options.layout = PackedLayout::kMxfp4;
  options.activation = MoeActivation::kGptOssSwiglu;
  options.biases = true;
  for (MoePath path : {MoePath::kAuto, MoePath::kOneLaunch}) {
    options.path = path;
    for (int64_t tokens : {1, 4, 64, 8192}) {
      MoePlan const p = plan_moe(gpt_oss_120b, tokens, 0, options);
      EXPECT_FALSE(p.one_launch) << tokens;
      EXPECT_FALSE(p.group_sums);
      EXPECT_NE(p.gemm1.config.find("_mxfp4"), std::string::npos) << p.gemm1.config;
      EXPECT_NE(p.gemm2.config.find("_mxfp4"), std::string::npos) << p.gemm2.config;
      EXPECT_FALSE(p.gemm1.arrays_from_routing);
    }
  }
  EXPECT_EQ(plan_moe(gpt_oss_120b, 1, 0, options).gemm1.config, "64x8_mxfp4");
  EXPECT_EQ(plan_moe(gpt_oss_120b, 1024, 0, options).gemm1.config, "64x48_mxfp4");
  EXPECT_EQ(plan_moe(gpt_oss_120b, 2048, 0, options).gemm1.config, "128x128_mxfp4");
  EXPECT_EQ(plan_moe(gpt_oss_120b, 4096, 0, options).gemm1.config, "128x128_mxfp4");  // 128 rows an expert
  EXPECT_EQ(plan_moe(gpt_oss_120b, 8192, 0, options).gemm1.config, "128x256_mxfp4");  // 256
  EXPECT_EQ(plan_moe(gpt_oss_120b, 16384, 0, options).gemm2.config, "128x256_mxfp4");
  // Each of the three alone keeps the one-launch layer away from a rank that takes it without them.
  EXPECT_TRUE(decode_layer_runs(PackedLayout::kExactScales, MoeActivation::kSiluMul, false));
  EXPECT_FALSE(decode_layer_runs(PackedLayout::kMxfp4, MoeActivation::kSiluMul, false));
  EXPECT_FALSE(decode_layer_runs(PackedLayout::kLookupTable, MoeActivation::kGptOssSwiglu, false));
  EXPECT_FALSE(decode_layer_runs(PackedLayout::kLookupTable, MoeActivation::kSiluMul, true));
  MoeShape const likely_idle{8, 1, 2, 2048, 768};
  options = {};
  options.activation = MoeActivation::kGptOssSwiglu;
  EXPECT_FALSE(plan_moe(likely_idle, 1, 0, options).one_launch);
  EXPECT_TRUE(plan_moe(likely_idle, 1, 0).one_launch);
}

TEST(UnpermuteSlices, SplitTheRowAtDecodeOnlyWhileTheBlocksStayFew) {
  EXPECT_EQ(unpermute_slices(1, 7168), 7);  // DeepSeek-V3: 896 vectors, 128 a block
  EXPECT_EQ(unpermute_slices(128, 7168), 7);
  EXPECT_EQ(unpermute_slices(1024, 7168), 7);  // 7168 blocks
  EXPECT_EQ(unpermute_slices(2048, 7168), 4);
  EXPECT_EQ(unpermute_slices(8192, 7168), 1);  // one block per token, as before the split
  EXPECT_EQ(unpermute_slices(16, 2048), 2);    // Qwen3-30B-A3B
  EXPECT_EQ(unpermute_slices(100000, 4096), 1);
  EXPECT_EQ(unpermute_slices(4, 128), 1);  // less than a block's vectors
}

}  // namespace
}  // namespace w4a8moe::moe
