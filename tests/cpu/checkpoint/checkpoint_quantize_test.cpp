// The quantizer: an unquantized MoE checkpoint written here becomes a W4A8 checkpoint whose every tensor reads
// back bit-exactly against an RTN written out independently in this file, non-expert tensors are copied byte for
// byte, config.json carries the W4A8 block, the result gathers, sharded output matches single-file output, and a
// caller's quantizer plugs in through ExpertWeightQuantizer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "checkpoint_test_util.h"
#include "common/float_formats.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::bytes_of;
using testing::RawTensor;
using testing::TempDir;

constexpr int kExperts = 2;
constexpr int kHidden = 256;
constexpr int kIntermediate = 128;
constexpr int kLayers = 2;

std::string expert_weight(int layer, int expert, char const* projection) {
  return "model.layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(expert) + "." + projection +
         ".weight";
}

std::vector<uint16_t> random_bf16(size_t count, float spread, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<uint16_t> values(count);
  for (auto& value : values) value = float_to_bf16(normal(rng));
  return values;
}

// An unquantized two-layer MoE: bf16 experts (one in fp16, one in fp32, to cover the input dtypes), attention,
// router, norms and embeddings in several dtypes.
std::vector<RawTensor> unquantized_model() {
  std::mt19937 rng(99);
  std::vector<RawTensor> tensors = {
      {"model.embed_tokens.weight", "F32", {16, kHidden}, std::string(16 * kHidden * 4, '\3')},
      {"lm_head.weight", "BF16", {16, kHidden}, bytes_of(random_bf16(16 * kHidden, 0.02f, rng))},
      {"model.norm.weight", "BF16", {kHidden}, bytes_of(random_bf16(kHidden, 1.0f, rng))},
      {"model.rotary.inv_freq", "F64", {4}, std::string(32, '\7')},
      {"model.step", "I64", {}, std::string(8, '\0')},
  };
  for (int layer = 0; layer < kLayers; ++layer) {
    std::string const prefix = "model.layers." + std::to_string(layer);
    tensors.push_back({prefix + ".self_attn.q_proj.weight", "F16", {kHidden, kHidden},
                       std::string(kHidden * kHidden * 2, '\5')});
    tensors.push_back({prefix + ".mlp.gate.weight", "BF16", {kExperts, kHidden},
                       bytes_of(random_bf16(kExperts * kHidden, 0.1f, rng))});
    tensors.push_back({prefix + ".input_layernorm.weight", "BF16", {kHidden}, bytes_of(random_bf16(kHidden, 1, rng))});
    for (int e = 0; e < kExperts; ++e) {
      for (char const* projection : {"gate_proj", "up_proj", "down_proj"}) {
        bool const down = projection == std::string("down_proj");
        int const rows = down ? kHidden : kIntermediate;
        int const cols = down ? kIntermediate : kHidden;
        auto values = random_bf16(size_t(rows * cols), 0.02f * float(e + 1), rng);
        if (layer == 0 && e == 0 && !down) {
          for (int c = 0; c < 128; ++c) values[size_t(c)] = 0;  // an all-zero group
        }
        if (layer == 1 && e == 1 && down) {
          std::vector<uint16_t> halves(values.size());
          for (size_t n = 0; n < values.size(); ++n) halves[n] = float_to_fp16(bf16_to_float(values[n]));
          tensors.push_back({expert_weight(layer, e, projection), "F16", {rows, cols}, bytes_of(halves)});
        } else if (layer == 1 && e == 0 && down) {
          std::vector<float> floats(values.size());
          for (size_t n = 0; n < values.size(); ++n) floats[n] = bf16_to_float(values[n]) * 1.001f;
          tensors.push_back({expert_weight(layer, e, projection), "F32", {rows, cols}, bytes_of(floats)});
        } else {
          tensors.push_back({expert_weight(layer, e, projection), "BF16", {rows, cols}, bytes_of(values)});
        }
      }
    }
  }
  return tensors;
}

std::string const kInputConfig = R"({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
  "hidden_size": 256, "num_hidden_layers": 2, "num_experts": 2, "num_experts_per_tok": 1,
  "moe_intermediate_size": 128, "norm_topk_prob": true, "torch_dtype": "bfloat16", "vocab_size": 16})";

// RTN as documented, written out independently of the library: scale = bf16(max|w| / 7), q = round-half-even(
// w / scale) clamped to [-8, 7]; packed as compressed-tensors does.
struct ExpectedExpert {
  std::vector<int32_t> packed;
  std::vector<uint16_t> scales;
};

float as_float(RawTensor const& tensor, size_t n) {
  if (tensor.dtype == "F32") {
    float value;
    std::memcpy(&value, tensor.bytes.data() + 4 * n, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, tensor.bytes.data() + 2 * n, 2);
  return tensor.dtype == "BF16" ? bf16_to_float(bits) : fp16_to_float(bits);
}

ExpectedExpert expected_rtn(RawTensor const& weight) {
  size_t const rows = size_t(weight.shape[0]);
  size_t const cols = size_t(weight.shape[1]);
  std::vector<int> q(rows * cols);
  ExpectedExpert expected;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < cols / 128; ++g) {
      float max_magnitude = 0;
      for (size_t c = g * 128; c < (g + 1) * 128; ++c) {
        max_magnitude = std::max(max_magnitude, std::fabs(as_float(weight, r * cols + c)));
      }
      uint16_t const scale = float_to_bf16(max_magnitude / 7.0f);
      expected.scales.push_back(scale);
      double const step = bf16_to_float(scale);
      for (size_t c = g * 128; c < (g + 1) * 128; ++c) {
        double const ratio = step == 0 ? 0 : as_float(weight, r * cols + c) / float(step);
        double level = std::floor(ratio + 0.5);
        if (level - ratio == 0.5 && std::fmod(level, 2.0) != 0) level -= 1;  // ties to even
        q[r * cols + c] = int(std::min(7.0, std::max(-8.0, level)));
      }
    }
  }
  for (size_t j = 0; j < q.size() / 8; ++j) {
    uint32_t word = 0;
    for (size_t i = 0; i < 8; ++i) word |= uint32_t(q[8 * j + i] + 8) << (4 * i);
    expected.packed.push_back(int32_t(word));
  }
  return expected;
}

template <class T>
std::vector<T> read_values(Tensor const& tensor) {
  std::vector<T> values(tensor.num_bytes / sizeof(T));
  std::memcpy(values.data(), tensor.data, tensor.num_bytes);
  return values;
}

class Quantizer : public ::testing::Test {
 protected:
  void SetUp() override {
    input_tensors_ = unquantized_model();
    testing::write_file(input_.file("model.safetensors"), testing::make_safetensors(input_tensors_));
    testing::write_file(input_.file("config.json"), kInputConfig);
  }

  QuantizeOptions options(std::string const& output_name) const {
    QuantizeOptions options;
    options.input = input_.path().string();
    options.input_config = input_.file("config.json");
    options.output_dir = output_.file(output_name);
    return options;
  }

  // Every tensor of the quantized checkpoint against the input and the independent RTN.
  void expect_quantized(Checkpoint const& output) const {
    size_t expected_count = 0;
    for (RawTensor const& input : input_tensors_) {
      SCOPED_TRACE(input.name);
      bool const expert = input.name.find(".mlp.experts.") != std::string::npos;
      if (!expert) {
        Tensor const* copied = output.find(input.name);
        ASSERT_NE(copied, nullptr);
        EXPECT_STREQ(dtype_name(copied->dtype), input.dtype.c_str());
        EXPECT_EQ(copied->shape, input.shape);
        ASSERT_EQ(copied->num_bytes, input.bytes.size());
        EXPECT_EQ(std::memcmp(copied->data, input.bytes.data(), input.bytes.size()), 0);
        ++expected_count;
        continue;
      }
      std::string const module = input.name.substr(0, input.name.size() - 7);
      EXPECT_EQ(output.find(input.name), nullptr);
      Tensor const* packed = output.find(module + ".weight_packed");
      Tensor const* scale = output.find(module + ".weight_scale");
      Tensor const* shape = output.find(module + ".weight_shape");
      ASSERT_TRUE(packed && scale && shape);
      EXPECT_EQ(packed->dtype, DType::kI32);
      EXPECT_EQ(packed->shape, (std::vector<int64_t>{input.shape[0], input.shape[1] / 8}));
      EXPECT_EQ(scale->dtype, DType::kBF16);
      EXPECT_EQ(scale->shape, (std::vector<int64_t>{input.shape[0], input.shape[1] / 128}));
      EXPECT_EQ(shape->dtype, DType::kI64);
      EXPECT_EQ(read_values<int64_t>(*shape), input.shape);
      ExpectedExpert const expected = expected_rtn(input);
      EXPECT_EQ(read_values<int32_t>(*packed), expected.packed);
      EXPECT_EQ(read_values<uint16_t>(*scale), expected.scales);
      expected_count += 3;
    }
    EXPECT_EQ(output.tensor_names().size(), expected_count);
  }

  TempDir input_;
  TempDir output_;
  std::vector<RawTensor> input_tensors_;
};

TEST_F(Quantizer, WritesW4A8ThatReadsBackBitExactly) {
  QuantizeSummary summary;
  Status const status = quantize_checkpoint(options("single"), &summary);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(summary.expert_weights_quantized, kLayers * kExperts * 3);
  EXPECT_EQ(summary.tensors_copied, 5 + 3 * kLayers);
  EXPECT_EQ(summary.files_written,
            (std::vector<std::string>{output_.file("single/model.safetensors"), output_.file("single/config.json")}));

  SafetensorsFile file;
  ASSERT_TRUE(SafetensorsFile::open(output_.file("single/model.safetensors"), &file).ok());
  EXPECT_EQ(file.metadata().at("format"), "pt");  // transformers refuses files without it
  Checkpoint output;
  ASSERT_TRUE(Checkpoint::open(output_.file("single"), &output).ok());
  expect_quantized(output);
  for (auto const& entry : std::filesystem::directory_iterator(output_.file("single"))) {
    EXPECT_NE(entry.path().extension(), ".partial") << entry.path();
  }
}

TEST_F(Quantizer, ConfigKeepsTheModelAndAddsTheW4A8Block) {
  ASSERT_TRUE(quantize_checkpoint(options("out")).ok());
  ModelConfig config;
  Status const status = read_model_config(output_.file("out/config.json"), &config);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(config.w4a8);
  EXPECT_EQ(config.moe.num_experts, kExperts);
  EXPECT_EQ(config.moe.intermediate_size, kIntermediate);

  auto const json = nlohmann::ordered_json::parse(testing::read_file(output_.file("out/config.json")));
  EXPECT_EQ(json.begin().key(), "architectures");  // field order kept
  EXPECT_EQ(json["torch_dtype"], "bfloat16");
  auto const& ignore = json["quantization_config"]["ignore"];
  std::vector<std::string> const expected_ignore = {
      "lm_head",
      "model.embed_tokens",
      "model.layers.0.mlp.gate",
      "model.layers.0.self_attn.q_proj",
      "model.layers.1.mlp.gate",
      "model.layers.1.self_attn.q_proj"};
  EXPECT_EQ(ignore.get<std::vector<std::string>>(), expected_ignore);
}

TEST_F(Quantizer, OutputGathersIntoTheKernelLayout) {
  ASSERT_TRUE(quantize_checkpoint(options("out")).ok());
  Checkpoint output;
  ASSERT_TRUE(Checkpoint::open(output_.file("out"), &output).ok());
  ModelConfig config;
  ASSERT_TRUE(read_model_config(output_.file("out/config.json"), &config).ok());
  LayerExperts experts;
  Status const status = gather_layer_experts(output, config, 1, &experts);
  ASSERT_TRUE(status.ok()) << status.message();
  size_t const words = size_t(kIntermediate) * kHidden / 8;
  for (int e = 0; e < kExperts; ++e) {
    auto const gate = read_values<int32_t>(*output.find(expert_weight(1, e, "gate_proj") + "_packed"));
    auto const up = read_values<int32_t>(*output.find(expert_weight(1, e, "up_proj") + "_packed"));
    auto const first = experts.gemm1_weights.begin() + std::ptrdiff_t(2 * words * size_t(e));
    EXPECT_TRUE(std::equal(gate.begin(), gate.end(), first));
    EXPECT_TRUE(std::equal(up.begin(), up.end(), first + std::ptrdiff_t(words)));
  }
}

TEST_F(Quantizer, ShardedOutputHoldsTheSameTensors) {
  QuantizeOptions sharded = options("sharded");
  sharded.max_shard_bytes = 64 * 1024;
  QuantizeSummary summary;
  ASSERT_TRUE(quantize_checkpoint(sharded, &summary).ok());
  EXPECT_GT(summary.files_written.size(), 3u);
  EXPECT_TRUE(std::filesystem::exists(output_.file("sharded/model.safetensors.index.json")));
  EXPECT_FALSE(std::filesystem::exists(output_.file("sharded/model.safetensors")));
  ASSERT_TRUE(quantize_checkpoint(options("single")).ok());

  Checkpoint from_shards;
  Checkpoint from_single;
  ASSERT_TRUE(Checkpoint::open(output_.file("sharded"), &from_shards).ok());
  ASSERT_TRUE(Checkpoint::open(output_.file("single"), &from_single).ok());
  ASSERT_EQ(from_shards.tensor_names(), from_single.tensor_names());
  for (std::string const& name : from_single.tensor_names()) {
    Tensor const& a = *from_shards.find(name);
    Tensor const& b = *from_single.find(name);
    EXPECT_EQ(a.dtype, b.dtype);
    EXPECT_EQ(a.shape, b.shape);
    ASSERT_EQ(a.num_bytes, b.num_bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.num_bytes), 0) << name;
  }
  expect_quantized(from_shards);
  auto const index = nlohmann::json::parse(testing::read_file(output_.file("sharded/model.safetensors.index.json")));
  uint64_t total = 0;
  for (std::string const& name : from_single.tensor_names()) total += from_single.find(name)->num_bytes;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
}

// Also for rows whose last group is partial (208 = 128 + 80 columns, as gpt-oss's 2880 = 22 * 128 + 64): that
// group's step comes from its own 80 weights.
TEST(RoundToNearest, ErrorsStayWithinHalfAStep) {
  for (int cols : {256, 208}) {
    SCOPED_TRACE("cols " + std::to_string(cols));
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    ExpertWeightInfo info;
    info.tensor_name = "w";
    info.rows = 4;
    info.cols = cols;
    int64_t const groups = (cols + 127) / 128;
    std::vector<float> weights(size_t(info.rows * info.cols));
    for (float& w : weights) w = normal(rng) * 0.05f;
    weights[3] = 1.0f;           // a large outlier in group (0, 0)
    weights[cols + 130] = 0.5f;  // and one in group (1, 1)
    std::vector<int8_t> q(weights.size());
    std::vector<uint16_t> scales(size_t(info.rows * groups), 0xFFFF);  // NaN until written
    RoundToNearestQuantizer rtn;
    ASSERT_TRUE(rtn.quantize(info, weights.data(), q.data(), scales.data()).ok());
    EXPECT_EQ(q[3], 7);  // the largest magnitude maps to the top level
    EXPECT_EQ(q[size_t(cols + 130)], 7);
    EXPECT_EQ(scales[size_t(groups + 1)], float_to_bf16(0.5f / 7.0f));
    for (int64_t r = 0; r < info.rows; ++r) {
      for (int64_t c = 0; c < info.cols; ++c) {
        size_t const n = size_t(r * info.cols + c);
        float const step = bf16_to_float(scales[size_t(r * groups + c / 128)]);
        EXPECT_GE(q[n], -7);  // /7 leaves -8 unused
        EXPECT_LE(std::fabs(weights[n] - float(q[n]) * step), step * 0.5f * 1.0001f) << r << "," << c;
      }
    }
  }
}

TEST(RoundToNearest, RefusesNonFiniteWeightsAndBadShapes) {
  ExpertWeightInfo info;
  info.tensor_name = "model.layers.0.mlp.experts.0.up_proj.weight";
  info.rows = 1;
  info.cols = 128;
  std::vector<float> weights(128, 0.5f);
  weights[17] = std::nanf("");
  std::vector<int8_t> q(128);
  std::vector<uint16_t> scales(1);
  RoundToNearestQuantizer rtn;
  Status const status = rtn.quantize(info, weights.data(), q.data(), scales.data());
  EXPECT_NE(status.message().find(info.tensor_name + ": element [0, 17] is not finite"), std::string::npos)
      << status.message();
  info.cols = 100;  // not a multiple of 16
  EXPECT_FALSE(rtn.quantize(info, weights.data(), q.data(), scales.data()).ok());
  info.cols = 128;
  EXPECT_FALSE(rtn.quantize(info, nullptr, q.data(), scales.data()).ok());
}

// A stand-in for a calibrated method: records what it is asked and writes q = 1, scale = 1.
class RecordingQuantizer : public ExpertWeightQuantizer {
 public:
  Status quantize(ExpertWeightInfo const& info, float const*, int8_t* q, uint16_t* scales) override {
    seen.push_back(info);
    std::fill(q, q + info.rows * info.cols, int8_t(produce_q));
    std::fill(scales, scales + info.rows * info.cols / 128, float_to_bf16(1.0f));
    return Status::Ok();
  }
  std::vector<ExpertWeightInfo> seen;
  int produce_q = 1;
};

TEST_F(Quantizer, TakesACallersQuantizer) {
  RecordingQuantizer recording;
  QuantizeOptions custom = options("custom");
  custom.quantizer = &recording;
  ASSERT_TRUE(quantize_checkpoint(custom).ok());
  ASSERT_EQ(recording.seen.size(), size_t(kLayers * kExperts * 3));
  int downs = 0;
  for (ExpertWeightInfo const& info : recording.seen) {
    EXPECT_EQ(info.tensor_name, expert_weight(info.layer, info.expert,
                                              info.projection == ExpertProjection::kGate ? "gate_proj"
                                              : info.projection == ExpertProjection::kUp ? "up_proj"
                                                                                         : "down_proj"));
    downs += info.projection == ExpertProjection::kDown;
    EXPECT_EQ(info.cols, info.projection == ExpertProjection::kDown ? kIntermediate : kHidden);
  }
  EXPECT_EQ(downs, kLayers * kExperts);
  Checkpoint output;
  ASSERT_TRUE(Checkpoint::open(output_.file("custom"), &output).ok());
  for (int32_t word : read_values<int32_t>(*output.find(expert_weight(0, 1, "down_proj") + "_packed"))) {
    EXPECT_EQ(uint32_t(word), 0x99999999u);  // q = 1 stored as 9 in every nibble
  }

  recording.produce_q = 8;  // outside int4: refused before anything is written under that name
  QuantizeOptions bad = options("custom_bad");
  bad.quantizer = &recording;
  Status const status = quantize_checkpoint(bad);
  EXPECT_NE(status.message().find("outside [-8, 7]"), std::string::npos) << status.message();
  EXPECT_FALSE(std::filesystem::exists(output_.file("custom_bad/model.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(output_.file("custom_bad/model.safetensors.partial")));
}

TEST_F(Quantizer, RefusesWhatItCannotQuantize) {
  // An input config that is already quantized.
  testing::write_file(input_.file("quantized_config.json"),
                      R"({"model_type": "qwen3_moe", "quantization_config": {"quant_method": "fp8"}})");
  QuantizeOptions requantize = options("a");
  requantize.input_config = input_.file("quantized_config.json");
  EXPECT_NE(quantize_checkpoint(requantize).message().find("already has a quantization_config"), std::string::npos);

  // The output directory is the input's.
  QuantizeOptions in_place = options("b");
  in_place.output_dir = input_.path().string();
  EXPECT_NE(quantize_checkpoint(in_place).message().find("is the input's"), std::string::npos);

  QuantizeOptions empty;
  EXPECT_EQ(quantize_checkpoint(empty).code(), StatusCode::kInvalidArgument);

  // Expert weights that break the rules, each named with its file.
  struct Case {
    RawTensor weight;
    char const* words;
  };
  std::vector<Case> const cases = {
      {{expert_weight(0, 0, "gate_proj"), "I32", {128, 256}, std::string(128 * 256 * 4, '\0')}, "dtype I32"},
      {{expert_weight(0, 0, "gate_proj"), "BF16", {128, 200}, std::string(128 * 200 * 2, '\0')}, "shape [128, 200]"},
      {{expert_weight(0, 0, "gate_proj"), "BF16", {128, 2, 128}, std::string(128 * 256 * 2, '\0')},
       "shape [128, 2, 128]"},
  };
  for (Case const& c : cases) {
    TempDir dir;
    testing::write_file(dir.file("model.safetensors"), testing::make_safetensors({c.weight}));
    QuantizeOptions bad;
    bad.input = dir.path().string();
    bad.output_dir = output_.file("c");
    Status const status = quantize_checkpoint(bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(dir.file("model.safetensors") + ": tensor '" + c.weight.name + "'"),
              std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find(c.words), std::string::npos) << status.message();
  }

  // Non-finite weights: refused by RTN with the tensor named.
  std::vector<uint16_t> values(128 * 256, float_to_bf16(0.25f));
  values[300] = 0x7F80;  // +inf
  TempDir dir;
  RawTensor const infinite_weight = {expert_weight(0, 0, "up_proj"), "BF16", {128, 256}, bytes_of(values)};
  testing::write_file(dir.file("model.safetensors"), testing::make_safetensors({infinite_weight}));
  QuantizeOptions infinite;
  infinite.input = dir.path().string();
  infinite.output_dir = output_.file("d");
  Status const status = quantize_checkpoint(infinite);
  EXPECT_NE(status.message().find(expert_weight(0, 0, "up_proj") + ": element [1, 44] is not finite"),
            std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace w4a8moe
