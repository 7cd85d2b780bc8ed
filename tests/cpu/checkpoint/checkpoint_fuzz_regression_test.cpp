// Replays the safetensors fuzz target's seed corpus (tests/fuzz/corpus) and every input that once broke it
// (tests/fuzz/regressions) through the same checks the fuzzer runs, so CI keeps them fixed without clang or
// libFuzzer. Each input is also written to a file and opened, to check that open() and parse() agree. Seeds say
// by their name what the reader makes of them: bad_* are refused, valid_* accepted.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "checkpoint_test_util.h"
#include "safetensors_fuzz_input.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_under(fs::path const& dir) {
  std::vector<fs::path> inputs;
  if (!fs::is_directory(dir)) return inputs;
  for (auto const& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename() != "README.md") inputs.push_back(entry.path());
  }
  std::sort(inputs.begin(), inputs.end());
  return inputs;
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
    std::string const name = input.filename().string();
    if (name.rfind("bad_", 0) == 0) {
      EXPECT_FALSE(parse_ok) << "a bad_ seed was accepted";
    } else if (name.rfind("valid_", 0) == 0) {
      EXPECT_TRUE(parse_ok) << "a valid_ seed was refused";
    }
  }
}

TEST(SafetensorsFuzzCorpus, SeedsKeepTheReadersPromises) {
  auto const seeds = inputs_under(fs::path(W4A8_FUZZ_DIR) / "corpus");
  ASSERT_FALSE(seeds.empty()) << "no seed corpus under " << W4A8_FUZZ_DIR << "/corpus";
  replay(seeds);
}

TEST(SafetensorsFuzzCorpus, RegressionsStayFixed) {
  replay(inputs_under(fs::path(W4A8_FUZZ_DIR) / "regressions"));
}

}  // namespace
}  // namespace w4a8moe
