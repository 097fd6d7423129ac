#include "journal/kv.h"

#include <gtest/gtest.h>

#include "testutil/status_matchers.h"

namespace cairn::journal {
namespace {

std::optional<wire::KvEntry> ApplyPayload(std::string_view type, std::string_view payload,
                                          const std::optional<wire::KvEntry>& cur,
                                          uint64_t seq = 2, int64_t time_us = 1000) {
  auto op = ParseKvOp(type, payload);
  CHECK(op.ok()) << op.status().ToString();
  return ApplyKvOp(*op, cur, seq, time_us);
}

wire::KvEntry Entry(const std::string& value, int64_t expiry_us = 0) {
  wire::KvEntry e;
  e.set_value(value);
  e.set_rev(1);
  e.set_expiry_us(expiry_us);
  return e;
}

TEST(KvTest, PutReplacesTheValueAndRecordsTheRevision) {
  auto e = ApplyPayload("kv.put", R"({"store":"s","key":"k","value":{"a":1}})",
                        Entry("{\"b\":2}"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value(), R"({"a":1})");
  EXPECT_EQ(e->rev(), 2u);
}

TEST(KvTest, PatchIsAnRfc7386MergePatch) {
  auto e = ApplyPayload(
      "kv.patch", R"({"store":"s","key":"k","value":{"a":null,"b":{"c":3},"d":[1]}})",
      Entry(R"({"a":1,"b":{"x":0},"d":[0,0]})"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value(), R"({"b":{"c":3,"x":0},"d":[1]})");
}

TEST(KvTest, PatchOfAnAbsentKeyPatchesAnEmptyObject) {
  auto e = ApplyPayload("kv.patch", R"({"store":"s","key":"k","value":{"a":1,"b":null}})",
                        std::nullopt);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value(), R"({"a":1})");
}

TEST(KvTest, DeleteRemovesTheKey) {
  EXPECT_FALSE(ApplyPayload("kv.del", R"({"store":"s","key":"k"})", Entry("1")));
}

TEST(KvTest, TtlSetsExpiryFromEventTimeAndPatchKeepsIt) {
  auto e = ApplyPayload("kv.put", R"({"store":"s","key":"k","value":1,"ttl_ms":5})",
                        std::nullopt, 2, 1000);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->expiry_us(), 6000);
  auto p =
      ApplyPayload("kv.patch", R"({"store":"s","key":"k","value":{"x":1}})", *e, 3, 2000);
  EXPECT_EQ(p->expiry_us(), 6000);
  EXPECT_TRUE(KvExpired(*p, 6000));
  EXPECT_FALSE(KvExpired(*p, 5999));
}

TEST(KvTest, AnExpiredEntryIsAbsentForLaterEvents) {
  auto p = ApplyPayload("kv.patch", R"({"store":"s","key":"k","value":{"x":1}})",
                        Entry(R"({"old":1})", 500), 3, 1000);
  EXPECT_EQ(p->value(), R"({"x":1})");
  EXPECT_EQ(p->expiry_us(), 0);
}

TEST(KvTest, MalformedPayloadsAreRefusedWithTheReason) {
  struct Case {
    const char* type;
    const char* payload;
    const char* why;
  } cases[] = {
      {"kv.put", "nope", "not valid JSON"},
      {"kv.put", "[1]", "JSON object"},
      {"kv.put", R"({"key":"k","value":1})", "\"store\""},
      {"kv.put", R"({"store":"s","value":1})", "\"key\""},
      {"kv.put", R"({"store":"","key":"k","value":1})", "1 to 128"},
      {"kv.put", R"({"store":"s","key":"k"})", "needs a \"value\""},
      {"kv.del", R"({"store":"s","key":"k","value":1})", "takes no"},
      {"kv.put", R"({"store":"s","key":"k","value":1,"ttl_ms":-1})", "ttl_ms"},
      {"kv.put", R"({"store":"s","key":"k","value":1,"ttl_ms":"5"})", "ttl_ms"},
      {"kv.put", R"({"store":"s","key":"k","value":1,"extra":0})", "unknown field"},
  };
  for (const auto& c : cases) {
    auto r = ParseKvOp(c.type, c.payload);
    ASSERT_FALSE(r.ok()) << c.payload;
    EXPECT_NE(r.status().message().find(c.why), std::string::npos)
        << c.payload << " -> " << r.status().ToString();
  }
}

}  // namespace
}  // namespace cairn::journal
