#include <thread>

#include "journal/chain.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

using AppendTest = JournalTest;

TEST_F(AppendTest, AssignsContiguousSeqsFromOne) {
  auto j = Open("n1", {"d1"});
  auto a = j->Append("d1", Events(3));
  ASSERT_OK(a);
  EXPECT_EQ(a->first, 1u);
  EXPECT_EQ(a->last, 3u);
  auto b = j->Append("d1", Events(2));
  ASSERT_OK(b);
  EXPECT_EQ(b->first, 4u);
  EXPECT_EQ(b->last, 5u);
  auto records = All(*j, "d1");
  ASSERT_EQ(records.size(), 5u);
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i].seq(), i + 1);
  EXPECT_EQ(records[3].payload(), "e0");
}

TEST_F(AppendTest, ChainsEveryRecordAndSignsTheBatchEnd) {
  auto j = Open("n1", {"d1"});
  ASSERT_OK(j->Append("d1", Events(4)));
  auto records = All(*j, "d1");
  std::string prev = GenesisHash("d1", Signer("d1")->public_key()->raw());
  for (const auto& r : records) {
    EXPECT_EQ(ChainHashOf(prev, "d1", r), r.hash());
    prev = r.hash();
  }
  EXPECT_TRUE(records[0].sig().empty());
  const auto& last = records.back();
  EXPECT_TRUE(Signer("d1")->public_key()->Verify(EventSigMessage("d1", 4, last.hash()),
                                                 last.sig()));
  EXPECT_OK(j->Verify("d1"));
}

TEST_F(AppendTest, AnOwnDeviceWithNoEventsYetVerifiesAndAnUnknownOneIsNotFound) {
  auto j = Open("n1", {"d1"});
  EXPECT_OK(j->Verify("d1"));
  EXPECT_TRUE(j->Verify("nobody").IsNotFound());
}

TEST_F(AppendTest, RefusesDevicesWhoseKeyItDoesNotHold) {
  auto j = Open("n1", {"d1"});
  auto r = j->Append("d2", Events(1));
  EXPECT_EQ(r.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("does not hold the key"), std::string::npos);
  EXPECT_EQ(j->Catalogue().size(), 1u);
}

TEST_F(AppendTest, BadEventsAreRefusedAndChangeNothing) {
  auto j = Open("n1", {"d1"});
  ASSERT_OK(j->Append("d1", Events(1)));
  EXPECT_FALSE(j->Append("d1", {}).ok());
  EXPECT_FALSE(j->Append("d1", {{"", "x"}}).ok());
  EXPECT_FALSE(j->Append("d1", {{std::string(65, 't'), "x"}}).ok());
  EXPECT_FALSE(j->Append("d1", {{"big", std::string(kMaxPayloadBytes + 1, 'x')}}).ok());
  // One malformed KV payload refuses the whole batch, including its good events.
  auto r = j->Append("d1", {Put("s", "k", "1"), {"kv.put", R"({"store":"s"})"}});
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"key\""), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(j->Append("d1", {{"kv.put", "not json"}}).ok());
  EXPECT_FALSE(
      j->Append("d1", {{"kv.del", R"({"store":"s","key":"k","value":1})"}}).ok());
  EXPECT_EQ(j->Stream("d1")->last, 1u);
  EXPECT_FALSE(j->KvGet("d1", "s", "k")->has_value());
}

TEST_F(AppendTest, ConcurrentAppendsAreGroupCommittedWithoutGaps) {
  auto j = Open("n1", {"d1", "d2"});
  constexpr int kThreads = 8, kBatches = 50;
  std::vector<std::thread> threads;
  std::vector<std::vector<SeqRange>> got(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        auto r = j->Append(t % 2 ? "d1" : "d2", Events(3, "t", std::to_string(t) + ":"));
        CHECK(r.ok()) << r.status().ToString();
        got[t].push_back(*r);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint64_t> seen_d1;
  for (int t = 1; t < kThreads; t += 2) {
    for (const auto& r : got[t]) {
      EXPECT_EQ(r.last - r.first, 2u);
      for (uint64_t s = r.first; s <= r.last; ++s) EXPECT_TRUE(seen_d1.insert(s).second);
    }
  }
  EXPECT_EQ(seen_d1.size(), 4u * kBatches * 3);
  EXPECT_EQ(*seen_d1.rbegin(), seen_d1.size());
  EXPECT_OK(j->Verify("d1"));
  EXPECT_OK(j->Verify("d2"));
}

TEST_F(AppendTest, ReopenYieldsTheSameCatalogueAndView) {
  std::vector<StreamInfo> before;
  std::vector<KvItem> view;
  {
    auto j = Open("n1", {"d1"});
    ASSERT_OK(j->Append("d1", {Put("s", "a", "1"), Put("s", "b", R"({"x":2})")}));
    ASSERT_OK(j->Append("d1", Events(5)));
    before = j->Catalogue();
    view = *j->KeptView("d1");
  }
  auto j = Open("n1", {"d1"});
  auto after = j->Catalogue();
  ASSERT_EQ(after.size(), before.size());
  EXPECT_EQ(after[0].last, before[0].last);
  EXPECT_EQ(after[0].head_hash, before[0].head_hash);
  EXPECT_EQ(*j->KeptView("d1"), view);
  auto next = j->Append("d1", Events(1));
  ASSERT_OK(next);
  EXPECT_EQ(next->first, 8u);
  EXPECT_OK(j->Verify("d1"));
}

TEST_F(AppendTest, ReadHonoursRangeAndLimit) {
  auto j = Open("n1", {"d1"});
  ASSERT_OK(j->Append("d1", Events(10)));
  auto r = j->Read("d1", 4, 3);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].seq(), 4u);
  EXPECT_EQ((*r)[2].seq(), 6u);
  EXPECT_TRUE(j->Read("d1", 11, 5)->empty());
  EXPECT_EQ(j->Read("d1", 0, 5).status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(j->Read("nope", 1, 5).status().IsNotFound());
}

TEST_F(AppendTest, SecondOpenOfALockedDirectoryFailsClearly) {
  auto j = Open("n1", {"d1"});
  auto second = Journal::Open(Options("n1", {"d1"}));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(second.status().message().find("in use by another process"),
            std::string::npos);
}

}  // namespace
}  // namespace cairn::journal
