#include "base/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace cairn {
namespace {

std::string Nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(JsonLimitsTest, FlatValuesHaveDepthZero) {
  EXPECT_EQ(JsonNestingDepth("1"), 0u);
  EXPECT_EQ(JsonNestingDepth("\"a\""), 0u);
  EXPECT_EQ(JsonNestingDepth(""), 0u);
}

TEST(JsonLimitsTest, CountsArraysAndObjectsTogether) {
  EXPECT_EQ(JsonNestingDepth(R"({"a":[{"b":[1]}],"c":{}})"), 4u);
  EXPECT_EQ(JsonNestingDepth("[[],[[]],[]]"), 3u);
}

TEST(JsonLimitsTest, BracketsInsideStringsDoNotCount) {
  EXPECT_EQ(JsonNestingDepth(R"({"k":"[[[[{{{{"})"), 1u);
  EXPECT_EQ(JsonNestingDepth(R"(["a\"[[[[", "\\", [1]])"), 2u);
}

TEST(JsonLimitsTest, LimitIsInclusive) {
  EXPECT_TRUE(JsonDepthWithinLimit(Nested(kMaxJsonDepth)));
  EXPECT_FALSE(JsonDepthWithinLimit(Nested(kMaxJsonDepth + 1)));
  EXPECT_FALSE(JsonDepthWithinLimit(Nested(kMaxJsonDepth + 1, '{', '}')));
}

TEST(JsonLimitsTest, StopsEarlyOnDeepInputWithoutRecursion) {
  // 500,000 levels: a recursive walker would overflow the stack here.
  const std::string deep = Nested(500'000);
  EXPECT_EQ(JsonNestingDepth(deep), kMaxJsonDepth + 1);
  EXPECT_EQ(JsonNestingDepth(deep, 600'000), 500'000u);
}

TEST(JsonLimitsTest, StrayClosersDoNotHideDepth) {
  EXPECT_EQ(JsonNestingDepth("]]]]" + Nested(5)), 5u);
}

}  // namespace
}  // namespace cairn
