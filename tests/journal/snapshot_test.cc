#include "journal/chain.h"
#include "journal/layout.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

class SnapshotTest : public JournalTest {
 protected:
  // A source whose snapshot of d1 takes several 1 MiB chunks.
  std::unique_ptr<Journal> BigSource(const std::string& name, int puts) {
    auto a = Open(name, {"d1"});
    const std::string value = "\"" + std::string(1000, 'v') + "\"";
    for (int i = 0; i < puts; i += 500) {
      std::vector<NewEvent> batch;
      for (int k = i; k < std::min(puts, i + 500); ++k) {
        batch.push_back(Put("s", "k" + std::to_string(k), value));
      }
      CHECK(a->Append("d1", std::move(batch)).ok());
    }
    CHECK(a->Snapshot("d1").ok());
    return a;
  }

  // Keys of `device` in the snapshot keyspace (both slots).
  static size_t SnapshotKeys(Journal& j, const std::string& device) {
    size_t n = 0;
    const std::string prefix = layout::SnapshotPrefix(device);
    auto it = j.store()->NewIterator();
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
    return n;
  }

  // `snap` cut into parts of `per` chunks, as a peer's chunks are staged.
  static std::vector<SnapshotData> Parts(const SnapshotData& snap, size_t per) {
    std::vector<SnapshotData> out;
    for (size_t i = 0; i < snap.chunks.size(); i += per) {
      SnapshotData& p = out.emplace_back();
      p.header = snap.header;
      p.first_chunk = static_cast<uint32_t>(i + 1);
      for (size_t k = i; k < std::min(snap.chunks.size(), i + per); ++k) {
        p.encoded_chunks.push_back(snap.chunks[k].SerializeAsString());
      }
    }
    return out;
  }
};

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

// A snapshot from a peer is staged on disk part by part and installed from there:
// the replica ends with the source's view and snapshot, and only the current
// slot's keys are left.
TEST_F(SnapshotTest, AStagedSnapshotIsInstalledFromDisk) {
  auto a = BigSource("a", 3000);
  SnapshotData snap = *a->ReadSnapshot("d1");
  ASSERT_GE(snap.chunks.size(), 3u);
  auto parts = Parts(snap, 1);
  auto b = Open("b", {});
  for (size_t i = 0; i + 1 < parts.size(); ++i) ASSERT_OK(b->StageSnapshot(7, parts[i]));
  EXPECT_TRUE(b->Catalogue().empty()) << "nothing is visible before the install";
  ASSERT_OK(b->InstallSnapshot(CertOf("d1"), parts.back(), 7));
  EXPECT_EQ(b->Stream("d1")->snapshot, 3000u);
  EXPECT_EQ(*b->KeptView("d1"), *a->KeptView("d1"));
  EXPECT_EQ(b->ReadSnapshot("d1")->header.SerializeAsString(),
            snap.header.SerializeAsString());
  EXPECT_OK(b->Verify("d1"));
  EXPECT_EQ(SnapshotKeys(*b, "d1"), snap.chunks.size() + 1);
  // The same one again (another peer sent it too): nothing to do, the current
  // one untouched, the second staging deleted.
  auto again = b->InstallSnapshot(CertOf("d1"), snap);
  ASSERT_OK(again);
  EXPECT_EQ(*again, 3000u);
  EXPECT_EQ(SnapshotKeys(*b, "d1"), snap.chunks.size() + 1);
  EXPECT_OK(b->Verify("d1"));
  // The next snapshot goes to the other slot; the old one is cleared.
  ASSERT_OK(a->Append("d1", {Put("s", "k0", "0")}));
  ASSERT_OK(b->Apply("d1", "", All(*a, "d1", 3001)));
  ASSERT_OK(a->Snapshot("d1"));
  SnapshotData next = *a->ReadSnapshot("d1");
  ASSERT_OK(b->InstallSnapshot("", next));
  EXPECT_EQ(b->Stream("d1")->snapshot, 3001u);
  EXPECT_EQ(SnapshotKeys(*b, "d1"), next.chunks.size() + 1);
  EXPECT_OK(b->Verify("d1"));
  EXPECT_EQ(*b->RebuildView("d1"), *a->KeptView("d1"));
}

// Parts out of order, under another id, or past the header are refused; a
// refused install deletes what was staged and changes nothing else.
TEST_F(SnapshotTest, StagingRefusesWhatDoesNotFollow) {
  auto a = BigSource("a", 3000);
  auto parts = Parts(*a->ReadSnapshot("d1"), 1);
  auto b = Open("b", {});
  EXPECT_EQ(b->StageSnapshot(1, parts[1]).code(), Status::Code::kFailedPrecondition)
      << "a later part with no staging begun";
  ASSERT_OK(b->StageSnapshot(1, parts[0]));
  EXPECT_EQ(b->StageSnapshot(2, parts[1]).code(), Status::Code::kFailedPrecondition)
      << "another staging's part";
  EXPECT_EQ(b->StageSnapshot(1, parts[2]).code(), Status::Code::kInvalidArgument)
      << "a part skipped";
  SnapshotData extra = parts.back();
  extra.first_chunk = 2;
  extra.encoded_chunks.assign(parts.size(), extra.encoded_chunks[0]);
  EXPECT_EQ(b->StageSnapshot(1, extra).code(), Status::Code::kInvalidArgument)
      << "more chunks than the header says";
  // A forged chunk under the genuine header: found at the install.
  SnapshotData forged = parts[1];
  wire::SnapshotChunk c;
  ASSERT_TRUE(c.ParseFromString(forged.encoded_chunks[0]));
  c.mutable_entries(0)->mutable_entry()->set_value("666");
  forged.encoded_chunks[0] = c.SerializeAsString();
  ASSERT_OK(b->StageSnapshot(1, forged));
  for (size_t i = 2; i + 1 < parts.size(); ++i) ASSERT_OK(b->StageSnapshot(1, parts[i]));
  auto r = b->InstallSnapshot(CertOf("d1"), parts.back(), 1);
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("digest"), std::string::npos);
  EXPECT_TRUE(b->Catalogue().empty());
  EXPECT_EQ(SnapshotKeys(*b, "d1"), 0u) << "the refused staging was deleted";
  // The staging is used up: its last part again finds none.
  EXPECT_EQ(b->InstallSnapshot(CertOf("d1"), parts.back(), 1).status().code(),
            Status::Code::kFailedPrecondition);
}

// Before any chunk is staged: a header not beyond the snapshot held (a genuine
// one, replayed) is refused, and so is one that claims more chunks than a
// snapshot may have.
TEST_F(SnapshotTest, HeadersThatWouldStageForNothingAreRefusedFirst) {
  auto a = BigSource("a", 3000);
  SnapshotData snap = *a->ReadSnapshot("d1");
  auto b = Open("b", {});
  ASSERT_OK(b->CheckSnapshotHeader(CertOf("d1"), snap.header));
  ASSERT_OK(b->InstallSnapshot(CertOf("d1"), snap));
  Status replayed = b->CheckSnapshotHeader(CertOf("d1"), snap.header);
  EXPECT_EQ(replayed.code(), Status::Code::kStale) << replayed.ToString();
  EXPECT_NE(replayed.message().find("not beyond the snapshot held here"),
            std::string::npos);
  SnapshotData huge = Parts(snap, 1)[0];
  huge.header.set_chunks(kMaxSnapshotChunks + 1);
  Status s = b->StageSnapshot(11, huge);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(SnapshotKeys(*b, "d1"), snap.chunks.size() + 1) << "nothing was staged";
}

// A dropped staging is deleted, and a part of it that arrives after the drop
// (the two race in the sync thread pool) is refused, not staged for no one.
TEST_F(SnapshotTest, ADroppedStagingIsDeletedAndStaysDropped) {
  auto a = BigSource("a", 3000);
  auto parts = Parts(*a->ReadSnapshot("d1"), 1);
  auto b = Open("b", {});
  ASSERT_OK(b->StageSnapshot(4, parts[0]));
  ASSERT_OK(b->StageSnapshot(4, parts[1]));
  EXPECT_EQ(SnapshotKeys(*b, "d1"), 3u);
  b->DropStaged("d1", 3);  // not this one: nothing
  EXPECT_EQ(SnapshotKeys(*b, "d1"), 3u);
  b->DropStaged("d1", 4);
  EXPECT_EQ(SnapshotKeys(*b, "d1"), 0u);
  b->DropStaged("d1", 5);
  EXPECT_EQ(b->StageSnapshot(5, parts[0]).code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(SnapshotKeys(*b, "d1"), 0u);
}

// What a transfer cut short by a restart staged is deleted when the journal
// opens; the current snapshot stays.
TEST_F(SnapshotTest, StagingLeftByARestartIsDeletedAtOpen) {
  auto a = BigSource("a", 3000);
  SnapshotData snap = *a->ReadSnapshot("d1");
  {
    auto b = Open("b", {});
    ASSERT_OK(b->InstallSnapshot(CertOf("d1"), snap));
    ASSERT_OK(a->Append("d1", {Put("s", "k0", "0")}));
    ASSERT_OK(a->Snapshot("d1"));
    auto parts = Parts(*a->ReadSnapshot("d1"), 1);
    ASSERT_OK(b->StageSnapshot(9, parts[0]));
    ASSERT_OK(b->StageSnapshot(9, parts[1]));
    EXPECT_EQ(SnapshotKeys(*b, "d1"), snap.chunks.size() + 1 + 3);
  }
  auto b = Open("b", {});
  EXPECT_EQ(SnapshotKeys(*b, "d1"), snap.chunks.size() + 1);
  EXPECT_EQ(b->Stream("d1")->snapshot, 3000u);
  EXPECT_OK(b->Verify("d1"));
}

// An install that replaces the view was cut short (the meta marks it): the
// journal finishes it when it opens; with its staged chunks damaged, it drops
// the stream instead, to be fetched again, rather than keep half a view.
TEST_F(SnapshotTest, AnInstallCutShortIsFinishedOrUndoneAtOpen) {
  auto a = BigSource("a", 3000);
  SnapshotData snap = *a->ReadSnapshot("d1");
  for (bool damaged : {false, true}) {
    SCOPED_TRACE(damaged ? "damaged" : "whole");
    const std::string name = damaged ? "c" : "b";
    {
      auto b = Open(name, {});
      auto parts = Parts(snap, 1);
      for (const auto& p : parts) ASSERT_OK(b->StageSnapshot(3, p));
      // What InstallSnapshot writes first, and a crash after part of the view.
      wire::StreamMeta marked;
      marked.set_first(1);
      marked.set_head_hash(GenesisHash("d1", Signer("d1")->public_key()->raw()));
      marked.set_device_cert(CertOf("d1"));
      marked.set_installing(snap.header.seq());
      leveldb::WriteBatch batch;
      batch.Put(layout::MetaKey("d1"), marked.SerializeAsString());
      batch.Put(layout::KvKey("d1", "s", "not-in-it"), "left of the old view");
      if (damaged) batch.Delete(layout::SnapshotKey("d1", 1, 2));
      ASSERT_OK(b->store()->Write(&batch, true));
      // Meanwhile nothing of the stream is read: not half a view.
      EXPECT_EQ(b->KvGet("d1", "s", "k7").status().code(), Status::Code::kUnavailable);
      EXPECT_EQ(b->KvList("d1", "s", "", 10).status().code(), Status::Code::kUnavailable);
      EXPECT_EQ(b->Read("d1", 1, 10).status().code(), Status::Code::kUnavailable);
    }
    auto b = Open(name, {});
    if (damaged) {
      EXPECT_TRUE(b->Catalogue().empty());
      EXPECT_EQ(SnapshotKeys(*b, "d1"), 0u);
      EXPECT_TRUE(b->KeptView("d1")->empty());
    } else {
      EXPECT_EQ(b->Stream("d1")->snapshot, 3000u);
      EXPECT_EQ(b->Stream("d1")->last, 3000u);
      EXPECT_EQ(*b->KeptView("d1"), *a->KeptView("d1"));
      EXPECT_OK(b->Verify("d1"));
    }
  }
}

// A snapshot made at the source goes to the other slot and is made current at
// once; a reader holding the old one's chunks (serving a peer) is not cut off.
TEST_F(SnapshotTest, ANewSnapshotDoesNotDisturbAReadOfTheOldOne) {
  auto a = BigSource("a", 3000);
  auto first = a->ReadSnapshotChunks("d1", 0, 1, 1);
  ASSERT_OK(first);
  ASSERT_OK(a->Append("d1", {Put("s", "k0", "0")}));
  ASSERT_OK(a->Snapshot("d1"));
  auto later = a->ReadSnapshotChunks("d1", first->header.seq(), 2, 1);
  ASSERT_OK(later);
  EXPECT_EQ(later->header.seq(), 3001u) << "replaced: read again from its chunk 1";
  EXPECT_EQ(later->first_chunk, 1u);
  EXPECT_EQ(SnapshotKeys(*a, "d1"), a->ReadSnapshot("d1")->chunks.size() + 1);
}

}  // namespace
}  // namespace cairn::journal
