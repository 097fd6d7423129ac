#include "base/bytes.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(BytesTest, BigEndianSortsNumerically) {
  std::string a, b;
  PutU64BE(&a, 255);
  PutU64BE(&b, 256);
  EXPECT_LT(a, b);
}

TEST(BytesTest, RoundTripsIntegersAndStrings) {
  std::string buf;
  PutU32BE(&buf, 0xdeadbeef);
  PutU64BE(&buf, 0x0102030405060708ULL);
  PutLengthPrefixed(&buf, "hello");
  std::string_view in = buf;
  uint32_t a;
  uint64_t b;
  std::string_view s;
  ASSERT_TRUE(GetU32BE(&in, &a));
  ASSERT_TRUE(GetU64BE(&in, &b));
  ASSERT_TRUE(GetLengthPrefixed(&in, &s));
  EXPECT_EQ(a, 0xdeadbeefu);
  EXPECT_EQ(b, 0x0102030405060708ULL);
  EXPECT_EQ(s, "hello");
  EXPECT_TRUE(in.empty());
}

TEST(BytesTest, ShortInputIsRefusedWithoutConsuming) {
  std::string buf;
  PutLengthPrefixed(&buf, "hello");
  std::string_view in = std::string_view(buf).substr(0, 6);
  std::string_view s;
  EXPECT_FALSE(GetLengthPrefixed(&in, &s));
  EXPECT_EQ(in.size(), 6u);
}

TEST(BytesTest, HexOfBytes) { EXPECT_EQ(ToHex(std::string("\x01\xab", 2)), "01ab"); }

}  // namespace
}  // namespace cairn
