#include "journal/chain.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

using SnapshotTest = JournalTest;

TEST_F(SnapshotTest, SnapshotKeepsEventsAndTheView) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", {Put("s", "a", "1"), Put("s", "b", "2")}));
  ASSERT_OK(j->Append("d1", {{"kv.del", R"({"store":"s","key":"a"})"}}));
  auto view = *j->KeptView("d1");
  auto seq = j->Snapshot("d1");
  ASSERT_OK(seq);
  EXPECT_EQ(*seq, 3u);
  auto info = *j->Stream("d1");
  EXPECT_EQ(info.snapshot, 3u);
  EXPECT_EQ(info.first, 1u);  // retention decides when they go (retention_test)
  EXPECT_EQ(info.last, 3u);
  EXPECT_EQ(j->Read("d1", 1, 10)->size(), 3u);
  EXPECT_EQ(*j->KeptView("d1"), view);
  EXPECT_EQ(*j->RebuildView("d1"), view);
  ASSERT_OK(j->Append("d1", {Put("s", "c", "3")}));
  EXPECT_EQ(j->Read("d1", 4, 10)->size(), 1u);
  EXPECT_OK(j->Verify("d1"));
}

TEST_F(SnapshotTest, OnlyTheSourceCanSnapshot) {
  auto j = Open("a", {});
  EXPECT_EQ(j->Snapshot("d1").status().code(), Status::Code::kPermissionDenied);
}

TEST_F(SnapshotTest, ExpiredEntriesAreInvisibleAndDroppedByTheNextSnapshot) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", {Put("s", "short", "1", 1000), Put("s", "long", "2")}));
  EXPECT_TRUE(j->KvGet("d1", "s", "short")->has_value());
  clock_.Advance(2'000'000);
  EXPECT_FALSE(j->KvGet("d1", "s", "short")->has_value());
  EXPECT_EQ(j->KvList("d1", "s", "", 10)->size(), 1u);
  EXPECT_EQ(j->KeptView("d1")->size(), 2u);  // still stored until a snapshot
  ASSERT_OK(j->Append("d1", Events(1)));     // head time is now past the expiry
  ASSERT_OK(j->Snapshot("d1"));
  EXPECT_EQ(j->KeptView("d1")->size(), 1u);
  EXPECT_EQ(*j->RebuildView("d1"), *j->KeptView("d1"));
}

TEST_F(SnapshotTest, PolicySnapshotsEveryNEvents) {
  auto o = Options("a", {"d1"});
  o.snapshot_every_events = 10;
  auto j = OpenWith(std::move(o));
  for (int i = 0; i < 5; ++i) ASSERT_OK(j->Append("d1", Events(4)));
  EXPECT_GE(j->Stream("d1")->snapshot, 10u);
  EXPECT_OK(j->Verify("d1"));
}

TEST_F(SnapshotTest, AReplicaInstallsAVerifiedSnapshotAndContinues) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  ASSERT_OK(a->Append("d1", {Put("s", "k", R"({"v":1})")}));
  ASSERT_OK(a->Append("d1", Events(3)));
  ASSERT_OK(a->Snapshot("d1"));
  ASSERT_OK(
      a->Append("d1", {{"kv.patch", R"({"store":"s","key":"k","value":{"w":2}})"}}));
  auto snap = a->ReadSnapshot("d1");
  ASSERT_OK(snap);
  ASSERT_OK(b->InstallSnapshot(CertOf("d1"), *snap));
  EXPECT_EQ(b->Stream("d1")->last, 4u);
  auto out = b->Apply("d1", "", All(*a, "d1", 5));
  ASSERT_OK(out);
  EXPECT_EQ(out->last, 5u);
  EXPECT_EQ((*b->KvGet("d1", "s", "k"))->value, R"({"v":1,"w":2})");
  EXPECT_EQ(*b->KeptView("d1"), *a->KeptView("d1"));
  EXPECT_OK(b->Verify("d1"));
}

TEST_F(SnapshotTest, AReplicaThatHoldsTheEventsKeepsThemWithTheSnapshot) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  ASSERT_OK(a->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a->Append("d1", Events(2)));
  ASSERT_OK(b->Apply("d1", CertOf("d1"), All(*a, "d1")));
  ASSERT_OK(a->Snapshot("d1"));
  ASSERT_OK(b->InstallSnapshot("", *a->ReadSnapshot("d1")));
  EXPECT_EQ(b->Stream("d1")->snapshot, 3u);
  EXPECT_EQ(b->Stream("d1")->first, 1u);
  EXPECT_EQ(*b->KeptView("d1"), *a->KeptView("d1"));
  EXPECT_OK(b->Verify("d1"));
}

TEST_F(SnapshotTest, TamperedSnapshotIsRefusedAndChangesNothing) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  ASSERT_OK(a->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a->Snapshot("d1"));
  SnapshotData snap = *a->ReadSnapshot("d1");
  snap.chunks[0].mutable_entries(0)->mutable_entry()->set_value("666");
  auto r = b->InstallSnapshot(CertOf("d1"), snap);
  EXPECT_TRUE(r.status().IsCorruption());
  EXPECT_NE(r.status().message().find("digest"), std::string::npos);
  SnapshotData resigned = *a->ReadSnapshot("d1");
  resigned.header.set_sig(Signer("other")->Sign(SnapshotSigMessage(resigned.header)));
  EXPECT_TRUE(b->InstallSnapshot(CertOf("d1"), resigned).status().IsCorruption());
  EXPECT_TRUE(b->Catalogue().empty());
}

}  // namespace
}  // namespace cairn::journal
