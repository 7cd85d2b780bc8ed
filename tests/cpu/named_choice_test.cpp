// The public API's names (packed layouts, layer paths) parse back to their values, and any other name is refused
// with the argument, the name and every choice in the error (common/named_choice.h states that wording once).
#include <gtest/gtest.h>

#include <string>

#include "named_choice_checks.h"
#include "w4a8moe/moe.h"
#include "w4a8moe/prepack.h"

namespace w4a8moe {
namespace {

TEST(NamedChoice, LayoutNamesParseBackToTheirLayouts) {
  testing::expect_names_parse_back({PackedLayout::kLookupTable, PackedLayout::kExactScales, PackedLayout::kMxfp4},
                                   packed_layout_name,
                                   [](char const* name, PackedLayout* out) { return parse_packed_layout(name, out); });
}

TEST(NamedChoice, PathNamesParseBackToTheirPaths) {
  testing::expect_names_parse_back({MoePath::kAuto, MoePath::kStaged, MoePath::kOneLaunch}, moe_path_name,
                                   [](char const* name, MoePath* out) { return parse_moe_path(name, out); });
}

TEST(NamedChoice, OtherNamesAreRefusedWithEveryChoice) {
  for (char const* name : {"", "Lookup", "exact ", "int4", "auto"}) {
    PackedLayout layout = PackedLayout::kExactScales;
    Status const status = parse_packed_layout(name, &layout, "args.layout");
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(status.message(), std::string("args.layout='") + name + "': must be \"lookup\", \"exact\" or \"mxfp4\"");
    EXPECT_EQ(layout, PackedLayout::kExactScales) << "left as it was";
  }
  MoePath path = MoePath::kStaged;
  Status const status = parse_moe_path("fused", &path);
  EXPECT_EQ(status.message(), "path='fused': must be \"auto\", \"staged\" or \"one_launch\"");
  EXPECT_EQ(path, MoePath::kStaged);
  EXPECT_EQ(parse_moe_path(nullptr, &path).message(), "path='(null)': must be \"auto\", \"staged\" or \"one_launch\"");
  EXPECT_FALSE(parse_packed_layout("exact", nullptr).ok());
  EXPECT_FALSE(parse_moe_path("auto", nullptr).ok());
}

}  // namespace
}  // namespace w4a8moe
