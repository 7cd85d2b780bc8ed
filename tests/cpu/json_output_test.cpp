// The JSON layout the program and the benchmarks write: members one a line, array elements one a line, valid JSON.
#include <gtest/gtest.h>

#include "json_output.h"
#include "w4a8moe/moe.h"

namespace w4a8moe::tools {
namespace {

TEST(JsonOutput, OneMemberAndOneRowALine) {
  Json doc = {{"device", "NVIDIA \"H200\""}, {"hbm_read_gbps", 4614.5}, {"rows", Json::array()}};
  doc["rows"].push_back({{"model", "qwen3-30b-a3b"}, {"tokens", 16}, {"us", 31.25}});
  doc["rows"].push_back({{"model", "mixtral-8x7b"}, {"tokens", 1}, {"us", -1.0}});
  std::string const text = format_json(doc);
  EXPECT_EQ(text,
            "{\n"
            "  \"device\": \"NVIDIA \\\"H200\\\"\",\n"
            "  \"hbm_read_gbps\": 4614.5,\n"
            "  \"rows\": [\n"
            "    {\"model\":\"qwen3-30b-a3b\",\"tokens\":16,\"us\":31.25},\n"
            "    {\"model\":\"mixtral-8x7b\",\"tokens\":1,\"us\":-1.0}\n"
            "  ]\n"
            "}");
  EXPECT_EQ(Json::parse(text), doc);
  EXPECT_EQ(format_json(doc, /*one_line=*/true).find('\n'), std::string::npos);
  EXPECT_EQ(Json::parse(format_json(doc, true)), doc);
  EXPECT_EQ(format_json(Json{{"rows", Json::array()}}), "{\n  \"rows\": []\n}");
}

TEST(JsonOutput, StageTimesByName) {
  std::vector<double> us(kMoeStageCount);
  for (int i = 0; i < kMoeStageCount; ++i) us[i] = i + 0.5;
  Json const stages = stage_times(us);
  ASSERT_EQ(stages.size(), size_t(kMoeStageCount));
  EXPECT_EQ(stages["route"], 0.5);
  EXPECT_EQ(stages["unpermute"], kMoeStageCount - 0.5);
}

}  // namespace
}  // namespace w4a8moe::tools
