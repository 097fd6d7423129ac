// Retention: a snapshot deletes nothing; events below it go only once the known
// followers hold them or past the operator's age and size limits; what is gone is
// reported as such to readers; a snapshot beyond our head is never installed over
// events it cannot be checked against.
#include "journal/layout.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

using RetentionTest = JournalTest;
using Heads = std::map<std::string, std::map<std::string, uint64_t>>;

TEST_F(RetentionTest, WithNoKnownFollowerNothingIsDeleted) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", Events(10)));
  ASSERT_OK(j->Snapshot("d1"));
  EXPECT_EQ(*j->Retain(), 0u);
  EXPECT_EQ(j->Stream("d1")->first, 1u);
  EXPECT_EQ(j->Read("d1", 1, 100)->size(), 10u);
  EXPECT_NE(j->RetentionState("d1").find("no follower"), std::string::npos);
}

TEST_F(RetentionTest, EventsGoOnceEveryKnownFollowerHoldsThem) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", Events(10)));
  ASSERT_OK(j->Snapshot("d1"));  // at 10
  ASSERT_OK(j->Append("d1", Events(5)));
  ASSERT_OK(j->NoteFollowers(Heads{{"d1", {{"n2", 15}, {"n3", 4}}}}));
  EXPECT_EQ(*j->Retain(), 4u);  // n3 holds 1..4
  EXPECT_EQ(j->Stream("d1")->first, 5u);
  EXPECT_NE(j->RetentionState("d1").find("follower n3 holds up to 4"), std::string::npos);
  ASSERT_OK(j->NoteFollowers(Heads{{"d1", {{"n3", 15}}}}));
  EXPECT_EQ(*j->Retain(), 6u);  // up to the snapshot, never past it
  EXPECT_EQ(j->Stream("d1")->first, 11u);
  EXPECT_EQ(j->RetentionState("d1"), "");
  EXPECT_OK(j->Verify("d1"));
  EXPECT_EQ(*j->RebuildView("d1"), *j->KeptView("d1"));
}

TEST_F(RetentionTest, AcksCountsHowManyFollowersMustHoldAnEvent) {
  auto o = Options("a", {"d1"});
  o.retention.acks = 1;
  auto j = OpenWith(std::move(o));
  ASSERT_OK(j->Append("d1", Events(10)));
  ASSERT_OK(j->Snapshot("d1"));
  ASSERT_OK(j->NoteFollowers(Heads{{"d1", {{"n2", 8}, {"n3", 2}}}}));
  EXPECT_EQ(*j->Retain(), 8u);
  EXPECT_EQ(j->Stream("d1")->first, 9u);
}

TEST_F(RetentionTest, FollowersAreRememberedAcrossARestart) {
  {
    auto j = Open("a", {"d1"});
    ASSERT_OK(j->Append("d1", Events(10)));
    ASSERT_OK(j->Snapshot("d1"));
    ASSERT_OK(
        j->NoteFollowers(Heads{{"d1", {{"n2", 3}}}, {"unknown-device", {{"n2", 9}}}}));
  }
  auto j = Open("a", {"d1"});
  // n2 is away now (no report), but still known: only what it held goes.
  EXPECT_EQ(*j->Retain(), 3u);
  EXPECT_EQ(j->Stream("d1")->first, 4u);
}

TEST_F(RetentionTest, MaxBytesDeletesTheOldestAndTheSourceSnapshotsFirst) {
  auto o = Options("a", {"d1"});
  o.retention.max_bytes = 4000;
  auto j = OpenWith(std::move(o));
  ASSERT_OK(j->Append("d1", Events(100, "note", std::string(100, 'x'))));
  const uint64_t bytes = j->Stream("d1")->event_bytes;
  EXPECT_GT(bytes, 100u * 100);
  EXPECT_EQ(j->Stream("d1")->snapshot, 0u);
  EXPECT_GT(*j->Retain(), 0u);  // no follower, no snapshot: the limit still holds
  auto info = *j->Stream("d1");
  EXPECT_EQ(info.snapshot, 100u);
  EXPECT_LE(info.event_bytes, 4000u);
  EXPECT_GT(info.event_bytes, 4000u - 300);  // only the oldest went
  EXPECT_EQ(j->Read("d1", info.first, 1000)->size(), 101 - info.first);
  EXPECT_OK(j->Verify("d1"));
}

TEST_F(RetentionTest, MaxAgeDeletesOldEventsOnly) {
  auto o = Options("a", {"d1"});
  o.retention.max_age_us = 3'600'000'000;  // an hour
  auto j = OpenWith(std::move(o));
  ASSERT_OK(j->Append("d1", Events(20)));
  clock_.Advance(7'200'000'000);
  ASSERT_OK(j->Append("d1", Events(5)));
  ASSERT_OK(j->Snapshot("d1"));
  EXPECT_EQ(*j->Retain(), 20u);
  EXPECT_EQ(j->Stream("d1")->first, 21u);
  EXPECT_EQ(*j->Retain(), 0u);
}

TEST_F(RetentionTest, AReaderBelowWhatIsStoredIsToldItIsTruncated) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(j->Append("d1", Events(9)));
  ASSERT_OK(j->Snapshot("d1"));  // at 10
  ASSERT_OK(j->Append("d1", Events(2)));
  // Stored events come as events, below the snapshot too.
  auto c = *j->OpenCursor("d1", 1);
  Delivery d = c->Next();
  EXPECT_FALSE(d.snapshot);
  ASSERT_FALSE(d.records.empty());
  EXPECT_EQ(d.records.front().seq(), 1u);
  ASSERT_OK(j->Trim("d1", 6));
  EXPECT_EQ(j->Stream("d1")->first, 7u);
  EXPECT_EQ(j->Read("d1", 3, 10).status().code(), Status::Code::kFailedPrecondition);
  c = *j->OpenCursor("d1", 3);
  d = c->Next();
  ASSERT_TRUE(d.snapshot);
  EXPECT_EQ(d.restored_from, 10u);
  EXPECT_EQ(d.truncated, 6u);
  d = c->Next();
  ASSERT_EQ(d.records.size(), 2u);
  EXPECT_EQ(d.records.front().seq(), 11u);
  // From a seq still stored: events, no truncation.
  c = *j->OpenCursor("d1", 7);
  d = c->Next();
  EXPECT_FALSE(d.snapshot);
  EXPECT_EQ(d.records.front().seq(), 7u);
  EXPECT_OK(j->Verify("d1"));  // the first stored event's predecessor is gone
}

TEST_F(RetentionTest, AnOpenCursorKeepsWhatItHasYetToRead) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", Events(10)));
  ASSERT_OK(j->Snapshot("d1"));
  ASSERT_OK(j->NoteFollowers(Heads{{"d1", {{"n2", 10}}}}));
  auto c = *j->OpenCursor("d1", 4);
  auto c2 = *j->OpenCursor("d1", 8);
  EXPECT_EQ(*j->Retain(), 3u);  // the reader at 4 still wants 4..10
  EXPECT_NE(j->RetentionState("d1").find("a local reader is at 4"), std::string::npos);
  Delivery d = c->Next(1);  // reads on; the floor moves with it
  ASSERT_FALSE(d.records.empty());
  EXPECT_EQ(d.records.front().seq(), 4u);
  const uint64_t at = c->next_seq();
  EXPECT_EQ(*j->Retain(), std::min<uint64_t>(at, 8) - 4);
  c.reset();
  c2.reset();
  EXPECT_GT(*j->Retain(), 0u);
  EXPECT_EQ(j->Stream("d1")->first, 11u);
}

TEST_F(RetentionTest, TrimNeverPassesTheSnapshot) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", Events(10)));
  EXPECT_EQ(*j->Trim("d1", 10), 1u);  // no snapshot: nothing may go
  ASSERT_OK(j->Snapshot("d1"));
  ASSERT_OK(j->Append("d1", Events(10)));
  EXPECT_EQ(*j->Trim("d1", 20), 11u);
  EXPECT_EQ(j->Read("d1", 11, 100)->size(), 10u);
}

TEST_F(RetentionTest, EventBytesAreCountedAndRecountedForAnOldMeta) {
  uint64_t bytes = 0;
  {
    auto j = Open("a", {"d1"});
    ASSERT_OK(j->Append("d1", Events(30, "note", std::string(50, 'y'))));
    bytes = j->Stream("d1")->event_bytes;
    EXPECT_GT(bytes, 30u * 50);
    // A meta as an older version wrote it: no count.
    auto meta = j->store()->GetProto<wire::StreamMeta>(layout::MetaKey("d1"));
    ASSERT_OK(meta);
    ASSERT_TRUE(meta->has_value());
    wire::StreamMeta old = **meta;
    old.clear_event_bytes();
    leveldb::WriteBatch b;
    b.Put(layout::MetaKey("d1"), old.SerializeAsString());
    ASSERT_OK(j->store()->Write(&b, true));
  }
  auto j = Open("a", {"d1"});
  EXPECT_EQ(j->Stream("d1")->event_bytes, bytes);
}

TEST_F(RetentionTest, ASnapshotBeyondOurHeadIsNotInstalledOverOurEvents) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  ASSERT_OK(a->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a->Append("d1", Events(4)));
  ASSERT_OK(b->Apply("d1", CertOf("d1"), All(*a, "d1")));  // b holds 1..5
  ASSERT_OK(a->Append("d1", {Put("s", "k", "2")}));
  ASSERT_OK(a->Snapshot("d1"));  // at 6
  auto r = b->InstallSnapshot("", *a->ReadSnapshot("d1"));
  EXPECT_EQ(r.status().code(), Status::Code::kGap);
  EXPECT_EQ(b->Stream("d1")->last, 5u);  // nothing changed
  EXPECT_EQ(b->Read("d1", 1, 10)->size(), 5u);
  // The operator accepts the gap: installed, our events below it go.
  b->AcceptGap("d1");
  EXPECT_TRUE(b->GapAccepted("d1"));
  ASSERT_OK(b->InstallSnapshot("", *a->ReadSnapshot("d1")));
  EXPECT_FALSE(b->GapAccepted("d1"));
  auto info = *b->Stream("d1");
  EXPECT_EQ(info.last, 6u);
  EXPECT_EQ(info.first, 7u);
  EXPECT_EQ(info.event_bytes, 0u);
  EXPECT_EQ((*b->KvGet("d1", "s", "k"))->value, "2");
  EXPECT_OK(b->Verify("d1"));
}

TEST_F(RetentionTest, ANewReplicaInstallsASnapshotBeyondItsEmptyHead) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  ASSERT_OK(a->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a->Snapshot("d1"));
  ASSERT_OK(b->InstallSnapshot(CertOf("d1"), *a->ReadSnapshot("d1")));
  EXPECT_EQ(b->Stream("d1")->last, 1u);
}

}  // namespace
}  // namespace cairn::journal
