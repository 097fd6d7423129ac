// Forget: a stream no longer followed is deleted whole (events, snapshots, view,
// follower reports), never a source's, and a deletion cut short by a crash is
// finished at the next open.
#include <leveldb/write_batch.h>

#include <condition_variable>
#include <mutex>

#include "journal/layout.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

size_t KeysUnder(Journal& j, const std::string& prefix) {
  size_t n = 0;
  auto it = j.store()->NewIterator();
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
  return n;
}

size_t KeysOf(Journal& j, const std::string& device) {
  return KeysUnder(j, layout::MetaKey(device)) +
         KeysUnder(j, layout::EventPrefix(device)) +
         KeysUnder(j, layout::SnapshotPrefix(device)) +
         KeysUnder(j, layout::KvPrefix(device)) +
         KeysUnder(j, layout::FollowerPrefix(device));
}

class ForgetTest : public JournalTest {
 protected:
  // b replicates `device` from a: a snapshot of its view, then events after it.
  void Replicate(Journal& a, Journal& b, const std::string& device, int events) {
    std::vector<NewEvent> e;
    for (int i = 0; i < events; ++i) {
      e.push_back(Put("s", "k" + std::to_string(i), std::to_string(i)));
    }
    ASSERT_OK(a.Append(device, e));
    ASSERT_OK(a.Snapshot(device));
    ASSERT_OK(a.Append(device, Events(3)));
    ASSERT_OK(b.InstallSnapshot(a.DeviceCert(device).value(), *a.ReadSnapshot(device)));
    auto snap = *a.Stream(device);
    ASSERT_OK(b.Apply(device, "", All(a, device, snap.snapshot + 1)));
  }
};

TEST_F(ForgetTest, EverythingOfTheStreamGoesAndNothingElse) {
  auto a = Open("a", {"d1", "d2"});
  auto b = Open("b", {"mine"});
  Replicate(*a, *b, "d1", 50);
  Replicate(*a, *b, "d2", 5);
  ASSERT_OK(b->Append("mine", Events(4)));
  ASSERT_OK(b->NoteFollowers({{"d1", {{"n9", 20}}}}));
  ASSERT_GT(KeysOf(*b, "d1"), 50u);
  const size_t d2_keys = KeysOf(*b, "d2");
  const size_t mine_keys = KeysOf(*b, "mine");

  ASSERT_OK(b->Forget("d1"));
  EXPECT_EQ(KeysOf(*b, "d1"), 0u);
  EXPECT_EQ(b->Stream("d1").status().code(), Status::Code::kNotFound);
  auto kv = b->KvGet("d1", "s", "k1");
  EXPECT_TRUE(!kv.ok() || !kv->has_value()) << "the view went too";
  EXPECT_EQ(KeysOf(*b, "d2"), d2_keys);
  EXPECT_EQ(KeysOf(*b, "mine"), mine_keys);
  EXPECT_OK(b->Verify("d2"));
  ASSERT_OK(b->Forget("d1"));  // nothing left: fine

  // Followed again later: fetched anew, as a new replica.
  ASSERT_OK(b->InstallSnapshot(a->DeviceCert("d1").value(), *a->ReadSnapshot("d1")));
  EXPECT_OK(b->Verify("d1"));
}

TEST_F(ForgetTest, ASourceIsNeverForgotten) {
  auto b = Open("b", {"mine"});
  ASSERT_OK(b->Append("mine", Events(4)));
  Status s = b->Forget("mine");
  EXPECT_EQ(s.code(), Status::Code::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(b->Stream("mine")->last, 4u);
}

// A subscription open across the deletion waits, as for a device not known
// here; the stream fetched again later continues it, with no gap and nothing twice.
TEST_F(ForgetTest, ASubscriptionWaitsAndContinuesWhenTheStreamComesBack) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  ASSERT_OK(a->Append("d1", Events(5)));
  ASSERT_OK(b->Apply("d1", CertOf("d1"), All(*a, "d1")));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> seqs;
  Status failed;
  auto sub = b->Subscribe("d1", 1, [&](const Delivery& d) {
    std::lock_guard<std::mutex> l(mu);
    if (!d.status.ok()) failed = d.status;
    for (const auto& r : d.records) seqs.push_back(r.seq());
    cv.notify_all();
  });
  ASSERT_OK(sub.status());
  auto wait_for = [&](size_t n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(10), [&] { return seqs.size() >= n; });
  };
  ASSERT_TRUE(wait_for(5));
  ASSERT_OK(b->Forget("d1"));
  EXPECT_FALSE(b->OpenCursor("d1", 1).value()->Next().records.size() > 0);
  ASSERT_OK(a->Append("d1", Events(3)));
  ASSERT_OK(b->Apply("d1", CertOf("d1"), All(*a, "d1")));  // followed again
  ASSERT_TRUE(wait_for(8));
  std::lock_guard<std::mutex> l(mu);
  EXPECT_OK(failed);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

// A crash after the mark and part of the deletion: the next open finishes it.
TEST_F(ForgetTest, ADeletionCutShortIsFinishedAtOpen) {
  auto a = Open("a", {"d1"});
  {
    auto b = Open("b", {});
    Replicate(*a, *b, "d1", 40);
    auto meta = b->store()->GetProto<wire::StreamMeta>(layout::MetaKey("d1"));
    ASSERT_TRUE(meta.ok() && meta->has_value());
    wire::StreamMeta m = **meta;
    m.set_forgetting(true);
    leveldb::WriteBatch batch;
    batch.Put(layout::MetaKey("d1"), m.SerializeAsString());
    batch.Delete(layout::EventKey("d1", m.last()));  // part of it went
    ASSERT_OK(b->store()->Write(&batch, true));
    // Meanwhile, its view (still on disk) is not read as if the stream were here.
    ASSERT_GT(KeysUnder(*b, layout::KvPrefix("d1")), 0u);
    auto kv = b->KvGet("d1", "s", "k1");
    ASSERT_OK(kv.status());
    EXPECT_FALSE(kv->has_value()) << "a half-deleted view was read";
    EXPECT_TRUE(b->KvList("d1", "s", "", 100)->empty());
  }
  auto b = Open("b", {});
  EXPECT_EQ(b->Stream("d1").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(KeysOf(*b, "d1"), 0u);
  EXPECT_TRUE(b->Catalogue().empty());
}

}  // namespace
}  // namespace cairn::journal
