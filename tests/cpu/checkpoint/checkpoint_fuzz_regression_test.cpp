// Replays the fuzz targets' seed corpora and every input that once broke them through the same checks the fuzzers
// run, so CI keeps them fixed without clang or libFuzzer: the safetensors reader's (tests/fuzz/corpus,
// tests/fuzz/regressions; each input is also written to a file and opened, to check that open() and parse() agree)
// and the config.json parser's (tests/fuzz/config_corpus, tests/fuzz/config_regressions). Seeds say by their name
// what the parser makes of them: bad_* are refused, valid_* accepted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "checkpoint_test_util.h"
#include "config_fuzz_input.h"
#include "safetensors_fuzz_input.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

namespace fs = std::filesystem;

// The fuzz directory: $W4A8_FUZZ_DIR if set, else the source tree's (compiled in), else tests/fuzz under the
// working directory, so that a build carried to another machine's checkout finds the corpora from its root.
fs::path fuzz_dir() {
  if (char const* env = std::getenv("W4A8_FUZZ_DIR"); env != nullptr && *env != '\0') return env;
  if (fs::is_directory(W4A8_FUZZ_DIR)) return W4A8_FUZZ_DIR;
  return fs::path("tests") / "fuzz";
}

std::vector<fs::path> inputs_under(fs::path const& dir) {
  std::vector<fs::path> inputs;
  if (!fs::is_directory(dir)) return inputs;
  for (auto const& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename() != "README.md") inputs.push_back(entry.path());
  }
  std::sort(inputs.begin(), inputs.end());
  return inputs;
}

// bad_* seeds refused, valid_* accepted.
void expect_named_outcome(fs::path const& input, bool accepted) {
  std::string const name = input.filename().string();
  if (name.rfind("bad_", 0) == 0) {
    EXPECT_FALSE(accepted) << "a bad_ seed was accepted";
  } else if (name.rfind("valid_", 0) == 0) {
    EXPECT_TRUE(accepted) << "a valid_ seed was refused";
  }
}

void replay(std::vector<fs::path> const& inputs) {
  testing::TempDir dir;
  for (fs::path const& input : inputs) {
    SCOPED_TRACE(input.string());
    std::string const bytes = testing::read_file(input.string());
    EXPECT_EQ(fuzz::check_safetensors_input(reinterpret_cast<uint8_t const*>(bytes.data()), bytes.size()), "");

    SafetensorsFile parsed;
    SafetensorsFile opened;
    bool const parse_ok = SafetensorsFile::parse(bytes.data(), bytes.size(), "input", &parsed).ok();
    std::string const path = dir.file("input.safetensors");
    testing::write_file(path, bytes);
    bool const open_ok = SafetensorsFile::open(path, &opened).ok();
    EXPECT_EQ(parse_ok, open_ok);
    EXPECT_EQ(parsed.tensors().size(), opened.tensors().size());
    expect_named_outcome(input, parse_ok);
  }
}

void replay_configs(std::vector<fs::path> const& inputs) {
  for (fs::path const& input : inputs) {
    SCOPED_TRACE(input.string());
    std::string const text = testing::read_file(input.string());
    EXPECT_EQ(fuzz::check_config_input(reinterpret_cast<uint8_t const*>(text.data()), text.size()), "");
    ModelConfig config;
    expect_named_outcome(input, parse_model_config(text, "input", &config).ok());
  }
}

TEST(SafetensorsFuzzCorpus, SeedsKeepTheReadersPromises) {
  auto const seeds = inputs_under(fuzz_dir() / "corpus");
  ASSERT_FALSE(seeds.empty()) << "no seed corpus under " << (fuzz_dir() / "corpus");
  replay(seeds);
}

TEST(SafetensorsFuzzCorpus, RegressionsStayFixed) {
  replay(inputs_under(fuzz_dir() / "regressions"));
}

TEST(ConfigFuzzCorpus, SeedsKeepTheParsersPromises) {
  auto const seeds = inputs_under(fuzz_dir() / "config_corpus");
  ASSERT_FALSE(seeds.empty()) << "no seed corpus under " << (fuzz_dir() / "config_corpus");
  replay_configs(seeds);
}

TEST(ConfigFuzzCorpus, RegressionsStayFixed) {
  replay_configs(inputs_under(fuzz_dir() / "config_regressions"));
}

}  // namespace
}  // namespace w4a8moe
