// The JSON checks every checkpoint file goes through (check_json, parse_json): duplicate keys and nesting refused
// at any level with the place named, containers bounded as a format asks, and time linear in the members, so that
// a header listing hundreds of thousands of tensors opens in well under a second.
#include <gtest/gtest.h>

#include <chrono>

#include "checkpoint/json_util.h"
#include "checkpoint_test_util.h"
#include "w4a8moe/checkpoint.h"

namespace w4a8moe {
namespace {

using checkpoint::check_json;
using checkpoint::JsonLimits;

std::string refusal(std::string const& text, JsonLimits const& limits = {}) {
  std::string reason;
  return check_json(text, limits, &reason) ? "accepted" : reason;
}

std::string nested_arrays(int depth) { return std::string(size_t(depth), '[') + std::string(size_t(depth), ']'); }

TEST(CheckJson, RefusesDuplicateKeysAtAnyLevelNamingThePlace) {
  EXPECT_EQ(refusal(R"({"t":1,"t":2})"), "duplicate key \"t\" in the object at the top level");
  EXPECT_EQ(refusal(R"({"t":{"dtype":"U8","dtype":"U8"}})"), "duplicate key \"dtype\" in the object at \"t\"");
  EXPECT_EQ(refusal(R"({"a":[0,{"k":1,"k":1}]})"), "duplicate key \"k\" in the object at \"a\"[1]");
  // The same key in sibling objects, or again after an object closed, is no duplicate.
  EXPECT_EQ(refusal(R"({"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]})"), "accepted");
}

TEST(CheckJson, BoundsTheNesting) {
  EXPECT_EQ(refusal(nested_arrays(checkpoint::kMaxJsonDepth)), "accepted");
  EXPECT_EQ(refusal(nested_arrays(checkpoint::kMaxJsonDepth + 1)), "nested deeper than 32 levels");
  EXPECT_EQ(refusal(nested_arrays(100'000)), "nested deeper than 32 levels");
  JsonLimits shallow;
  shallow.max_depth = 2;
  EXPECT_EQ(refusal(R"({"a":{"b":1}})", shallow), "accepted");
  EXPECT_EQ(refusal(R"({"a":{"b":[]}})", shallow), "nested deeper than 2 levels");
}

TEST(CheckJson, BoundsMembersAndElementsAsAFormatAsks) {
  JsonLimits limits;
  limits.max_object_members = 2;
  limits.max_array_elements = 3;
  EXPECT_EQ(refusal(R"({"a":[1,2,3],"b":{"c":[[],{},"x"]}})", limits), "accepted");
  EXPECT_EQ(refusal(R"({"a":1,"b":2,"c":3})", limits), "the object at the top level has more than 2 members");
  EXPECT_EQ(refusal(R"({"a":{"x":[1,2,3,4]}})", limits), "the array at \"a\".\"x\" has more than 3 elements");
  EXPECT_EQ(refusal(R"([0,[1,2],[{"a":1,"b":2,"c":3}]])", limits), "the object at [2][0] has more than 2 members");
}

TEST(CheckJson, RefusesInvalidJsonAsTheParserDoes) {
  for (char const* text : {"", "{", "{\"a\":}", "[1,]", "{} x", "{\"\xff\":1}", "[1] [2]"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(refusal(text).rfind("not valid JSON: ", 0), 0u) << refusal(text);
    checkpoint::Json value;
    std::string reason;
    EXPECT_FALSE(checkpoint::parse_json(text, &value, &reason));
  }
  checkpoint::Json value;
  std::string reason;
  ASSERT_TRUE(checkpoint::parse_json(R"({"b":[1,2.5,"x",null,true],"a":{}})", &value, &reason)) << reason;
  EXPECT_EQ(value, checkpoint::Json::parse(R"({"a":{},"b":[1,2.5,"x",null,true]})"));
}

// Seconds to parse a header of `count` empty tensors.
double seconds_to_parse(size_t count) {
  std::string header = "{";
  for (size_t n = 0; n < count; ++n) {
    header += (n ? ",\"t" : "\"t") + std::to_string(n) + R"(":{"dtype":"U8","shape":[0],"data_offsets":[0,0]})";
  }
  header += "}";
  std::string const bytes = testing::file_with_header(header, 0);
  auto const start = std::chrono::steady_clock::now();
  SafetensorsFile file;
  Status const status = SafetensorsFile::parse(bytes.data(), bytes.size(), "many.safetensors", &file);
  double const seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(file.tensors().size(), count);
  EXPECT_NE(file.find("t" + std::to_string(count - 1)), nullptr);
  return seconds;
}

// nlohmann's callback parser took minutes here (it rescans an object's parent whenever the object closes; 20k
// entries took 3.3 s, 80k 105 s). Four times the entries must take about four times as long, not sixteen; and in
// an optimised build without sanitizers, 200k entries (11 MB) well under 3 s (about 0.9 s on a 2-core machine).
TEST(CheckJson, AHeaderOf200kTensorsParsesInLinearTime) {
  double const quarter = seconds_to_parse(50'000);
  double const full = seconds_to_parse(200'000);
  EXPECT_LT(full, 8 * quarter) << "50k entries: " << quarter << " s, 200k: " << full << " s";
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(full, 3.0);
#endif
}

}  // namespace
}  // namespace w4a8moe
