// Bounds on what one safetensors header may describe, so that a small hostile file cannot make the reader build a
// huge value or write a huge message: at most 8 dimensions a tensor (refused naming the tensor), far longer
// arrays and more than 2^20 entries refused while the header is scanned, and shapes and offsets in messages
// shown clipped. The writer keeps to the same bounds, so that whatever it writes reads back.
#include <gtest/gtest.h>

#include "checkpoint/safetensors_format.h"
#include "checkpoint/safetensors_writer.h"
#include "checkpoint_test_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::file_with_header;
using testing::TempDir;

Status parse_header(std::string const& header, SafetensorsFile* file, size_t data_bytes = 0) {
  std::string const bytes = file_with_header(header, data_bytes);
  return SafetensorsFile::parse(bytes.data(), bytes.size(), "limits.safetensors", file);
}

// "[d,d,...,d]" of `rank` one-character dimensions.
std::string dims(size_t rank, char dim = '1') {
  std::string text(2 * rank + 1, ',');
  text.front() = '[';
  for (size_t i = 0; i < rank; ++i) text[2 * i + 1] = dim;
  text.back() = ']';
  return rank == 0 ? "[]" : text;
}

std::string u8_tensor(std::string const& shape, size_t bytes) {
  return R"({"t":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":[0,)" + std::to_string(bytes) + "]}}";
}

TEST(SafetensorsLimits, RankAboveEightIsRefusedNamingTheTensor) {
  SafetensorsFile file;
  Status const eight = parse_header(u8_tensor(dims(8), 1), &file, 1);
  ASSERT_TRUE(eight.ok()) << eight.message();
  EXPECT_EQ(file.find("t")->shape, std::vector<int64_t>(8, 1));

  Status const nine = parse_header(u8_tensor(dims(9), 1), &file, 1);
  EXPECT_EQ(nine.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(nine.message(), "limits.safetensors: tensor 't': rank 9, more than the 8 dimensions accepted");
}

// 25M dimensions (50 MB of header) used to be accepted, at 1.1 GB of memory; now the scan stops at element 65.
TEST(SafetensorsLimits, AVeryLongShapeIsRefusedBeforeItIsBuilt) {
  SafetensorsFile file;
  Status const status = parse_header(u8_tensor(dims(25'000'000, '0'), 0), &file);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "limits.safetensors: header: the array at \"t\".\"shape\" has more than 64 elements");
  EXPECT_TRUE(file.tensors().empty());
}

TEST(SafetensorsLimits, MoreThan2To20EntriesAreRefused) {
  std::string header = "{";
  header.reserve(16 * checkpoint::kMaxHeaderEntries);
  for (size_t n = 0; n <= checkpoint::kMaxHeaderEntries; ++n) {
    header += n ? ",\"" : "\"";
    header += std::to_string(n);
    header += "\":0";
  }
  header += "}";
  SafetensorsFile file;
  Status const status = parse_header(header, &file);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "limits.safetensors: header: the object at the top level has more than 1048576 members");
}

TEST(SafetensorsLimits, MessagesClipLongShapesAndOffsets) {
  std::vector<int64_t> long_shape(100'000, 2);
  long_shape[9] = 3;
  EXPECT_EQ(checkpoint::format_shape(long_shape), "[2, 2, 2, 2, 2, 2, 2, 2, ... (100000 dimensions)]");
  EXPECT_EQ(checkpoint::format_shape({4, 0, 7}), "[4, 0, 7]");
  EXPECT_EQ(checkpoint::format_shape(std::vector<int64_t>(8, 1)), "[1, 1, 1, 1, 1, 1, 1, 1]");

  SafetensorsFile file;
  std::string const long_string = "\"" + std::string(1'000'000, 'x') + "\"";
  Status const strings = parse_header(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[)" + long_string + "," +
                                          long_string + "]}}",
                                      &file);
  EXPECT_FALSE(strings.ok());
  EXPECT_LT(strings.message().size(), 400u) << strings.message().substr(0, 400);
  EXPECT_NE(strings.message().find("[\"xxxx"), std::string::npos) << strings.message().substr(0, 400);

  Status const many = parse_header(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":)" + dims(60, '0') + "}}", &file);
  EXPECT_NE(many.message().find("got [0, 0, 0, 0, ... (60 elements)]"), std::string::npos) << many.message();
}

TEST(SafetensorsLimits, TheWriterKeepsToTheReadersBounds) {
  TempDir dir;
  std::vector<checkpoint::TensorSpec> const rank_100k = {{"x", DType::kU8, std::vector<int64_t>(100'000, 1)}};
  checkpoint::SafetensorsWriter writer;
  Status const status = writer.open(dir.file("x.safetensors"), rank_100k, {});
  EXPECT_EQ(status.message(), dir.file("x.safetensors") + ": tensor 'x': shape [1, 1, 1, 1, 1, 1, 1, 1, ... (100000 "
                              "dimensions)] has more than the 8 dimensions a reader accepts");
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.safetensors.partial")));
  EXPECT_TRUE(writer.open(dir.file("y.safetensors"), {{"y", DType::kU8, std::vector<int64_t>(8, 1)}}, {}).ok());

  // 2^20 tensors and __metadata__: one entry too many.
  std::vector<checkpoint::TensorSpec> many(checkpoint::kMaxHeaderEntries, {"", DType::kU8, {}});
  for (size_t n = 0; n < many.size(); ++n) many[n].name = std::to_string(n);
  checkpoint::SafetensorsWriter too_many;
  EXPECT_EQ(too_many.open(dir.file("z.safetensors"), many, {{"format", "pt"}}).message(),
            dir.file("z.safetensors") + ": 1048576 tensors, more than a header lists (1048576 entries with "
                                        "__metadata__)");

  // Few tensors, but names long enough that the header passes the reader's 100 MB.
  std::vector<checkpoint::TensorSpec> long_names(3, {"", DType::kU8, {}});
  for (size_t n = 0; n < long_names.size(); ++n) long_names[n].name = std::string(40'000'000, char('a' + n));
  checkpoint::SafetensorsWriter too_large;
  std::string const message = too_large.open(dir.file("w.safetensors"), long_names, {}).message();
  EXPECT_NE(message.find("bytes (3 tensors), past the 100000000 bytes a reader accepts"), std::string::npos)
      << message.substr(0, 300);
  EXPECT_FALSE(std::filesystem::exists(dir.file("w.safetensors.partial")));
}

}  // namespace
}  // namespace w4a8moe
