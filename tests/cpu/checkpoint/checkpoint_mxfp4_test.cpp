// gpt-oss's MXFP4 checkpoints: its config.json block parses (mxfp4, swiglu_limit), and a synthetic layer written here
// in the published layout (own safetensors writer) gathers byte for byte and dequantises to the values its codes and
// scales define; a missing, mistyped or misshapen tensor, a NaN scale and a config the reader does not serve are
// errors naming the rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "checkpoint_test_util.h"
#include "reference/mxfp4.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::bytes_of;
using testing::RawTensor;
using testing::TempDir;

constexpr int kExperts = 3;
constexpr int kHidden = 96;        // not a multiple of 128, as gpt-oss's 2880
constexpr int kIntermediate = 64;
constexpr int kLayers = 2;

std::string gpt_oss_config(int hidden, char const* quantization = R"({"quant_method": "mxfp4"})",
                           char const* extra = "") {
  return std::string(R"({"model_type": "gpt_oss", "hidden_size": )") + std::to_string(hidden) +
         R"(, "intermediate_size": )" + std::to_string(kIntermediate) + R"(, "num_hidden_layers": )" +
         std::to_string(kLayers) + R"(, "num_local_experts": )" + std::to_string(kExperts) +
         R"(, "experts_per_token": 2)" + extra + R"(, "quantization_config": )" + quantization + "}";
}

ModelConfig parse_ok(std::string const& json) {
  ModelConfig config;
  Status const status = parse_model_config(json, "config.json", &config);
  EXPECT_TRUE(status.ok()) << status.message();
  return config;
}

// One layer's tensors with random codes, scales in [120, 134] and finite bf16 biases and router.
struct SyntheticLayer {
  std::vector<uint8_t> gemm1_blocks, gemm1_scales, gemm2_blocks, gemm2_scales;
  std::vector<uint16_t> gemm1_bias, gemm2_bias, router_weight, router_bias;

  explicit SyntheticLayer(std::mt19937_64& rng) {
    std::uniform_int_distribution<int> byte(0, 255), scale(120, 134), bf16(0x3C00, 0x3FFF);  // |x| in [2^-7, 2)
    auto fill = [&](std::vector<uint8_t>* v, size_t n, std::uniform_int_distribution<int>& d) {
      v->resize(n);
      for (auto& x : *v) x = uint8_t(d(rng));
    };
    auto fill_bf16 = [&](std::vector<uint16_t>* v, size_t n) {
      v->resize(n);
      for (auto& x : *v) x = uint16_t(bf16(rng) | (byte(rng) & 1 ? 0x8000 : 0));
    };
    fill(&gemm1_blocks, size_t(kExperts) * 2 * kIntermediate * kHidden / 2, byte);
    fill(&gemm1_scales, size_t(kExperts) * 2 * kIntermediate * kHidden / 32, scale);
    fill(&gemm2_blocks, size_t(kExperts) * kHidden * kIntermediate / 2, byte);
    fill(&gemm2_scales, size_t(kExperts) * kHidden * kIntermediate / 32, scale);
    fill_bf16(&gemm1_bias, size_t(kExperts) * 2 * kIntermediate);
    fill_bf16(&gemm2_bias, size_t(kExperts) * kHidden);
    fill_bf16(&router_weight, size_t(kExperts) * kHidden);
    fill_bf16(&router_bias, size_t(kExperts));
  }

  std::vector<RawTensor> tensors(int layer) const {
    std::string const p = "model.layers." + std::to_string(layer) + ".mlp.";
    int64_t const e = kExperts, h = kHidden, i = kIntermediate;
    return {{p + "experts.gate_up_proj_blocks", "U8", {e, 2 * i, h / 32, 16}, bytes_of(gemm1_blocks)},
            {p + "experts.gate_up_proj_scales", "U8", {e, 2 * i, h / 32}, bytes_of(gemm1_scales)},
            {p + "experts.gate_up_proj_bias", "BF16", {e, 2 * i}, bytes_of(gemm1_bias)},
            {p + "experts.down_proj_blocks", "U8", {e, h, i / 32, 16}, bytes_of(gemm2_blocks)},
            {p + "experts.down_proj_scales", "U8", {e, h, i / 32}, bytes_of(gemm2_scales)},
            {p + "experts.down_proj_bias", "BF16", {e, h}, bytes_of(gemm2_bias)},
            {p + "router.weight", "BF16", {e, h}, bytes_of(router_weight)},
            {p + "router.bias", "BF16", {e}, bytes_of(router_bias)}};
  }
};

Status gather_file(TempDir const& dir, std::vector<RawTensor> const& tensors, ModelConfig const& config, int layer,
                   Mxfp4LayerExperts* experts) {
  std::string const path = dir.file("model.safetensors");
  testing::write_file(path, testing::make_safetensors(tensors));
  Checkpoint checkpoint;
  Status const opened = Checkpoint::open(path, &checkpoint);
  return opened.ok() ? gather_mxfp4_layer_experts(checkpoint, config, layer, experts) : opened;
}

TEST(Mxfp4Config, GptOssBlockParses) {
  ModelConfig const config = parse_ok(gpt_oss_config(2880));
  EXPECT_TRUE(config.mxfp4);
  EXPECT_FALSE(config.w4a8);
  EXPECT_EQ(config.moe.swiglu_limit, kGptOssSwigluLimit);
  EXPECT_EQ(parse_ok(gpt_oss_config(2880, R"({"quant_method": "mxfp4"})", R"(, "swiglu_limit": 5.5)")).moe.swiglu_limit,
            5.5);
  ModelConfig bad;
  Status const status =
      parse_model_config(gpt_oss_config(2880, R"({"quant_method": "mxfp4"})", R"(, "swiglu_limit": -1)"), "c", &bad);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("swiglu_limit"), std::string::npos) << status.message();
}

TEST(Mxfp4Gather, CopiesTheLayerAndDequantisesToItsCodes) {
  std::mt19937_64 rng(std::random_device{}());
  TempDir dir;
  SyntheticLayer const layer0(rng), layer1(rng);
  std::vector<RawTensor> tensors = layer0.tensors(0);
  for (RawTensor const& t : layer1.tensors(1)) tensors.push_back(t);
  Mxfp4LayerExperts experts;
  ASSERT_TRUE(gather_file(dir, tensors, parse_ok(gpt_oss_config(kHidden)), 1, &experts).ok());
  EXPECT_EQ(experts.layer, 1);
  EXPECT_EQ(experts.num_experts, kExperts);
  EXPECT_EQ(experts.hidden_size, kHidden);
  EXPECT_EQ(experts.intermediate_size, kIntermediate);
  EXPECT_EQ(experts.gemm1_blocks, layer1.gemm1_blocks);
  EXPECT_EQ(experts.gemm1_scales, layer1.gemm1_scales);
  EXPECT_EQ(experts.gemm1_bias, layer1.gemm1_bias);
  EXPECT_EQ(experts.gemm2_blocks, layer1.gemm2_blocks);
  EXPECT_EQ(experts.gemm2_scales, layer1.gemm2_scales);
  EXPECT_EQ(experts.gemm2_bias, layer1.gemm2_bias);
  EXPECT_EQ(experts.router_weight, layer1.router_weight);
  EXPECT_EQ(experts.router_bias, layer1.router_bias);

  // GEMM2 of expert 2 as weights: byte j of row r's block b holds columns 32 b + 2 j (low) and + 1 (high).
  int64_t const row_bytes = kIntermediate / 2, blocks_per_row = kIntermediate / 32;
  size_t const first_row = size_t(2) * kHidden;
  std::vector<float> const w = reference::dequantize_mxfp4(experts.gemm2_blocks.data() + first_row * row_bytes,
                                                           experts.gemm2_scales.data() + first_row * blocks_per_row,
                                                           kHidden, kIntermediate);
  for (int64_t r = 0; r < kHidden; r += 7) {
    for (int64_t c = 0; c < kIntermediate; ++c) {
      uint8_t const byte = layer1.gemm2_blocks[(first_row + r) * row_bytes + c / 2];
      uint8_t const code = c % 2 == 0 ? byte & 0x0F : byte >> 4;
      int const scale = layer1.gemm2_scales[(first_row + r) * blocks_per_row + c / 32];
      int const exponent = (code >> 1) & 3, mantissa = code & 1;  // e2m1: subnormal at exponent 0
      float const magnitude = exponent == 0 ? 0.5f * mantissa : std::ldexp(float(2 + mantissa), exponent - 2);
      float const expected = (code & 8 ? -magnitude : magnitude) * std::ldexp(1.0f, scale - 127);
      ASSERT_EQ(w[size_t(r * kIntermediate + c)], expected) << "row " << r << ", column " << c;
    }
  }
}

// GEMM1's rows reordered gate first, up second: row 2i of expert e lands at i, row 2i + 1 at I + i, with its blocks,
// scales and bias; GEMM2 and the router untouched.
TEST(Mxfp4Gather, GateUpInLayerOrder) {
  std::mt19937_64 rng(std::random_device{}());
  TempDir dir;
  SyntheticLayer const layer0(rng);
  Mxfp4LayerExperts experts;
  ASSERT_TRUE(gather_file(dir, layer0.tensors(0), parse_ok(gpt_oss_config(kHidden)), 0, &experts).ok());
  Mxfp4LayerExperts const checkpoint_order = experts;
  gate_up_in_layer_order(&experts);
  size_t const row_bytes = kHidden / 2, row_blocks = kHidden / 32;
  for (int e = 0; e < kExperts; ++e) {
    for (int i = 0; i < 2 * kIntermediate; ++i) {
      size_t const from = size_t(e) * 2 * kIntermediate + i;
      size_t const to = size_t(e) * 2 * kIntermediate + (i % 2) * kIntermediate + i / 2;
      ASSERT_TRUE(std::equal(experts.gemm1_blocks.begin() + to * row_bytes,
                             experts.gemm1_blocks.begin() + (to + 1) * row_bytes,
                             checkpoint_order.gemm1_blocks.begin() + from * row_bytes))
          << "expert " << e << " row " << i;
      ASSERT_TRUE(std::equal(experts.gemm1_scales.begin() + to * row_blocks,
                             experts.gemm1_scales.begin() + (to + 1) * row_blocks,
                             checkpoint_order.gemm1_scales.begin() + from * row_blocks));
      ASSERT_EQ(experts.gemm1_bias[to], checkpoint_order.gemm1_bias[from]);
    }
  }
  EXPECT_EQ(experts.gemm2_blocks, checkpoint_order.gemm2_blocks);
  EXPECT_EQ(experts.gemm2_bias, checkpoint_order.gemm2_bias);
  EXPECT_EQ(experts.router_weight, checkpoint_order.router_weight);
}

struct Broken {
  char const* label;
  std::function<void(std::vector<RawTensor>&)> edit;
  char const* message;  // expected in the error
};

TEST(Mxfp4Gather, RefusesBrokenTensorsNamingThem) {
  std::mt19937_64 rng(std::random_device{}());
  Broken const cases[] = {
      {"missing", [](auto& t) { t.pop_back(); }, "tensor 'model.layers.0.mlp.router.bias' is missing"},
      {"dtype", [](auto& t) { t[4].dtype = "I8"; }, "down_proj_scales': dtype I8, needs U8"},
      {"shape", [](auto& t) { t[0].shape = {kExperts, 2 * kIntermediate, kHidden / 16, 8}; },
       "gate_up_proj_blocks': shape"},
      {"NaN scale", [](auto& t) { t[1].bytes[7] = char(0xFF); }, "gate_up_proj_scales': e8m0 scale 7"},
  };
  for (Broken const& broken : cases) {
    SCOPED_TRACE(broken.label);
    TempDir dir;
    std::vector<RawTensor> tensors = SyntheticLayer(rng).tensors(0);
    broken.edit(tensors);
    Mxfp4LayerExperts experts;
    Status const status = gather_file(dir, tensors, parse_ok(gpt_oss_config(kHidden)), 0, &experts);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(broken.message), std::string::npos) << status.message();
  }
}

TEST(Mxfp4Gather, RefusesWhatTheConfigRulesOut) {
  std::mt19937_64 rng(std::random_device{}());
  TempDir dir;
  std::vector<RawTensor> const tensors = SyntheticLayer(rng).tensors(0);
  Mxfp4LayerExperts experts;
  ModelConfig unquantized = parse_ok(gpt_oss_config(kHidden));
  unquantized.mxfp4 = false;
  Status status = gather_file(dir, tensors, unquantized, 0, &experts);
  EXPECT_EQ(status.code(), StatusCode::kNotSupported);
  EXPECT_NE(status.message().find("no quant_method \"mxfp4\""), std::string::npos) << status.message();

  status = gather_file(dir, tensors, parse_ok(gpt_oss_config(80)), 0, &experts);  // H = 80: not a multiple of 32
  EXPECT_EQ(status.code(), StatusCode::kNotSupported);
  EXPECT_NE(status.message().find("multiples of 32"), std::string::npos) << status.message();

  status = gather_file(dir, tensors, parse_ok(gpt_oss_config(kHidden)), kLayers, &experts);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("outside the model's 2 layers"), std::string::npos) << status.message();

  // The W4A8 gather says where MXFP4 experts go instead of reading them as int4.
  Checkpoint checkpoint;
  ASSERT_TRUE(Checkpoint::open(dir.file("model.safetensors"), &checkpoint).ok());
  LayerExperts int4;
  status = gather_layer_experts(checkpoint, parse_ok(gpt_oss_config(kHidden)), 0, &int4);
  EXPECT_EQ(status.code(), StatusCode::kNotSupported);
  EXPECT_NE(status.message().find("gather_mxfp4_layer_experts"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace w4a8moe
