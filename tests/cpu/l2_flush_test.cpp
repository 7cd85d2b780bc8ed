// The benchmarks' L2-flush option: the names the layer benchmarks and their JSON use, and what they refuse.
#include <gtest/gtest.h>

#include "l2_flush.h"

namespace w4a8moe::tools {
namespace {

TEST(L2Flush, NamesParseBackToTheirModes) {
  for (L2Flush flush : {L2Flush::kWrite, L2Flush::kRead, L2Flush::kNone}) {
    auto const parsed = parse_l2_flush(l2_flush_name(flush));
    ASSERT_TRUE(parsed.has_value()) << l2_flush_name(flush);
    EXPECT_EQ(*parsed, flush);
  }
  EXPECT_STREQ(l2_flush_name(L2Flush::kWrite), "write");
  EXPECT_STREQ(l2_flush_name(L2Flush::kRead), "read");
  EXPECT_STREQ(l2_flush_name(L2Flush::kNone), "none");
}

TEST(L2Flush, OtherNamesAreRefused) {
  for (char const* name : {"", "Read", "memset", "write ", "None", "off"}) {
    EXPECT_FALSE(parse_l2_flush(name).has_value()) << name;
  }
}

}  // namespace
}  // namespace w4a8moe::tools
