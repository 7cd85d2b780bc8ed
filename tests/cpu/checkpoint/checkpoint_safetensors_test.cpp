// The safetensors reader and writer: files from an independent writer read back bit-exactly, the library's writer
// round-trips, sharded checkpoints find each tensor's shard, and every malformed file is refused with a message
// naming the file, the tensor and the rule, without crashing.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "checkpoint/safetensors_writer.h"
#include "checkpoint_test_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using testing::bytes_of;
using testing::file_with_header;
using testing::make_safetensors;
using testing::RawTensor;
using testing::TempDir;

std::string random_bytes(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(count, '\0');
  for (char& byte : bytes) byte = char(rng() & 0xFF);
  return bytes;
}

// Tensors of several dtypes and ranks, one of them empty.
std::vector<RawTensor> sample_tensors() {
  return {
      {"model.embed_tokens.weight", "BF16", {4, 8}, random_bytes(4 * 8 * 2, 1)},
      {"model.layers.0.mlp.experts.0.gate_proj.weight_packed", "I32", {16, 32}, random_bytes(16 * 32 * 4, 2)},
      {"model.layers.0.mlp.experts.0.gate_proj.weight_shape", "I64", {2}, random_bytes(16, 3)},
      {"a.scalar", "F32", {}, random_bytes(4, 4)},
      {"b.empty", "F16", {0, 7}, ""},
      {"c.fp8", "F8_E4M3", {3, 5}, random_bytes(15, 5)},
      {"d.bytes", "U8", {9}, random_bytes(9, 6)},
      {"e.int8", "I8", {2, 2, 2}, random_bytes(8, 7)},
  };
}

void expect_same_tensors(std::vector<RawTensor> const& expected, SafetensorsFile const& file) {
  ASSERT_EQ(file.tensors().size(), expected.size());
  for (RawTensor const& raw : expected) {
    SCOPED_TRACE(raw.name);
    Tensor const* tensor = file.find(raw.name);
    ASSERT_NE(tensor, nullptr);
    EXPECT_STREQ(dtype_name(tensor->dtype), raw.dtype.c_str());
    EXPECT_EQ(tensor->shape, raw.shape);
    ASSERT_EQ(tensor->num_bytes, raw.bytes.size());
    EXPECT_EQ(std::memcmp(tensor->data, raw.bytes.data(), raw.bytes.size()), 0);
  }
  for (size_t i = 1; i < file.tensors().size(); ++i) EXPECT_LT(file.tensors()[i - 1].name, file.tensors()[i].name);
}

TEST(Safetensors, ReadsAFileFromAnIndependentWriter) {
  TempDir dir;
  auto const tensors = sample_tensors();
  std::string const bytes = make_safetensors(tensors, R"({"format":"pt","note":"x"})");
  testing::write_file(dir.file("model.safetensors"), bytes);

  SafetensorsFile file;
  Status const status = SafetensorsFile::open(dir.file("model.safetensors"), &file);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(file.path(), dir.file("model.safetensors"));
  expect_same_tensors(tensors, file);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  EXPECT_EQ(file.find("absent"), nullptr);

  SafetensorsFile in_memory;  // the same bytes through parse() read identically
  ASSERT_TRUE(SafetensorsFile::parse(bytes.data(), bytes.size(), "memory", &in_memory).ok());
  expect_same_tensors(tensors, in_memory);
}

TEST(Safetensors, ReadsUnalignedDataSection) {
  // A header of odd length puts every tensor at an odd address; views are read with memcpy.
  std::vector<RawTensor> tensors = {{"x", "I32", {3}, bytes_of(std::vector<int32_t>{1, -2, 3})}};
  std::string bytes = make_safetensors(tensors);
  if ((bytes.size() - 12) % 2 == 0) {
    tensors[0].name = "xy";
    bytes = make_safetensors(tensors);
  }
  ASSERT_EQ((bytes.size() - 12) % 2, 1u);
  SafetensorsFile file;
  ASSERT_TRUE(SafetensorsFile::parse(bytes.data(), bytes.size(), "odd", &file).ok());
  expect_same_tensors(tensors, file);
}

TEST(Safetensors, EmptyHeaderObjectIsAnEmptyFile) {
  std::string const bytes = file_with_header("{}", 0);
  SafetensorsFile file;
  ASSERT_TRUE(SafetensorsFile::parse(bytes.data(), bytes.size(), "empty", &file).ok());
  EXPECT_TRUE(file.tensors().empty());
}

TEST(SafetensorsWriter, RoundTripsThroughTheReader) {
  TempDir dir;
  auto const tensors = sample_tensors();
  std::vector<checkpoint::TensorSpec> specs;
  for (RawTensor const& raw : tensors) {
    DType dtype = DType::kU8;
    for (int d = 0; d <= int(DType::kF64); ++d) {
      if (raw.dtype == dtype_name(DType(d))) dtype = DType(d);
    }
    specs.push_back({raw.name, dtype, raw.shape});
  }
  std::string const path = dir.file("written.safetensors");
  checkpoint::SafetensorsWriter writer;
  ASSERT_TRUE(writer.open(path, specs, {{"format", "pt"}}).ok());
  for (RawTensor const& raw : tensors) ASSERT_TRUE(writer.append(raw.bytes.data(), raw.bytes.size()).ok());
  ASSERT_TRUE(writer.finish().ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));

  SafetensorsFile file;
  Status const status = SafetensorsFile::open(path, &file);
  ASSERT_TRUE(status.ok()) << status.message();
  expect_same_tensors(tensors, file);
  EXPECT_EQ(file.metadata().at("format"), "pt");

  // Data section 8-byte aligned; tensors back to back in the order given, ending at the end of the file.
  std::string const bytes = testing::read_file(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ((8 + header_bytes) % 8, 0u);
  size_t offset = 8 + header_bytes;
  for (RawTensor const& raw : tensors) {
    EXPECT_EQ(bytes.compare(offset, raw.bytes.size(), raw.bytes), 0) << raw.name;
    offset += raw.bytes.size();
  }
  EXPECT_EQ(offset, bytes.size());
}

TEST(SafetensorsWriter, RefusesMisuseAndLeavesNoPartialFile) {
  TempDir dir;
  std::string const path = dir.file("bad.safetensors");
  checkpoint::SafetensorsWriter duplicate;
  EXPECT_FALSE(duplicate.open(path, {{"x", DType::kU8, {1}}, {"x", DType::kU8, {1}}}, {}).ok());
  checkpoint::SafetensorsWriter negative;
  EXPECT_FALSE(negative.open(path, {{"x", DType::kU8, {-1}}}, {}).ok());

  checkpoint::SafetensorsWriter writer;
  ASSERT_TRUE(writer.open(path, {{"a", DType::kI32, {2}}, {"b", DType::kU8, {3}}}, {}).ok());
  int32_t const values[2] = {1, 2};
  Status const wrong_size = writer.append(values, 4);
  EXPECT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.message().find("'a'"), std::string::npos) << wrong_size.message();
  ASSERT_TRUE(writer.append(values, 8).ok());
  Status const incomplete = writer.finish();
  EXPECT_FALSE(incomplete.ok());
  EXPECT_NE(incomplete.message().find("'b'"), std::string::npos) << incomplete.message();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

// ---- Malformed files ------------------------------------------------------------------------------------------

struct BadFile {
  char const* rule;        // test name
  std::string bytes;
  char const* tensor;      // the tensor the message must name ("" if the rule is about the whole file)
  char const* rule_words;  // a phrase of the message that states the rule
};

std::string header_file(std::string const& header, size_t data_bytes = 64) {
  return file_with_header(header, data_bytes);
}

std::string tensor_header(std::string const& dtype, std::string const& shape, std::string const& offsets) {
  return R"({"t":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}

std::vector<BadFile> bad_files() {
  std::string const valid = make_safetensors({{"w", "F32", {4}, std::string(16, '\1')}});
  std::string length_too_large = valid;
  length_too_large[0] = char(0xFF);  // header length 255 + the rest, beyond the file
  std::string length_above_limit(8, '\0');
  length_above_limit[5] = 1;  // 2^40
  length_above_limit += "{}";
  return {
      {"EmptyFile", "", "", "truncated"},
      {"ShorterThanLengthField", std::string("\x02\0\0\0", 4), "", "truncated"},
      {"TruncatedData", valid.substr(0, valid.size() - 3), "w", "end beyond the data section"},
      {"HeaderLengthBeyondFile", length_too_large, "", "exceeds the"},
      {"HeaderLengthAboveLimit", length_above_limit, "", "exceeds the limit"},
      {"HeaderNotJson", header_file(R"({"t": {"dtype": "F32",)"), "", "not valid JSON"},
      {"HeaderNotUtf8", header_file("{\"\xff\":1}"), "", "not valid JSON"},
      {"HeaderNotAnObject", header_file("[1, 2, 3]"), "", "must be a JSON object"},
      {"DuplicateTensorName", header_file(R"({"t":{},"t":{}})"), "", "duplicate key \"t\""},
      {"TooDeeplyNested", header_file(std::string(100, '[') + std::string(100, ']')), "", "nested deeper"},
      {"EntryNotAnObject", header_file(R"({"t": 3})"), "t", "must be an object"},
      {"MissingField", header_file(R"({"t":{"dtype":"F32","shape":[1]}})"), "t", "missing field \"data_offsets\""},
      {"UnknownField", header_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})"), "t",
       "unknown field \"x\""},
      {"UnknownDtype", header_file(tensor_header(R"("Q4")", "[1]", "[0,1]")), "t", "unknown dtype \"Q4\""},
      {"DtypeNotAString", header_file(tensor_header("7", "[1]", "[0,1]")), "t", "dtype must be a string"},
      {"ShapeNotAnArray", header_file(tensor_header(R"("F32")", "4", "[0,16]")), "t", "shape must be an array"},
      {"NegativeDimension", header_file(tensor_header(R"("F32")", "[-1]", "[0,0]")), "t", "shape entries"},
      {"FractionalDimension", header_file(tensor_header(R"("F32")", "[1.5]", "[0,6]")), "t", "shape entries"},
      {"DimensionAboveInt64", header_file(tensor_header(R"("U8")", "[9223372036854775808]", "[0,0]")), "t",
       "shape entries"},
      {"ShapeProductOverflows", header_file(tensor_header(R"("F32")", "[4294967296,4294967296]", "[0,0]")), "t",
       "overflows 64 bits"},
      {"ByteCountOverflows", header_file(tensor_header(R"("I64")", "[2305843009213693952]", "[0,0]")), "t",
       "overflows 64 bits"},
      {"OffsetsNotAPair", header_file(tensor_header(R"("F32")", "[1]", "[0]")), "t", "two non-negative integers"},
      {"NegativeOffset", header_file(tensor_header(R"("F32")", "[1]", "[-4,0]")), "t", "two non-negative integers"},
      {"OffsetsBeginAfterEnd", header_file(tensor_header(R"("U8")", "[0]", "[8,4]")), "t", "begin after end"},
      {"OffsetsBeyondData", header_file(tensor_header(R"("F32")", "[4]", "[60,76]")), "t",
       "end beyond the data section"},
      {"HugeOffsets", header_file(tensor_header(R"("U8")", "[0]", "[18446744073709551615,18446744073709551615]")),
       "t", "end beyond the data section"},
      {"ShapeDoesNotMatchBytes", header_file(tensor_header(R"("F32")", "[3]", "[0,16]")), "t", "needs 12"},
      {"OverlappingTensors",
       header_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"),
       "b", "overlap those of tensor 'a'"},
      {"MetadataNotStrings", header_file(R"({"__metadata__":{"format":1}})"), "", "must be a string"},
      {"MetadataNotAnObject", header_file(R"({"__metadata__":[]})"), "", "must be an object of strings"},
  };
}

class SafetensorsRefuses : public ::testing::TestWithParam<BadFile> {};

TEST_P(SafetensorsRefuses, WithAMessageNamingFileTensorAndRule) {
  BadFile const& bad = GetParam();
  TempDir dir;
  std::string const path = dir.file(std::string(bad.rule) + ".safetensors");
  testing::write_file(path, bad.bytes);
  SafetensorsFile file;
  Status const status = SafetensorsFile::open(path, &file);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  std::string const& message = status.message();
  EXPECT_NE(message.find(path), std::string::npos) << message;
  if (*bad.tensor) {
    EXPECT_NE(message.find(std::string("tensor '") + bad.tensor + "'"), std::string::npos) << message;
  }
  EXPECT_NE(message.find(bad.rule_words), std::string::npos) << message;
  EXPECT_TRUE(file.tensors().empty());
}

INSTANTIATE_TEST_SUITE_P(Rules, SafetensorsRefuses, ::testing::ValuesIn(bad_files()),
                         [](::testing::TestParamInfo<BadFile> const& info) { return std::string(info.param.rule); });

TEST(Safetensors, EveryTruncationOfAValidFileIsRefused) {
  std::string const bytes = make_safetensors(sample_tensors(), R"({"format":"pt"})");
  for (size_t size = 0; size < bytes.size(); ++size) {
    std::string const prefix = bytes.substr(0, size);  // own allocation: ASan sees a read past the prefix
    SafetensorsFile file;
    EXPECT_FALSE(SafetensorsFile::parse(prefix.data(), prefix.size(), "prefix", &file).ok()) << size;
  }
}

TEST(Safetensors, MissingFileIsAnError) {
  TempDir dir;
  SafetensorsFile file;
  Status const status = SafetensorsFile::open(dir.file("absent.safetensors"), &file);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("absent.safetensors"), std::string::npos);
  EXPECT_FALSE(SafetensorsFile::open(dir.path().string(), &file).ok());  // a directory is not a file
}

// ---- Checkpoints: single file and shards ----------------------------------------------------------------------

TEST(Checkpoint, FindsEachTensorInItsShard) {
  TempDir dir;
  std::vector<RawTensor> const first = {{"a", "F32", {2}, random_bytes(8, 10)}, {"b", "U8", {3}, "xyz"}};
  std::vector<RawTensor> const second = {{"c", "BF16", {1, 2}, random_bytes(4, 11)},
                                         {"unlisted", "U8", {1}, "u"}};
  testing::write_file(dir.file("model-00001-of-00002.safetensors"), make_safetensors(first));
  testing::write_file(dir.file("model-00002-of-00002.safetensors"), make_safetensors(second));
  testing::write_file(dir.file("model.safetensors.index.json"),
                      R"({"metadata":{"total_size":15},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                      R"("b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");
  for (std::string const& path : {dir.path().string(), dir.file("model.safetensors.index.json")}) {
    Checkpoint checkpoint;
    Status const status = Checkpoint::open(path, &checkpoint);
    ASSERT_TRUE(status.ok()) << status.message();
    EXPECT_EQ(checkpoint.tensor_names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(checkpoint.file_of("a"), dir.file("model-00001-of-00002.safetensors"));
    EXPECT_EQ(checkpoint.file_of("c"), dir.file("model-00002-of-00002.safetensors"));
    EXPECT_EQ(checkpoint.find("unlisted"), nullptr);
    ASSERT_NE(checkpoint.find("c"), nullptr);
    EXPECT_EQ(std::memcmp(checkpoint.find("c")->data, second[0].bytes.data(), 4), 0);
    EXPECT_EQ(std::memcmp(checkpoint.find("b")->data, "xyz", 3), 0);
  }
}

TEST(Checkpoint, OpensASingleFileOrADirectoryHoldingOne) {
  TempDir dir;
  testing::write_file(dir.file("model.safetensors"), make_safetensors(sample_tensors()));
  for (std::string const& path : {dir.path().string(), dir.file("model.safetensors")}) {
    Checkpoint checkpoint;
    ASSERT_TRUE(Checkpoint::open(path, &checkpoint).ok());
    EXPECT_EQ(checkpoint.tensor_names().size(), sample_tensors().size());
    EXPECT_EQ(checkpoint.file_of("a.scalar"), dir.file("model.safetensors"));
  }
}

Status open_with_index(TempDir const& dir, std::string const& index) {
  testing::write_file(dir.file("shard.safetensors"), make_safetensors({{"a", "U8", {1}, "a"}}));
  testing::write_file(dir.file("model.safetensors.index.json"), index);
  Checkpoint checkpoint;
  return Checkpoint::open(dir.path().string(), &checkpoint);
}

TEST(Checkpoint, RefusesBadIndexes) {
  TempDir dir;
  struct Case {
    std::string index;
    std::string words;
  };
  std::vector<Case> const cases = {
      {"{not json", "not valid JSON"},
      {R"({"weight_map": []})", "\"weight_map\" object"},
      {R"({"weight_map": {}})", "lists no tensors"},
      {R"({"weight_map": {"a": "../shard.safetensors"}})", "tensor 'a': shard must be a file name"},
      {R"({"weight_map": {"a": "/etc/passwd"}})", "tensor 'a': shard must be a file name"},
      {R"({"weight_map": {"a": 3}})", "tensor 'a': shard must be a file name"},
      {R"({"weight_map": {"b": "shard.safetensors"}})", "tensor 'b' is mapped to"},
      {R"({"weight_map": {"a": "absent.safetensors"}})", "absent.safetensors: cannot open"},
  };
  for (Case const& c : cases) {
    Status const status = open_with_index(dir, c.index);
    EXPECT_FALSE(status.ok()) << c.index;
    EXPECT_NE(status.message().find(c.words), std::string::npos) << status.message();
  }
  std::filesystem::remove(dir.file("model.safetensors.index.json"));
  std::filesystem::remove(dir.file("shard.safetensors"));
  Checkpoint checkpoint;
  Status const empty = Checkpoint::open(dir.path().string(), &checkpoint);
  EXPECT_NE(empty.message().find("neither"), std::string::npos) << empty.message();
}

}  // namespace
}  // namespace w4a8moe
