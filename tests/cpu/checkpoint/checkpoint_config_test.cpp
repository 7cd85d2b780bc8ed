// config.json: the MoE dimensions of each model family (field names differ per family), the layers that are MoE,
// and the W4A8 quantization_config check, with one refusal per rule.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "checkpoint_test_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using Json = nlohmann::json;

// Shortened from the models' published config.json files: the fields read plus a few that are not.
Json qwen3_30b_a3b() {
  return Json::parse(R"({
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048,
    "num_hidden_layers": 48, "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
    "intermediate_size": 6144, "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "torch_dtype": "bfloat16", "vocab_size": 151936})");
}

Json mixtral_8x7b() {
  return Json::parse(R"({
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_local_experts": 8, "num_experts_per_tok": 2,
    "router_aux_loss_coef": 0.02})");
}

Json deepseek_v3() {
  return Json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
    "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5,
    "first_k_dense_replace": 3, "moe_layer_freq": 1, "norm_topk_prob": true, "scoring_func": "sigmoid",
    "topk_method": "noaux_tc"})");
}

Json gpt_oss_120b() {
  return Json::parse(R"({
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 2880,
    "intermediate_size": 2880, "num_hidden_layers": 36, "num_local_experts": 128, "experts_per_token": 4})");
}

// The block llm-compressor writes for its W4AFP8 scheme.
Json w4a8_block() {
  return Json::parse(R"({
    "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
    "global_compression_ratio": null, "kv_cache_scheme": null, "sparsity_config": {},
    "ignore": ["lm_head", "re:.*mlp.gate$"],
    "config_groups": {"group_0": {
      "targets": ["Linear"],
      "weights": {"num_bits": 4, "type": "int", "symmetric": true, "group_size": 128, "strategy": "group",
                  "block_structure": null, "dynamic": false, "actorder": null, "observer": "minmax",
                  "observer_kwargs": {}},
      "input_activations": {"num_bits": 8, "type": "float", "symmetric": true, "group_size": null,
                            "strategy": "token", "block_structure": null, "dynamic": true, "actorder": null,
                            "observer": null, "observer_kwargs": {}},
      "output_activations": null}}})");
}

ModelConfig parse_ok(Json const& json) {
  ModelConfig config;
  Status const status = parse_model_config(json.dump(), "config.json", &config);
  EXPECT_TRUE(status.ok()) << status.message();
  return config;
}

Status parse(Json const& json, std::string const& source = "config.json") {
  ModelConfig config;
  return parse_model_config(json.dump(), source, &config);
}

int count_moe_layers(MoeConfig const& moe) {
  int count = 0;
  for (bool is_moe : moe.is_moe_layer) count += is_moe;
  return count;
}

TEST(ModelConfig, Qwen3Moe) {
  MoeConfig const moe = parse_ok(qwen3_30b_a3b()).moe;
  EXPECT_EQ(moe.model_type, "qwen3_moe");
  EXPECT_EQ(moe.num_layers, 48);
  EXPECT_EQ(moe.num_experts, 128);
  EXPECT_EQ(moe.experts_per_token, 8);
  EXPECT_EQ(moe.hidden_size, 2048);
  EXPECT_EQ(moe.intermediate_size, 768);  // moe_intermediate_size, not the dense intermediate_size
  EXPECT_TRUE(moe.norm_topk_prob);
  EXPECT_EQ(moe.num_shared_experts, 0);
  EXPECT_EQ(moe.scoring, RouterScoring::kSoftmax);
  EXPECT_EQ(count_moe_layers(moe), 48);
}

TEST(ModelConfig, Qwen3MoeSparseStepAndDenseLayers) {
  Json json = qwen3_30b_a3b();
  json["num_hidden_layers"] = 6;
  json["decoder_sparse_step"] = 2;
  json["mlp_only_layers"] = {3};
  json.erase("norm_topk_prob");
  MoeConfig const moe = parse_ok(json).moe;
  EXPECT_EQ(moe.is_moe_layer, (std::vector<bool>{false, true, false, false, false, true}));
  EXPECT_FALSE(moe.norm_topk_prob);  // transformers' default for Qwen3-MoE
}

TEST(ModelConfig, Mixtral) {
  MoeConfig const moe = parse_ok(mixtral_8x7b()).moe;
  EXPECT_EQ(moe.num_experts, 8);
  EXPECT_EQ(moe.experts_per_token, 2);
  EXPECT_EQ(moe.hidden_size, 4096);
  EXPECT_EQ(moe.intermediate_size, 14336);
  EXPECT_EQ(moe.num_layers, 32);
  EXPECT_TRUE(moe.norm_topk_prob);  // softmax over the top-k logits
  EXPECT_EQ(count_moe_layers(moe), 32);
}

TEST(ModelConfig, DeepSeekV3) {
  MoeConfig const moe = parse_ok(deepseek_v3()).moe;
  EXPECT_EQ(moe.num_experts, 256);
  EXPECT_EQ(moe.experts_per_token, 8);
  EXPECT_EQ(moe.hidden_size, 7168);
  EXPECT_EQ(moe.intermediate_size, 2048);
  EXPECT_EQ(moe.num_shared_experts, 1);
  EXPECT_EQ(moe.num_expert_groups, 8);
  EXPECT_EQ(moe.topk_groups, 4);
  EXPECT_DOUBLE_EQ(moe.routed_scaling_factor, 2.5);
  EXPECT_EQ(moe.scoring, RouterScoring::kSigmoid);
  EXPECT_TRUE(moe.norm_topk_prob);
  ASSERT_EQ(moe.is_moe_layer.size(), 61u);
  EXPECT_FALSE(moe.is_moe_layer[0]);
  EXPECT_FALSE(moe.is_moe_layer[2]);
  EXPECT_TRUE(moe.is_moe_layer[3]);
  EXPECT_EQ(count_moe_layers(moe), 58);
}

TEST(ModelConfig, DeepSeekV3NeedsItsRouterFields) {
  Json json = deepseek_v3();
  json.erase("n_group");
  Status const status = parse(json);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"n_group\" is missing"), std::string::npos) << status.message();
}

TEST(ModelConfig, GptOssTakesEitherTopKName) {
  MoeConfig const moe = parse_ok(gpt_oss_120b()).moe;
  EXPECT_EQ(moe.num_experts, 128);
  EXPECT_EQ(moe.experts_per_token, 4);
  EXPECT_EQ(moe.hidden_size, 2880);
  EXPECT_EQ(moe.intermediate_size, 2880);
  EXPECT_EQ(moe.num_layers, 36);
  Json hf_names = gpt_oss_120b();
  hf_names.erase("experts_per_token");
  hf_names["num_experts_per_tok"] = 4;
  EXPECT_EQ(parse_ok(hf_names).moe.experts_per_token, 4);
}

TEST(ModelConfig, RefusesUnknownModelsAndBadFields) {
  Json llama = mixtral_8x7b();
  llama["model_type"] = "llama";
  Status status = parse(llama, "llama/config.json");
  EXPECT_EQ(status.code(), StatusCode::kNotSupported);
  EXPECT_NE(status.message().find("llama/config.json: model_type \"llama\""), std::string::npos) << status.message();

  Json missing = qwen3_30b_a3b();
  missing.erase("moe_intermediate_size");
  status = parse(missing);
  EXPECT_NE(status.message().find("\"moe_intermediate_size\" is missing"), std::string::npos) << status.message();

  Json wrong_type = mixtral_8x7b();
  wrong_type["hidden_size"] = "4096";
  status = parse(wrong_type);
  EXPECT_NE(status.message().find("\"hidden_size\" must be an integer"), std::string::npos) << status.message();

  Json too_many = mixtral_8x7b();
  too_many["num_experts_per_tok"] = 9;
  status = parse(too_many);
  EXPECT_NE(status.message().find("exceeds"), std::string::npos) << status.message();

  Json bad_layer = qwen3_30b_a3b();
  bad_layer["mlp_only_layers"] = {48};
  EXPECT_FALSE(parse(bad_layer).ok());

  ModelConfig config;
  EXPECT_NE(parse_model_config("[1]", "x.json", &config).message().find("must be a JSON object"), std::string::npos);
  EXPECT_NE(parse_model_config("{", "x.json", &config).message().find("x.json: not valid JSON"), std::string::npos);
}

TEST(ModelConfig, IntegerFieldsStateTheirRange) {
  for (char const* value : {"3000000000", "18446744073709551615", "0", "-5"}) {
    Json json = mixtral_8x7b();
    json["hidden_size"] = Json::parse(value);
    Status const status = parse(json);
    EXPECT_EQ(status.message(), std::string("config.json: field \"hidden_size\" must be an integer in [1, ") +
                                    "2147483647], got " + value);
  }
  Json largest = mixtral_8x7b();
  largest["hidden_size"] = 2147483647;
  EXPECT_EQ(parse_ok(largest).moe.hidden_size, 2147483647);
}

TEST(ModelConfig, LayersAreBounded) {
  Json json = mixtral_8x7b();
  json["num_hidden_layers"] = 4096;
  EXPECT_EQ(parse_ok(json).moe.is_moe_layer.size(), 4096u);
  json["num_hidden_layers"] = 4097;
  EXPECT_EQ(parse(json).message(),
            "config.json: field \"num_hidden_layers\" must be an integer in [1, 4096], got 4097");
  json["num_hidden_layers"] = 2147483647;
  EXPECT_FALSE(parse(json).ok());
}

TEST(ModelConfig, DeepSeekTopKWithinTheGroupsRoutingReaches) {
  Json json = deepseek_v3();  // 256 experts in 8 groups of 32
  json["topk_group"] = 1;
  json["num_experts_per_tok"] = 32;
  EXPECT_EQ(parse_ok(json).moe.experts_per_token, 32);
  json["num_experts_per_tok"] = 33;
  Status const status = parse(json);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "config.json: num_experts_per_tok=33 exceeds the 32 experts group-limited routing can "
                              "choose from (topk_group * n_routed_experts / n_group = 1 * 256 / 8)");
}

TEST(ModelConfig, AModelWithoutAMoeLayerIsRefused) {
  Json json = deepseek_v3();  // 61 layers
  json["first_k_dense_replace"] = 60;
  EXPECT_EQ(count_moe_layers(parse_ok(json).moe), 1);
  json["first_k_dense_replace"] = 61;
  EXPECT_EQ(parse(json).message(),
            "config.json: first_k_dense_replace=61 makes all 61 layers (num_hidden_layers) dense: no MoE layer");
  json["first_k_dense_replace"] = 3;
  json["moe_layer_freq"] = 64;
  EXPECT_NE(parse(json).message().find("first_k_dense_replace and moe_layer_freq leave no MoE layer among the 61"),
            std::string::npos);

  Json qwen = qwen3_30b_a3b();  // 48 layers
  qwen["decoder_sparse_step"] = 49;
  EXPECT_NE(parse(qwen).message().find("decoder_sparse_step and mlp_only_layers leave no MoE layer among the 48"),
            std::string::npos);
}

// gpt-oss's layer (MXFP4 experts with biases, clamped SwiGLU) is not what W4A8 experts serve: refused where the
// config is read, so that a loader choosing the gather by config.w4a8 never reaches the int4 path with it.
TEST(QuantizationConfig, GptOssWithW4A8IsNotServed) {
  Json json = gpt_oss_120b();
  json["quantization_config"] = w4a8_block();
  Status const status = parse(json);
  EXPECT_EQ(status.code(), StatusCode::kNotSupported);
  EXPECT_NE(status.message().find("config.json: model_type \"gpt_oss\" with W4A8 (compressed-tensors int4) experts"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("MXFP4"), std::string::npos) << status.message();
  json["quantization_config"] = {{"quant_method", "mxfp4"}};
  EXPECT_TRUE(parse_ok(json).mxfp4);
}

TEST(ModelConfig, ReadsAFile) {
  testing::TempDir dir;
  Json json = qwen3_30b_a3b();
  json["quantization_config"] = w4a8_block();
  testing::write_file(dir.file("config.json"), json.dump(2));
  ModelConfig config;
  Status const status = read_model_config(dir.file("config.json"), &config);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(config.w4a8);
  EXPECT_EQ(config.moe.num_experts, 128);

  testing::write_file(dir.file("broken.json"), "{\"model_type\": ");
  Status const broken = read_model_config(dir.file("broken.json"), &config);
  EXPECT_NE(broken.message().find(dir.file("broken.json")), std::string::npos) << broken.message();
  EXPECT_FALSE(read_model_config(dir.file("absent.json"), &config).ok());
}

TEST(QuantizationConfig, AcceptsW4A8AndNoQuantization) {
  EXPECT_FALSE(parse_ok(mixtral_8x7b()).w4a8);
  Json json = mixtral_8x7b();
  json["quantization_config"] = w4a8_block();
  EXPECT_TRUE(parse_ok(json).w4a8);

  // Fields at their compressed-tensors defaults may be left out; a group's own format may replace the top one.
  Json minimal = w4a8_block();
  auto& group = minimal["config_groups"]["group_0"];
  for (char const* key : {"symmetric", "actorder", "dynamic", "type"}) group["weights"].erase(key);
  group["input_activations"].erase("symmetric");
  minimal["format"] = "mixed-precision";
  group["format"] = "pack-quantized";
  json["quantization_config"] = minimal;
  EXPECT_TRUE(parse_ok(json).w4a8);
}

struct Refusal {
  char const* rule;
  char const* pointer;  // JSON pointer into the quantization_config block
  Json value;           // replaces it; a discarded value removes it
  char const* field;    // the message names this field
};

std::vector<Refusal> refusals() {
  Json const remove = Json(Json::value_t::discarded);
  return {
      {"NotCompressedTensors", "/quant_method", "gptq", "quantization_config.quant_method"},
      {"OtherFormat", "/format", "int-quantized", "quantization_config.format"},
      {"FloatFormat", "/format", "float-quantized", "quantization_config.format"},
      {"OtherGroupFormat", "/config_groups/group_0/format", "naive-quantized", "group_0.format"},
      {"AsymmetricWeights", "/config_groups/group_0/weights/symmetric", false, "weights.symmetric"},
      {"GroupSize64", "/config_groups/group_0/weights/group_size", 64, "weights.group_size"},
      {"GroupSize256", "/config_groups/group_0/weights/group_size", 256, "weights.group_size"},
      {"ActOrderGroup", "/config_groups/group_0/weights/actorder", "group", "weights.actorder"},
      {"ActOrderTrue", "/config_groups/group_0/weights/actorder", true, "weights.actorder"},
      {"ChannelStrategy", "/config_groups/group_0/weights/strategy", "channel", "weights.strategy"},
      {"Weights8Bit", "/config_groups/group_0/weights/num_bits", 8, "weights.num_bits"},
      {"WeightBitsDefault", "/config_groups/group_0/weights/num_bits", remove, "weights.num_bits"},
      {"FloatWeights", "/config_groups/group_0/weights/type", "float", "weights.type"},
      {"DynamicWeights", "/config_groups/group_0/weights/dynamic", true, "weights.dynamic"},
      {"StaticActivations", "/config_groups/group_0/input_activations/dynamic", false,
       "input_activations.dynamic"},
      {"Activations4Bit", "/config_groups/group_0/input_activations/num_bits", 4, "input_activations.num_bits"},
      {"IntActivations", "/config_groups/group_0/input_activations/type", "int", "input_activations.type"},
      {"PerTensorActivations", "/config_groups/group_0/input_activations/strategy", "tensor",
       "input_activations.strategy"},
      {"AsymmetricActivations", "/config_groups/group_0/input_activations/symmetric", false,
       "input_activations.symmetric"},
      {"WeightOnly", "/config_groups/group_0/input_activations", nullptr, "input_activations is absent"},
      {"OutputActivations", "/config_groups/group_0/output_activations", Json::object(), "output_activations"},
  };
}

class QuantizationConfigRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(QuantizationConfigRefuses, NamingTheFieldAndTheRule) {
  Refusal const& refusal = GetParam();
  Json block = w4a8_block();
  Json::json_pointer const pointer(refusal.pointer);
  if (refusal.value.is_discarded()) {
    block[pointer.parent_pointer()].erase(pointer.back());
  } else {
    block[pointer] = refusal.value;
  }
  Json json = qwen3_30b_a3b();
  json["quantization_config"] = block;
  Status const status = parse(json, "models/x/config.json");
  EXPECT_EQ(status.code(), StatusCode::kNotSupported) << status.message();
  EXPECT_NE(status.message().find("models/x/config.json"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(refusal.field), std::string::npos) << status.message();
}

INSTANTIATE_TEST_SUITE_P(Rules, QuantizationConfigRefuses, ::testing::ValuesIn(refusals()),
                         [](::testing::TestParamInfo<Refusal> const& info) { return std::string(info.param.rule); });

TEST(QuantizationConfig, MalformedBlocksAreInvalid) {
  Json json = qwen3_30b_a3b();
  json["quantization_config"] = "w4a8";
  EXPECT_EQ(parse(json).code(), StatusCode::kInvalidArgument);
  Json block = w4a8_block();
  block["config_groups"] = Json::object();
  json["quantization_config"] = block;
  EXPECT_NE(parse(json).message().find("config_groups must be a non-empty object"), std::string::npos);
  block = w4a8_block();
  block["config_groups"]["group_0"]["weights"] = 4;
  json["quantization_config"] = block;
  EXPECT_NE(parse(json).message().find("weights must be an object"), std::string::npos);
}

}  // namespace
}  // namespace w4a8moe
