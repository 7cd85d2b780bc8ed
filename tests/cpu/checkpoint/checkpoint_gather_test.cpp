// Gathering a layer's experts: a synthetic W4A8 checkpoint written here (own packing, own safetensors writer)
// gathers bit-exactly into the stacked GEMM1 [E, 2I, H/8] (gate rows, then up rows) and GEMM2 [E, H, I/8] arrays,
// under both naming conventions and across shards; a missing or malformed tensor is an error naming it.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "checkpoint_test_util.h"
#include "common/float_formats.h"
#include "reference/quantized_experts.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::bytes_of;
using testing::RawTensor;
using testing::TempDir;

constexpr int kExperts = 3;
constexpr int kHidden = 256;
constexpr int kIntermediate = 128;
constexpr int kLayers = 2;

struct Naming {
  char const* model_type;
  char const* experts;  // "model.layers.{L}.<experts>.{e}."
  char const* gate;
  char const* up;
  char const* down;
};

Naming const kQwen = {"qwen3_moe", "mlp.experts", "gate_proj", "up_proj", "down_proj"};
Naming const kMixtral = {"mixtral", "block_sparse_moe.experts", "w1", "w3", "w2"};

std::string module_name(Naming const& naming, int layer, int expert, char const* projection) {
  return "model.layers." + std::to_string(layer) + "." + naming.experts + "." + std::to_string(expert) + "." +
         projection;
}

// One projection of one expert, quantized.
struct Projection {
  int rows = 0;
  int cols = 0;
  std::vector<int8_t> q;         // [rows, cols]
  std::vector<uint16_t> scales;  // bf16 [rows, ceil(cols/128)]

  // compressed-tensors packing, written out here: nibble i of word j holds q[8j + i] + 8.
  std::vector<int32_t> packed() const {
    std::vector<int32_t> words(q.size() / 8);
    for (size_t j = 0; j < words.size(); ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i) word |= uint32_t(q[8 * j + size_t(i)] + 8) << (4 * i);
      words[j] = int32_t(word);
    }
    return words;
  }
};

Projection random_projection(int rows, int cols, std::mt19937& rng) {
  Projection p{rows, cols, {}, {}};
  std::uniform_int_distribution<int> level(-8, 7);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-1f);
  for (int n = 0; n < rows * cols; ++n) p.q.push_back(int8_t(level(rng)));
  for (int n = 0; n < rows * group_count(cols); ++n) p.scales.push_back(float_to_bf16(scale(rng)));
  return p;
}

// A synthetic MoE checkpoint: two MoE layers of 3 experts plus a non-expert tensor.
struct SyntheticLayer {
  std::vector<Projection> gate, up, down;  // per expert
};

struct Synthetic {
  Naming naming;
  int hidden, inter;
  std::vector<SyntheticLayer> layers;
  std::vector<RawTensor> tensors;

  explicit Synthetic(Naming const& n, int hidden_size = kHidden, int intermediate_size = kIntermediate)
      : naming(n), hidden(hidden_size), inter(intermediate_size) {
    std::mt19937 rng(1234);
    tensors.push_back({"model.embed_tokens.weight", "BF16", {8, hidden}, std::string(size_t(8 * hidden * 2), '\1')});
    for (int layer = 0; layer < kLayers; ++layer) {
      SyntheticLayer synthetic;
      for (int e = 0; e < kExperts; ++e) {
        synthetic.gate.push_back(random_projection(inter, hidden, rng));
        synthetic.up.push_back(random_projection(inter, hidden, rng));
        synthetic.down.push_back(random_projection(hidden, inter, rng));
        add(layer, e, naming.gate, synthetic.gate.back());
        add(layer, e, naming.up, synthetic.up.back());
        add(layer, e, naming.down, synthetic.down.back());
      }
      layers.push_back(std::move(synthetic));
    }
  }

  void add(int layer, int expert, char const* projection, Projection const& p) {
    std::string const module = module_name(naming, layer, expert, projection);
    tensors.push_back({module + ".weight_packed", "I32", {p.rows, p.cols / 8}, bytes_of(p.packed())});
    tensors.push_back({module + ".weight_scale", "BF16", {p.rows, group_count(p.cols)}, bytes_of(p.scales)});
    // compressed-tensors stores the shape as int64; accept int32 too (expert 1 of each layer).
    if (expert == 1) {
      tensors.push_back({module + ".weight_shape", "I32", {2}, bytes_of(std::vector<int32_t>{p.rows, p.cols})});
    } else {
      tensors.push_back({module + ".weight_shape", "I64", {2}, bytes_of(std::vector<int64_t>{p.rows, p.cols})});
    }
  }

  RawTensor* find(std::string const& name) {
    for (RawTensor& tensor : tensors) {
      if (tensor.name == name) return &tensor;
    }
    return nullptr;
  }
};

ModelConfig w4a8_config(Naming const& naming, int hidden = kHidden, int inter = kIntermediate) {
  std::string const experts_field = naming.model_type == std::string("mixtral") ? "num_local_experts" : "num_experts";
  std::string const intermediate_field =
      naming.model_type == std::string("mixtral") ? "intermediate_size" : "moe_intermediate_size";
  std::string const json = std::string(R"({"model_type": ")") + naming.model_type + R"(", "hidden_size": )" +
                           std::to_string(hidden) + R"(, "num_hidden_layers": )" + std::to_string(kLayers) +
                           R"(, "num_experts_per_tok": 2, ")" + experts_field + R"(": )" + std::to_string(kExperts) +
                           R"(, ")" + intermediate_field + R"(": )" + std::to_string(inter) + R"(,
      "quantization_config": {"quant_method": "compressed-tensors", "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"],
          "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 128},
          "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": true}}}}})";
  ModelConfig config;
  Status const status = parse_model_config(json, "config.json", &config);
  EXPECT_TRUE(status.ok()) << status.message();
  return config;
}

template <class T>
std::vector<T> concat_blocks(std::vector<std::vector<T>> const& blocks) {
  std::vector<T> all;
  for (auto const& block : blocks) all.insert(all.end(), block.begin(), block.end());
  return all;
}

void expect_gathered(Synthetic const& synthetic, int layer, LayerExperts const& experts) {
  SyntheticLayer const& expected = synthetic.layers[size_t(layer)];
  EXPECT_EQ(experts.layer, layer);
  EXPECT_EQ(experts.num_experts, kExperts);
  EXPECT_EQ(experts.hidden_size, synthetic.hidden);
  EXPECT_EQ(experts.intermediate_size, synthetic.inter);
  std::vector<std::vector<int32_t>> gemm1_words, gemm2_words;
  std::vector<std::vector<uint16_t>> gemm1_scales, gemm2_scales;
  std::vector<std::vector<int8_t>> gemm1_q;
  for (int e = 0; e < kExperts; ++e) {
    gemm1_words.push_back(expected.gate[size_t(e)].packed());  // gate rows first ...
    gemm1_words.push_back(expected.up[size_t(e)].packed());    // ... then up rows
    gemm1_scales.push_back(expected.gate[size_t(e)].scales);
    gemm1_scales.push_back(expected.up[size_t(e)].scales);
    gemm1_q.push_back(expected.gate[size_t(e)].q);
    gemm1_q.push_back(expected.up[size_t(e)].q);
    gemm2_words.push_back(expected.down[size_t(e)].packed());
    gemm2_scales.push_back(expected.down[size_t(e)].scales);
  }
  EXPECT_EQ(experts.gemm1_weights, concat_blocks(gemm1_words));
  EXPECT_EQ(experts.gemm1_scales, concat_blocks(gemm1_scales));
  EXPECT_EQ(experts.gemm2_weights, concat_blocks(gemm2_words));
  EXPECT_EQ(experts.gemm2_scales, concat_blocks(gemm2_scales));

  // The reference's unpacking reads the stacked GEMM1 weight as [E, 2I, H] q with gate rows before up rows.
  ExpertWeightShape const shape = experts.gemm1_shape();
  EXPECT_EQ(shape.n, 2 * synthetic.inter);
  EXPECT_EQ(shape.k, synthetic.hidden);
  EXPECT_EQ(reference::unpack_offset_binary(experts.gemm1_weights, shape), concat_blocks(gemm1_q));
  EXPECT_EQ(experts.gemm2_shape().n, synthetic.hidden);
  EXPECT_EQ(experts.gemm2_shape().k, synthetic.inter);
}

class GatherNaming : public ::testing::TestWithParam<Naming> {};

TEST_P(GatherNaming, StacksGateThenUpAndDownBitExactly) {
  Synthetic const synthetic(GetParam());
  TempDir dir;
  testing::write_file(dir.file("model.safetensors"), testing::make_safetensors(synthetic.tensors));
  Checkpoint checkpoint;
  ASSERT_TRUE(Checkpoint::open(dir.path().string(), &checkpoint).ok());
  ModelConfig const config = w4a8_config(GetParam());
  for (int layer = 0; layer < kLayers; ++layer) {
    LayerExperts experts;
    Status const status = gather_layer_experts(checkpoint, config, layer, &experts);
    ASSERT_TRUE(status.ok()) << status.message();
    expect_gathered(synthetic, layer, experts);
  }
}

// Sizes that are not multiples of 128 (gpt-oss's 2880 is one): the last group of each row is partial and the
// scales have ceil(size / 128) columns.
TEST(Gather, ReadsSizesWithAPartialLastGroup) {
  Synthetic const synthetic(kQwen, 208, 144);
  TempDir dir;
  testing::write_file(dir.file("model.safetensors"), testing::make_safetensors(synthetic.tensors));
  Checkpoint checkpoint;
  ASSERT_TRUE(Checkpoint::open(dir.path().string(), &checkpoint).ok());
  LayerExperts experts;
  Status const status = gather_layer_experts(checkpoint, w4a8_config(kQwen, 208, 144), 1, &experts);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(experts.gemm1_scales.size(), size_t(kExperts * 2 * 144 * 2));
  EXPECT_EQ(experts.gemm2_scales.size(), size_t(kExperts * 208 * 2));
  expect_gathered(synthetic, 1, experts);
}

INSTANTIATE_TEST_SUITE_P(Conventions, GatherNaming, ::testing::Values(kQwen, kMixtral),
                         [](::testing::TestParamInfo<Naming> const& info) {
                           return std::string(info.param.model_type);
                         });

TEST(Gather, ReadsAcrossShards) {
  Synthetic const synthetic(kQwen);
  TempDir dir;
  std::vector<RawTensor> shards[2];
  std::string index = R"({"weight_map": {)";
  for (size_t n = 0; n < synthetic.tensors.size(); ++n) {
    shards[n % 2].push_back(synthetic.tensors[n]);
    index += std::string(n ? "," : "") + "\"" + synthetic.tensors[n].name + "\": \"part-" + std::to_string(n % 2) +
             ".safetensors\"";
  }
  index += "}}";
  testing::write_file(dir.file("part-0.safetensors"), testing::make_safetensors(shards[0]));
  testing::write_file(dir.file("part-1.safetensors"), testing::make_safetensors(shards[1]));
  testing::write_file(dir.file("model.safetensors.index.json"), index);
  Checkpoint checkpoint;
  ASSERT_TRUE(Checkpoint::open(dir.path().string(), &checkpoint).ok());
  LayerExperts experts;
  Status const status = gather_layer_experts(checkpoint, w4a8_config(kQwen), 1, &experts);
  ASSERT_TRUE(status.ok()) << status.message();
  expect_gathered(synthetic, 1, experts);
}

// ---- Errors ---------------------------------------------------------------------------------------------------

struct BrokenCheckpoint {
  char const* rule;
  std::function<void(Synthetic&)> breakage;
  char const* tensor;      // the message names this tensor
  char const* rule_words;  // and says this
};

std::string layer1(char const* rest) { return std::string("model.layers.1.mlp.experts.") + rest; }

void erase_tensor(Synthetic& synthetic, std::string const& name) {
  auto& tensors = synthetic.tensors;
  for (auto it = tensors.begin(); it != tensors.end(); ++it) {
    if (it->name == name) {
      tensors.erase(it);
      return;
    }
  }
  FAIL() << "no tensor " << name;
}

std::vector<BrokenCheckpoint> broken_checkpoints() {
  return {
      {"MissingExpert",
       [](Synthetic& s) {
         for (char const* suffix : {"weight_packed", "weight_scale", "weight_shape"}) {
           for (char const* projection : {"gate_proj", "up_proj", "down_proj"}) {
             erase_tensor(s, layer1("2.") + projection + "." + suffix);
           }
         }
       },
       "model.layers.1.mlp.experts.2.gate_proj.weight_packed", "is missing (expert 2 of layer 1)"},
      {"MissingUpProjection", [](Synthetic& s) { erase_tensor(s, layer1("0.up_proj.weight_packed")); },
       "model.layers.1.mlp.experts.0.up_proj.weight_packed", "is missing"},
      {"MissingScale", [](Synthetic& s) { erase_tensor(s, layer1("1.down_proj.weight_scale")); },
       "model.layers.1.mlp.experts.1.down_proj.weight_scale", "is missing"},
      {"MissingShape", [](Synthetic& s) { erase_tensor(s, layer1("1.gate_proj.weight_shape")); },
       "model.layers.1.mlp.experts.1.gate_proj.weight_shape", "is missing"},
      {"ScaleNotBF16", [](Synthetic& s) { s.find(layer1("0.gate_proj.weight_scale"))->dtype = "F16"; },
       "model.layers.1.mlp.experts.0.gate_proj.weight_scale", "dtype F16, needs BF16"},
      {"PackedNotInt32",
       [](Synthetic& s) {
         RawTensor* packed = s.find(layer1("2.down_proj.weight_packed"));
         packed->dtype = "U8";
         packed->shape = {kHidden, kIntermediate / 2};
       },
       "model.layers.1.mlp.experts.2.down_proj.weight_packed", "dtype U8, needs I32"},
      {"PackedWrongShape",
       [](Synthetic& s) {
         RawTensor* packed = s.find(layer1("0.up_proj.weight_packed"));
         packed->shape = {kHidden / 8, kIntermediate};  // transposed
       },
       "model.layers.1.mlp.experts.0.up_proj.weight_packed", "shape [32, 128], needs [128, 32]"},
      {"ShapeTensorDisagrees",
       [](Synthetic& s) {
         s.find(layer1("0.down_proj.weight_shape"))->bytes = bytes_of(std::vector<int64_t>{kIntermediate, kHidden});
       },
       "model.layers.1.mlp.experts.0.down_proj.weight_shape", "holds {128, 256}, needs {256, 128}"},
      {"NoExpertsAtAll",
       [](Synthetic& s) {
         std::vector<RawTensor> kept;
         for (RawTensor const& tensor : s.tensors) {
           if (tensor.name.find("layers.1.") == std::string::npos) kept.push_back(tensor);
         }
         s.tensors = kept;
       },
       "", "no W4A8 expert weights found"},
  };
}

class GatherRefuses : public ::testing::TestWithParam<BrokenCheckpoint> {};

TEST_P(GatherRefuses, NamingTheTensor) {
  BrokenCheckpoint const& broken = GetParam();
  Synthetic synthetic(kQwen);
  broken.breakage(synthetic);
  TempDir dir;
  std::string const path = dir.file("model.safetensors");
  testing::write_file(path, testing::make_safetensors(synthetic.tensors));
  Checkpoint checkpoint;
  ASSERT_TRUE(Checkpoint::open(path, &checkpoint).ok());
  LayerExperts experts;
  Status const status = gather_layer_experts(checkpoint, w4a8_config(kQwen), 1, &experts);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
  if (*broken.tensor) {
    EXPECT_NE(status.message().find(std::string("'") + broken.tensor + "'"), std::string::npos) << status.message();
  }
  EXPECT_NE(status.message().find(broken.rule_words), std::string::npos) << status.message();
  EXPECT_TRUE(experts.gemm1_weights.empty());
}

INSTANTIATE_TEST_SUITE_P(Rules, GatherRefuses, ::testing::ValuesIn(broken_checkpoints()),
                         [](::testing::TestParamInfo<BrokenCheckpoint> const& info) {
                           return std::string(info.param.rule);
                         });

TEST(Gather, RefusesWhatTheConfigRulesOut) {
  Synthetic const synthetic(kQwen);
  TempDir dir;
  testing::write_file(dir.file("model.safetensors"), testing::make_safetensors(synthetic.tensors));
  Checkpoint checkpoint;
  ASSERT_TRUE(Checkpoint::open(dir.path().string(), &checkpoint).ok());
  LayerExperts experts;

  ModelConfig unquantized = w4a8_config(kQwen);
  unquantized.w4a8 = false;
  EXPECT_EQ(gather_layer_experts(checkpoint, unquantized, 0, &experts).code(), StatusCode::kNotSupported);

  ModelConfig const config = w4a8_config(kQwen);
  EXPECT_NE(gather_layer_experts(checkpoint, config, 2, &experts).message().find("outside"), std::string::npos);
  EXPECT_FALSE(gather_layer_experts(checkpoint, config, -1, &experts).ok());

  ModelConfig dense_first = config;
  dense_first.moe.is_moe_layer[0] = false;
  EXPECT_NE(gather_layer_experts(checkpoint, dense_first, 0, &experts).message().find("dense"), std::string::npos);

  ModelConfig gpt_oss = config;  // gpt-oss's layer needs MXFP4 experts with biases, not int4 ones
  gpt_oss.moe.model_type = "gpt_oss";
  Status const not_served = gather_layer_experts(checkpoint, gpt_oss, 0, &experts);
  EXPECT_EQ(not_served.code(), StatusCode::kNotSupported);
  EXPECT_NE(not_served.message().find("model_type \"gpt_oss\""), std::string::npos) << not_served.message();

  ModelConfig odd_hidden = config;
  odd_hidden.moe.hidden_size = 2888;  // not a multiple of 16
  EXPECT_EQ(gather_layer_experts(checkpoint, odd_hidden, 0, &experts).code(), StatusCode::kNotSupported);

  ModelConfig more_experts = config;
  more_experts.moe.num_experts = kExperts + 1;
  Status const missing = gather_layer_experts(checkpoint, more_experts, 0, &experts);
  EXPECT_NE(missing.message().find("experts.3.gate_proj.weight_packed' is missing"), std::string::npos)
      << missing.message();

  EXPECT_FALSE(gather_layer_experts(checkpoint, config, 0, nullptr).ok());
}

}  // namespace
}  // namespace w4a8moe
