// The benchmarks' L2-flush option: the names the layer benchmarks and their JSON use, and what they refuse.
#include <gtest/gtest.h>

#include <string>

#include "l2_flush.h"
#include "named_choice_checks.h"

namespace w4a8moe::tools {
namespace {

TEST(L2Flush, NamesParseBackToTheirModes) {
  w4a8moe::testing::expect_names_parse_back({L2Flush::kWrite, L2Flush::kRead, L2Flush::kNone}, l2_flush_name,
                                            [](char const* name, L2Flush* out) { return parse_l2_flush(name, out); });
  EXPECT_STREQ(l2_flush_name(L2Flush::kWrite), "write");
  EXPECT_STREQ(l2_flush_name(L2Flush::kRead), "read");
  EXPECT_STREQ(l2_flush_name(L2Flush::kNone), "none");
}

TEST(L2Flush, OtherNamesAreRefused) {
  for (char const* name : {"", "Read", "memset", "write ", "None", "off"}) {
    L2Flush flush = L2Flush::kNone;
    Status const status = parse_l2_flush(name, &flush, "--l2-flush");
    EXPECT_FALSE(status.ok()) << name;
    EXPECT_NE(status.to_string().find("--l2-flush='"), std::string::npos) << status.to_string();
    EXPECT_NE(status.to_string().find("must be \"write\", \"read\" or \"none\""), std::string::npos)
        << status.to_string();
    EXPECT_EQ(flush, L2Flush::kNone) << "left as it was";
  }
  L2Flush flush;
  EXPECT_FALSE(parse_l2_flush(nullptr, &flush).ok());
  EXPECT_FALSE(parse_l2_flush("read", nullptr).ok());
}

// The buffer: what was asked where that is more, else twice the current device's L2 (twice 1 MiB where no device
// answers, as on the build machine).
TEST(L2Flush, BufferAtLeastTwiceTheL2) {
  int device = 0, l2_bytes = 0;
  bool const known = cudaGetDevice(&device) == cudaSuccess &&
                     cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device) == cudaSuccess;
  EXPECT_EQ(l2_flush_buffer_bytes(0), known ? 2 * size_t(l2_bytes) : size_t(2) << 20);
  size_t const large = size_t(1) << 36;
  EXPECT_EQ(l2_flush_buffer_bytes(large), large);
}

}  // namespace
}  // namespace w4a8moe::tools
