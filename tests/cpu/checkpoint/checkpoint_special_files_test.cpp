// Files that are not regular files where a checkpoint's files belong: a named pipe as config.json, the single file,
// the index, a shard, or the partial file a writer creates is refused at once, naming the path and what it is,
// instead of blocking in open() until a writer (or reader) comes. Each open runs in a child process that an alarm
// ends after 5 s, so that a regression fails the test instead of hanging it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>

#include "checkpoint/file_io.h"
#include "checkpoint/safetensors_writer.h"
#include "checkpoint_test_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::TempDir;

void make_fifo(std::string const& path) { ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path; }

// The child prints the refusal and exits 0 only for an invalid argument.
void expect_refused_without_blocking(std::function<Status()> const& open, std::string const& message_pattern) {
  EXPECT_EXIT(
      {
        alarm(5);
        Status const status = open();
        std::fprintf(stderr, "%s\n", status.message().c_str());
        std::_Exit(status.code() == StatusCode::kInvalidArgument ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), message_pattern);
}

Status open_checkpoint(TempDir const& dir) {
  Checkpoint checkpoint;
  return Checkpoint::open(dir.path().string(), &checkpoint);
}

TEST(SpecialFilesDeathTest, ANamedPipeAsConfigJsonIsRefused) {
  TempDir dir;
  make_fifo(dir.file("config.json"));
  expect_refused_without_blocking(
      [&] {
        ModelConfig config;
        return read_model_config(dir.file("config.json"), &config);
      },
      "config.json: not a regular file \\(a named pipe\\)");
}

TEST(SpecialFilesDeathTest, ANamedPipeAsTheSingleFileIsRefused) {
  TempDir dir;
  make_fifo(dir.file("model.safetensors"));
  expect_refused_without_blocking([&] { return open_checkpoint(dir); },
                                  "model.safetensors: not a regular file \\(a named pipe\\)");
}

TEST(SpecialFilesDeathTest, ANamedPipeAsTheIndexIsRefused) {
  TempDir dir;
  make_fifo(dir.file("model.safetensors.index.json"));
  expect_refused_without_blocking([&] { return open_checkpoint(dir); },
                                  "model.safetensors.index.json: not a regular file \\(a named pipe\\)");
}

TEST(SpecialFilesDeathTest, ANamedPipeAsAShardIsRefused) {
  TempDir dir;
  testing::write_file(dir.file("model.safetensors.index.json"), R"({"weight_map": {"a": "shard.safetensors"}})");
  make_fifo(dir.file("shard.safetensors"));
  expect_refused_without_blocking([&] { return open_checkpoint(dir); },
                                  "shard.safetensors: not a regular file \\(a named pipe\\)");
}

TEST(SpecialFilesDeathTest, WritersRefuseANamedPipeAsTheirPartialFile) {
  TempDir dir;
  make_fifo(dir.file("config.json.partial"));
  expect_refused_without_blocking([&] { return checkpoint::write_text_file(dir.file("config.json"), "{}"); },
                                  "config.json.partial: not a regular file \\(a named pipe\\)");
  make_fifo(dir.file("model.safetensors.partial"));
  expect_refused_without_blocking(
      [&] {
        checkpoint::SafetensorsWriter writer;
        return writer.open(dir.file("model.safetensors"), {{"x", DType::kU8, {1}}}, {});
      },
      "model.safetensors.partial: not a regular file \\(a named pipe\\)");
}

TEST(SpecialFiles, DirectoriesAndDevicesAreRefusedNamingWhatTheyAre) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("model.safetensors"));
  Status const directory = open_checkpoint(dir);
  EXPECT_NE(directory.message().find("model.safetensors: not a regular file (a directory)"), std::string::npos)
      << directory.message();
  ModelConfig config;
  Status const device = read_model_config("/dev/null", &config);
  EXPECT_EQ(device.message(), "/dev/null: not a regular file (a character device)");
}

}  // namespace
}  // namespace w4a8moe
