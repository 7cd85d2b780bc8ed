// Every validation error of the MoE layer's public entry points: the layer's shape rules, moe_routing's and
// moe_forward's arguments. All these calls fail before touching the device, so fake (aligned, never dereferenced)
// pointers are enough.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>

#include "validation_test_util.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

using testing::expect_error;
using testing::fake;

TEST(Validation, MoeShapeRules) {
  EXPECT_TRUE(validate_moe_shape({128, 128, 8, 2048, 768}).ok());
  EXPECT_TRUE(validate_moe_shape({256, 32, 8, 7168, 2048}).ok());
  expect_error(validate_moe_shape({0, 0, 1, 256, 256}), StatusCode::kInvalidArgument, "num_experts=0");
  expect_error(validate_moe_shape({8, 9, 2, 256, 256}), StatusCode::kInvalidArgument, "num_local_experts=9");
  expect_error(validate_moe_shape({8, 8, 0, 256, 256}), StatusCode::kInvalidArgument, "top_k=0");
  expect_error(validate_moe_shape({64, 64, 33, 256, 256}), StatusCode::kInvalidArgument, "top_k=33");
  expect_error(validate_moe_shape({4, 4, 5, 256, 256}), StatusCode::kInvalidArgument, "top_k=5");
  EXPECT_TRUE(validate_moe_shape({8, 8, 2, 2880, 2880}).ok());  // gpt-oss: padded to whole groups
  expect_error(validate_moe_shape({8, 8, 2, 2888, 256}), StatusCode::kInvalidArgument,
               "hidden=2888: must be a positive multiple of 16");
  expect_error(validate_moe_shape({8, 8, 2, 256, 100}), StatusCode::kInvalidArgument, "inter=100");
  EXPECT_TRUE(validate_moe_shape({8, 8, 2, 256, 32768}).ok());  // the SiLU stage's row in one block
  expect_error(validate_moe_shape({8, 8, 2, 256, 32896}), StatusCode::kInvalidArgument, "inter=32896");
  EXPECT_EQ(moe_workspace_bytes({8, 8, 2, 256, 100}, 16), 0u);
  EXPECT_EQ(moe_workspace_bytes({8, 8, 2, 256, 256}, std::numeric_limits<int64_t>::max()), 0u);  // no overflow
  EXPECT_EQ(moe_routing_workspace_bytes({64, 64, 33, 256, 256}, 16), 0u);  // a top-k moe_routing rejects
  // A layout's own rules: MXFP4 wants H and I multiples of 32.
  EXPECT_TRUE(validate_moe_shape({8, 8, 2, 2064, 256}).ok());
  expect_error(validate_moe_shape({8, 8, 2, 2064, 256}, PackedLayout::kMxfp4), StatusCode::kInvalidArgument,
               "the MXFP4 layout needs K a multiple of 32");
  expect_error(validate_moe_shape({8, 8, 2, 256, 256}, PackedLayout(9)), StatusCode::kInvalidArgument, "layout=9");
}

// moe_routing checks the routing half of the shape with the same rules as the layer, and its own pointers, before it
// touches the device (fake but aligned device addresses: no launch happens on these paths).
TEST(Validation, MoeRoutingRules) {
  alignas(256) static char fake_device[1024];
  MoeRoutingArgs good;
  good.shape = {8, 8, 2, 256, 256};
  good.num_tokens = 4;
  good.topk_ids = reinterpret_cast<int32_t const*>(fake_device);
  good.expert_offsets = reinterpret_cast<int64_t*>(fake_device);
  good.dest_row = reinterpret_cast<int32_t*>(fake_device);
  good.row_slot = reinterpret_cast<int32_t*>(fake_device);
  good.workspace = fake_device;
  good.workspace_bytes = moe_routing_workspace_bytes(good.shape, good.num_tokens);
  struct Case {
    char const* what;
    std::function<void(MoeRoutingArgs&)> mutate;
    char const* needle;
  };
  for (Case const& c : std::vector<Case>{
           {"no experts", [](auto& a) { a.shape.num_experts = 0; }, "num_experts=0"},
           {"more local experts than experts", [](auto& a) { a.shape.num_local_experts = 9; }, "num_local_experts=9"},
           {"top-k past the experts", [](auto& a) { a.shape.top_k = 9; }, "top_k=9"},
           {"negative tokens", [](auto& a) { a.num_tokens = -1; }, "num_tokens=-1"},
           {"local experts without map", [](auto& a) { a.shape.num_local_experts = 4; }, "expert_map is null"},
           {"misaligned map", [](auto& a) { a.expert_map = reinterpret_cast<int32_t const*>(fake_device + 2); },
            "expert_map must be 4-byte aligned"},
           {"no offsets", [](auto& a) { a.expert_offsets = nullptr; }, "expert_offsets is null"},
           {"no ids", [](auto& a) { a.topk_ids = nullptr; }, "topk_ids is null"},
           {"misaligned workspace", [](auto& a) { a.workspace = fake_device + 16; }, "256-byte aligned"},
           {"small workspace", [](auto& a) { a.workspace_bytes = 0; }, "workspace_bytes=0"},
       }) {
    SCOPED_TRACE(c.what);
    MoeRoutingArgs args = good;
    c.mutate(args);
    expect_error(moe_routing(args), StatusCode::kInvalidArgument, c.needle);
  }
}

TEST(Validation, MoeForwardArguments) {
  MoeShape const shape{16, 16, 4, 256, 256};
  auto valid = [&] {
    MoeForwardArgs a;
    a.shape = shape;
    a.gemm1_weights = fake(0x100000);
    a.gemm2_weights = fake(0x200000);
    a.num_tokens = 32;
    a.hidden = fake(0x300000);
    a.router_logits = fake(0x400000);
    a.out = fake(0x500000);
    a.workspace = fake(0x600000);
    a.workspace_bytes = moe_workspace_bytes(shape, 32);
    return a;
  };
  struct Case {
    char const* what;
    std::function<void(MoeForwardArgs&)> mutate;
    StatusCode code;
    char const* needle;
  };
  std::vector<Case> const cases = {
      {"bad shape", [](auto& a) { a.shape.hidden = 200; }, StatusCode::kInvalidArgument, "hidden=200"},
      {"negative tokens", [](auto& a) { a.num_tokens = -1; }, StatusCode::kInvalidArgument, "num_tokens=-1"},
      {"max below tokens", [](auto& a) { a.max_tokens = 8; }, StatusCode::kInvalidArgument, "max_tokens=8"},
      {"null gemm1", [](auto& a) { a.gemm1_weights = nullptr; }, StatusCode::kInvalidArgument, "gemm1_weights is null"},
      {"misaligned gemm2", [](auto& a) { a.gemm2_weights = fake(0x200010); }, StatusCode::kInvalidArgument,
       "gemm2_weights must be 256-byte aligned"},
      {"both routings",
       [](auto& a) {
         a.topk_ids = static_cast<int32_t const*>(fake(0x700000));
         a.topk_weights = static_cast<float const*>(fake(0x710000));
       },
       StatusCode::kInvalidArgument, "not both"},
      {"no routing", [](auto& a) { a.router_logits = nullptr; }, StatusCode::kInvalidArgument, "not neither"},
      {"ids without weights",
       [](auto& a) {
         a.router_logits = nullptr;
         a.topk_ids = static_cast<int32_t const*>(fake(0x700000));
       },
       StatusCode::kInvalidArgument, "topk_weights is null"},
      {"local experts without map", [](auto& a) { a.shape.num_local_experts = 4; }, StatusCode::kInvalidArgument,
       "expert_map is null"},
      {"null hidden", [](auto& a) { a.hidden = nullptr; }, StatusCode::kInvalidArgument, "hidden is null"},
      {"misaligned hidden", [](auto& a) { a.hidden = fake(0x300008); }, StatusCode::kInvalidArgument,
       "hidden must be 16-byte aligned"},
      {"null out", [](auto& a) { a.out = nullptr; }, StatusCode::kInvalidArgument, "out is null"},
      {"null workspace", [](auto& a) { a.workspace = nullptr; }, StatusCode::kInvalidArgument, "workspace is null"},
      {"small workspace", [](auto& a) { a.workspace_bytes -= 256; }, StatusCode::kInvalidArgument, "too small"},
      {"bad act type", [](auto& a) { a.act_type = ActivationType(5); }, StatusCode::kInvalidArgument, "act_type"},
      {"bad logits type", [](auto& a) { a.logits_type = LogitsType(5); }, StatusCode::kInvalidArgument,
       "logits_type"},
      {"unknown config", [](auto& a) { a.gemm2_config = "1x1_1x1_pp"; }, StatusCode::kNotSupported, "1x1_1x1_pp"},
      {"unknown layout", [](auto& a) { a.weight_layout = PackedLayout(4); }, StatusCode::kInvalidArgument,
       "weight_layout=4"},
      {"MXFP4 layout with H off whole scale blocks",
       [](auto& a) {
         a.weight_layout = PackedLayout::kMxfp4;
         a.shape.hidden = 272;
       },
       StatusCode::kInvalidArgument, "GEMM1 weights (2I x H).k=272: the MXFP4 layout needs K a multiple of 32"},
      {"biases on the lookup-table layout", [](auto& a) { a.gemm2_bias = static_cast<float const*>(fake(0x900000)); },
       StatusCode::kInvalidArgument, "args.gemm2_bias: expert biases are taken with PackedLayout::kMxfp4 only"},
      {"misaligned bias",
       [](auto& a) {
         a.weight_layout = PackedLayout::kMxfp4;
         a.gemm1_bias = static_cast<float const*>(fake(0x900001));
       },
       StatusCode::kInvalidArgument, "args.gemm1_bias must be 4-byte aligned"},
      {"bad activation", [](auto& a) { a.activation = MoeActivation(7); }, StatusCode::kInvalidArgument,
       "args.activation=7"},
      {"bad SwiGLU limit",
       [](auto& a) {
         a.activation = MoeActivation::kGptOssSwiglu;
         a.swiglu_limit = 0.0f;
       },
       StatusCode::kInvalidArgument, "args.swiglu_limit=0"},
      {"one launch of gpt-oss's SwiGLU",
       [](auto& a) {
         a.activation = MoeActivation::kGptOssSwiglu;
         a.path = MoePath::kOneLaunch;
       },
       StatusCode::kInvalidArgument, "the one-launch layer runs SiLU * up on the int4 layouts"},
      {"one launch of the MXFP4 layout",
       [](auto& a) {
         a.weight_layout = PackedLayout::kMxfp4;
         a.path = MoePath::kOneLaunch;
       },
       StatusCode::kInvalidArgument, "layout \"mxfp4\""},
      {"lookup-table config on the exact layout",
       [](auto& a) {
         a.weight_layout = PackedLayout::kExactScales;
         a.gemm1_config = "128x16_1x1_pp";
       },
       StatusCode::kInvalidArgument,
       "args.gemm1_config='128x16_1x1_pp' reads the \"lookup\" layout, not args.weight_layout=\"exact\""},
      {"router too wide",
       [](auto& a) {
         a.shape.num_experts = 12277;  // its probabilities past the 48 KB of shared memory a launch gets
         a.expert_map = static_cast<int32_t const*>(fake(0x800000));
       },
       StatusCode::kInvalidArgument, "at most 12276"},
      {"tokens x top-k past 2^31 by overflow",
       [](auto& a) { a.max_tokens = std::numeric_limits<int64_t>::max(); }, StatusCode::kInvalidArgument,
       "max_tokens * top_k (4) must stay below 2^31"},
      {"local expert ids past 16 bits",
       [](auto& a) {
         a.shape.num_experts = a.shape.num_local_experts = 40000;
         a.router_logits = nullptr;
         a.topk_ids = static_cast<int32_t const*>(fake(0x700000));
         a.topk_weights = static_cast<float const*>(fake(0x710000));
       },
       StatusCode::kInvalidArgument, "num_local_experts=40000: must be in [1, min(num_experts=40000, 32767)]"},
      {"GEMM1 and GEMM2 weights swapped",
       [](auto& a) {
         a.gemm1_weights_bytes = packed_weights_bytes({16, 256, 256, 128});  // GEMM2's shape: H x I
       },
       StatusCode::kInvalidArgument, "args.gemm1_weights_bytes="},
      {"weights packed in another layout",
       [](auto& a) {
         a.weight_layout = PackedLayout::kExactScales;
         a.gemm2_weights_bytes = packed_weights_bytes({16, 256, 256, 128}, PackedLayout::kLookupTable);
       },
       StatusCode::kInvalidArgument, "packed in the \"exact\" layout take"},
      {"router weight on the input with biases",
       [](auto& a) {
         a.weight_layout = PackedLayout::kMxfp4;
         a.gemm2_bias = static_cast<float const*>(fake(0x900000));
         a.apply_router_weight_on_input = true;
       },
       StatusCode::kInvalidArgument, "apply_router_weight_on_input: not with expert biases"},
  };
  for (auto const& c : cases) {
    SCOPED_TRACE(c.what);
    MoeForwardArgs a = valid();
    c.mutate(a);
    expect_error(moe_forward(a), c.code, c.needle);
  }
}

}  // namespace
}  // namespace w4a8moe
