#include <atomic>
#include <condition_variable>
#include <thread>

#include "journal_fixture.h"

namespace cairn::journal {
namespace {

// Collects deliveries and lets the test wait (with a watchdog) for a head seq.
class Collector {
 public:
  void operator()(const Delivery& d) {
    std::lock_guard<std::mutex> l(mu_);
    if (!d.status.ok()) error_ = d.status.ToString();
    if (d.snapshot) {
      snapshots_.push_back(d.restored_from);
      last_ = d.snapshot->header.seq();
    }
    for (const auto& r : d.records) {
      if (r.seq() != last_ + 1) {
        error_ = "got " + std::to_string(r.seq()) + " after " + std::to_string(last_);
      }
      last_ = r.seq();
      seqs_.push_back(r.seq());
    }
    cv_.notify_all();
  }
  bool WaitFor(uint64_t seq) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(20), [&] { return last_ >= seq; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint64_t> seqs_;
  std::vector<uint64_t> snapshots_;
  uint64_t last_ = 0;
  std::string error_;
};

using SubscriptionTest = JournalTest;

TEST_F(SubscriptionTest, StoredThenLiveWithNoGapOrDuplicateAtTheSeam) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", Events(100)));
  Collector c;
  std::atomic<bool> stop{false};
  // Appends keep arriving while the subscription catches up and goes live.
  std::thread writer([&] {
    for (int i = 0; i < 200 && !stop; ++i) CHECK(j->Append("d1", Events(5)).ok());
  });
  auto sub = j->Subscribe("d1", 1, [&c](const Delivery& d) { c(d); });
  ASSERT_OK(sub);
  writer.join();
  ASSERT_TRUE(c.WaitFor(1100));
  std::lock_guard<std::mutex> l(c.mu_);
  EXPECT_EQ(c.error_, "");
  ASSERT_EQ(c.seqs_.size(), 1100u);
  for (size_t i = 0; i < c.seqs_.size(); ++i) ASSERT_EQ(c.seqs_[i], i + 1);
}

TEST_F(SubscriptionTest, FromBelowWhatIsStoredGetsTheSnapshotFirst) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(j->Append("d1", Events(9)));
  ASSERT_OK(j->Snapshot("d1"));
  ASSERT_OK(j->Append("d1", Events(5)));
  ASSERT_OK(j->Trim("d1", 10));  // as retention does
  Collector c;
  auto sub = j->Subscribe("d1", 3, [&c](const Delivery& d) { c(d); });
  ASSERT_OK(sub);
  ASSERT_TRUE(c.WaitFor(15));
  std::lock_guard<std::mutex> l(c.mu_);
  ASSERT_EQ(c.snapshots_.size(), 1u);
  EXPECT_EQ(c.snapshots_[0], 10u);  // told explicitly: restored from the snapshot at 10
  EXPECT_EQ(c.seqs_.front(), 11u);
  EXPECT_EQ(c.error_, "");
}

TEST_F(SubscriptionTest, CursorChunksEndAtSignedRecords) {
  auto o = Options("a", {"d1"});
  o.sign_every_bytes = 4096;
  auto j = OpenWith(std::move(o));
  std::vector<NewEvent> big;
  for (int i = 0; i < 500; ++i) big.push_back({"blob", std::string(100, 'x')});
  ASSERT_OK(j->Append("d1", big));
  auto cursor = j->OpenCursor("d1", 1);
  ASSERT_OK(cursor);
  uint64_t seen = 0;
  for (int i = 0; i < 1000; ++i) {
    Delivery d = (*cursor)->Next(1000);
    ASSERT_OK(d.status);
    if (d.empty()) break;
    EXPECT_FALSE(d.records.back().sig().empty())
        << "chunk ends at " << d.records.back().seq();
    EXPECT_EQ(d.records.front().seq(), seen + 1);
    seen = d.records.back().seq();
  }
  EXPECT_EQ(seen, 500u);
}

TEST_F(SubscriptionTest, DestroyingASubscriptionInsideItsCallbackIsSafe) {
  auto j = Open("a", {"d1"});
  ASSERT_OK(j->Append("d1", Events(3)));
  std::unique_ptr<Subscription> sub;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  {
    // Held while subscribing, so the callback cannot run before `sub` is stored.
    std::lock_guard<std::mutex> l(mu);
    auto r = j->Subscribe("d1", 1, [&](const Delivery&) {
      std::lock_guard<std::mutex> inner(mu);
      sub.reset();  // destroys the subscription from inside its own callback
      done = true;
      cv.notify_all();
    });
    ASSERT_OK(r);
    sub = std::move(*r);
  }
  std::unique_lock<std::mutex> l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(20), [&] { return done; }));
  EXPECT_EQ(sub, nullptr);
}

TEST_F(SubscriptionTest, ReplicaSubscribersSeeAppliedRecordsLive) {
  auto a = Open("a", {"d1"});
  auto b = Open("b", {});
  Collector c;
  auto sub = b->Subscribe("d1", 1, [&c](const Delivery& d) { c(d); });
  ASSERT_OK(sub);
  ASSERT_OK(a->Append("d1", Events(4)));
  ASSERT_OK(b->Apply("d1", CertOf("d1"), All(*a, "d1")));
  ASSERT_TRUE(c.WaitFor(4));
}

}  // namespace
}  // namespace cairn::journal
