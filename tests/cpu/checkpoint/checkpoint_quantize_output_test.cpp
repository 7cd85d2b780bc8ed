// What the quantizer writes where: every output name once (an input that still holds quantized tensors of an
// expert module it would quantize again is refused, naming both tensors, before anything is written), only into a
// directory that holds no checkpoint yet, only a config.json the loader takes (read in bounded time), and a run
// that fails leaves no file behind, config.json least of all.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "checkpoint_test_util.h"
#include "common/float_formats.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

namespace fs = std::filesystem;
using testing::bytes_of;
using testing::RawTensor;
using testing::TempDir;

constexpr char kGate[] = "model.layers.0.mlp.experts.1.gate_proj";

std::string expert_weight(int expert, char const* projection) {
  return "model.layers.0.mlp.experts." + std::to_string(expert) + "." + projection + ".weight";
}

// One layer of two experts (H = 128, I = 32) and a norm: enough tensors to spread over several small shards.
std::vector<RawTensor> small_model() {
  std::vector<RawTensor> tensors = {{"model.norm.weight", "BF16", {128}, std::string(256, '\1')}};
  for (int e = 0; e < 2; ++e) {
    for (char const* projection : {"gate_proj", "up_proj", "down_proj"}) {
      bool const down = projection == std::string("down_proj");
      std::vector<uint16_t> const values(32 * 128, float_to_bf16(0.01f * float(e + 1)));
      tensors.push_back({expert_weight(e, projection), "BF16", {down ? 128 : 32, down ? 32 : 128}, bytes_of(values)});
    }
  }
  return tensors;
}

std::vector<std::string> files_in(std::string const& dir) {
  std::vector<std::string> names;
  if (!fs::is_directory(dir)) return names;
  for (auto const& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class QuantizeOutput : public ::testing::Test {
 protected:
  void write_input(std::vector<RawTensor> const& tensors) {
    testing::write_file(input_.file("model.safetensors"), testing::make_safetensors(tensors));
  }

  QuantizeOptions options(std::string const& output_name, uint64_t max_shard_bytes = 0) const {
    QuantizeOptions options;
    options.input = input_.path().string();
    options.output_dir = output_.file(output_name);
    options.max_shard_bytes = max_shard_bytes;
    return options;
  }

  TempDir input_;
  TempDir output_;
};

TEST_F(QuantizeOutput, LeftoverQuantizedTensorsOfAnExpertAreRefusedNamingBoth) {
  for (char const* leftover : {".weight_packed", ".weight_scale", ".weight_shape"}) {
    SCOPED_TRACE(leftover);
    std::vector<RawTensor> tensors = small_model();
    tensors.push_back({std::string(kGate) + leftover, "I64", {2}, bytes_of(std::vector<int64_t>{32, 128})});
    write_input(tensors);
    // Single file (the writer met the name twice) and sharded (a packed tensor and its leftover landed in different
    // shards, and the index pointed at one of them): both refused while planning.
    for (uint64_t max_shard_bytes : {uint64_t(0), uint64_t(1024)}) {
      std::string const name = std::string(leftover) + std::to_string(max_shard_bytes);
      Status const status = quantize_checkpoint(options(name, max_shard_bytes));
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
      std::string const& message = status.message();
      EXPECT_NE(message.find(input_.file("model.safetensors") + ": tensor '" + kGate + ".weight' and tensor '" +
                             kGate + leftover + "'"),
                std::string::npos)
          << message;
      EXPECT_NE(message.find(std::string("would both be written as '") + kGate + leftover + "'"), std::string::npos)
          << message;
      EXPECT_EQ(files_in(output_.file(name)), std::vector<std::string>{}) << max_shard_bytes;
    }
  }
}

TEST_F(QuantizeOutput, AnOutputDirectoryHoldingACheckpointIsRefused) {
  write_input(small_model());
  QuantizeSummary sharded;
  ASSERT_TRUE(quantize_checkpoint(options("out", 1024), &sharded).ok());
  std::vector<std::string> const first_run = files_in(output_.file("out"));

  // Single-file output over the sharded one: the stale index would shadow the new model.safetensors.
  Status const again = quantize_checkpoint(options("out"));
  EXPECT_EQ(again.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(again.message().find(output_.file("out/config.json") + ": the output directory already holds a checkpoint ("
                                 + std::to_string(first_run.size()) + " files"),
            std::string::npos)
      << again.message();
  EXPECT_EQ(files_in(output_.file("out")), first_run);

  // Any one file of a checkpoint is enough; other files are not.
  for (char const* stale : {"config.json", "model.safetensors", "model.safetensors.index.json",
                            "model-00002-of-00002.safetensors"}) {
    SCOPED_TRACE(stale);
    TempDir dir;
    testing::write_file(dir.file(stale), "{}");
    testing::write_file(dir.file("README.md"), "notes");
    QuantizeOptions into = options("unused");
    into.output_dir = dir.path().string();
    Status const status = quantize_checkpoint(into);
    EXPECT_NE(status.message().find(dir.file(stale) + ": the output directory already holds a checkpoint (1 file "),
              std::string::npos)
        << status.message();
  }
  TempDir notes_only;
  testing::write_file(notes_only.file("README.md"), "notes");
  QuantizeOptions into = options("unused");
  into.output_dir = notes_only.path().string();
  Status const status = quantize_checkpoint(into);
  EXPECT_TRUE(status.ok()) << status.message();
}

TEST_F(QuantizeOutput, AGptOssConfigIsRefusedBeforeAnythingIsWritten) {
  write_input(small_model());
  testing::write_file(input_.file("config.json"), R"({"model_type": "gpt_oss", "hidden_size": 128,
      "intermediate_size": 32, "num_hidden_layers": 1, "num_local_experts": 2, "experts_per_token": 1})");
  QuantizeOptions gpt_oss = options("out");
  gpt_oss.input_config = input_.file("config.json");
  Status const status = quantize_checkpoint(gpt_oss);
  EXPECT_EQ(status.code(), StatusCode::kNotSupported);
  EXPECT_NE(status.message().find(input_.file("config.json") + ": model_type \"gpt_oss\" with W4A8"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(files_in(output_.file("out")), std::vector<std::string>{});
}

// The input config is parsed keeping its field order, at a cost quadratic in an object's members (40k members
// took 2.6 s, the 1.5M a 16 MB config can hold would take hours): objects past 1024 members are refused first.
TEST_F(QuantizeOutput, AConfigObjectOfTooManyMembersIsRefusedQuickly) {
  write_input(small_model());
  std::string config = R"({"model_type": "qwen3_moe")";
  for (int n = 0; n <= 200'000; ++n) config += ",\"k" + std::to_string(n) + "\":0";
  testing::write_file(input_.file("config.json"), config + "}");
  QuantizeOptions many = options("out");
  many.input_config = input_.file("config.json");
  auto const start = std::chrono::steady_clock::now();
  Status const status = quantize_checkpoint(many);
  double const seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(status.message(),
            input_.file("config.json") + ": the object at the top level has more than 1024 members");
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(files_in(output_.file("out")), std::vector<std::string>{});
}

// Fails on expert 1, after the shards of expert 0 are complete.
class FailingQuantizer : public ExpertWeightQuantizer {
 public:
  Status quantize(ExpertWeightInfo const& info, float const* weights, int8_t* q, uint16_t* scales) override {
    if (info.expert == 1) return Status(StatusCode::kInvalidArgument, "calibration statistics missing");
    return RoundToNearestQuantizer().quantize(info, weights, q, scales);
  }
};

TEST_F(QuantizeOutput, AFailedRunLeavesNoFileBehind) {
  write_input(small_model());
  FailingQuantizer failing;
  for (uint64_t max_shard_bytes : {uint64_t(0), uint64_t(1024)}) {
    SCOPED_TRACE(max_shard_bytes);
    QuantizeOptions failed = options("out", max_shard_bytes);
    failed.quantizer = &failing;
    Status const status = quantize_checkpoint(failed);
    EXPECT_NE(status.message().find("calibration statistics missing"), std::string::npos) << status.message();
    EXPECT_EQ(files_in(output_.file("out")), std::vector<std::string>{});

    // So the same directory takes the next run.
    QuantizeSummary summary;
    Status const retried = quantize_checkpoint(options("out", max_shard_bytes), &summary);
    ASSERT_TRUE(retried.ok()) << retried.message();
    EXPECT_EQ(summary.files_written.back(), output_.file("out/config.json"));
    fs::remove_all(output_.file("out"));
  }
}

}  // namespace
}  // namespace w4a8moe
