// Catalogue summaries (sync/summary.h): the first catalogue between two nodes
// that agree costs a few KiB, one that differs costs the buckets where it does,
// and a peer that sends what was not asked for, or too much, is closed.
#include "sync/summary.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "sync/engine.h"

namespace cairn::sync {
namespace {

constexpr uint32_t kPinnedBucket = 2799;  // python3: sha256(b"dev-000000") >> 244

std::string Id(int i) {
  char id[32];
  std::snprintf(id, sizeof id, "dev-%06d", i);
  return id;
}

journal::StreamInfo Info(const std::string& device, uint64_t last, bool source = false,
                         std::vector<std::string> groups = {}) {
  journal::StreamInfo i;
  i.device = device;
  i.first = 1;
  i.last = last;
  i.source = source;
  i.groups = std::move(groups);
  return i;
}

// `n` relayed devices at last 100 + i, and the node's own device named `self`.
std::vector<journal::StreamInfo> Catalogue(int n, const std::string& self) {
  std::vector<journal::StreamInfo> out;
  for (int i = 0; i < n; ++i) out.push_back(Info(Id(i), 100 + i));
  out.push_back(Info(self, 7, true));
  return out;
}

SyncOptions Named(const std::string& self) {
  SyncOptions o;
  o.self = self;
  return o;
}

// Two engines, "a" and "b", joined: what one sends the other gets, until neither
// has anything to say. Counts what went each way.
struct Link {
  Engine a;
  Engine b;
  struct Way {
    size_t catalogue_bytes = 0;  // catalogue messages (whole, summaries, answers)
    size_t summaries = 0;
    size_t wants = 0;
    size_t want_buckets = 0;  // buckets asked for in them
  };
  Way ab, ba;
  std::vector<Action> closes;

  Link(SyncOptions oa, SyncOptions ob) : a(oa), b(ob) {}

  void Activate() {
    a.OnPeerActive("b");
    b.OnPeerActive("a");
  }
  // Delivers until quiet (bounded). A quiet turn is a second as SyncNode runs
  // it: deltas flushed, RetryPaused (which goes on with a scan that sends
  // nothing until it is done; drains come only above the high-water mark).
  void Run() {
    int quiet = 0;
    for (int turn = 0; turn < 10'000; ++turn) {
      a.Flush();
      b.Flush();
      if (Deliver(a, b, "a", ab) | Deliver(b, a, "b", ba)) {
        quiet = 0;
        continue;
      }
      if (++quiet > 10) return;
      a.RetryPaused();
      b.RetryPaused();
    }
    ADD_FAILURE() << "the link never went quiet";
  }

 private:
  bool Deliver(Engine& from, Engine& to, const std::string& name, Way& way) {
    auto actions = from.TakeActions();
    for (auto& act : actions) {
      if (act.kind == Action::Kind::kClose) closes.push_back(act);
      if (act.kind != Action::Kind::kSend) continue;
      const auto& m = act.message;
      if (m.has_catalogue() && (m.catalogue().full() || m.catalogue().continues() ||
                                m.catalogue().answer() || m.catalogue().has_summary())) {
        way.catalogue_bytes += m.ByteSizeLong();
      }
      if (m.has_catalogue() && m.catalogue().has_summary()) ++way.summaries;
      if (m.has_catalogue_want()) {
        ++way.wants;
        for (unsigned char byte : m.catalogue_want().buckets()) {
          way.want_buckets += static_cast<size_t>(__builtin_popcount(byte));
        }
      }
      to.OnMessage(name, act.message);
    }
    return !actions.empty();
  }
};

TEST(SummaryTest, SumsFoldToCoarserBucketsAndTakeBackWhatWasAdded) {
  BucketSums sums;
  std::vector<SummaryKey> keys;
  for (int i = 0; i < 1000; ++i) {
    keys.push_back(KeyOf(Id(i), FineBucket(Id(i)), 5, {}));
    sums.Add(keys.back());
  }
  const auto fine = sums.Fold(kSummaryFineBits);
  const auto coarse = sums.Fold(3);
  ASSERT_EQ(coarse.size(), 8u);
  uint64_t total = 0;
  for (uint64_t s : fine) total += s;
  uint64_t total_coarse = 0;
  for (uint64_t s : coarse) total_coarse += s;
  EXPECT_EQ(total, total_coarse);
  BucketSums other;
  for (int i = 0; i < 999; ++i) other.Add(keys[static_cast<size_t>(i)]);
  EXPECT_NE(other.Fold(3), coarse);
  sums.Remove(keys.back());
  EXPECT_EQ(other.Fold(3), sums.Fold(3));
  EXPECT_EQ(sums.count(), 999u);
  // The digest names the head and the groups, not only the id.
  EXPECT_NE(KeyOf("d", 0, 5, {}).digest, KeyOf("d", 0, 6, {}).digest);
  EXPECT_NE(KeyOf("d", 0, 5, {}).digest, KeyOf("d", 0, 5, {"g"}).digest);
  EXPECT_NE(KeyOf("d", 0, 5, {"ab"}).digest, KeyOf("d", 0, 5, {"a", "b"}).digest);
  // Buckets and digests are the same on every build (peers of other builds
  // must agree): the top 12 bits of SHA-256("dev-000000"), pinned.
  EXPECT_EQ(FineBucket("dev-000000"), kPinnedBucket);
  EXPECT_EQ(SummaryBits(0), 0);
  EXPECT_EQ(SummaryBits(10'000), 8);  // 256 buckets of about 40
  EXPECT_EQ(SummaryBits(100'000'000), kSummaryFineBits);
  EXPECT_NE(InterestDigest(Interest::All()), InterestDigest(Interest::None()));
}

// The case the summary is for: two nodes that hold the same 10,000 devices at the
// same heads meet again. Each tells the other in a few KiB, asks for nothing, and
// still knows every entry (and which node is the source of its own device).
TEST(SummaryTest, TwoNodesThatAgreeExchangeAFewKiBAndAskForNothing) {
  Link link(Named("a"), Named("b"));
  auto both = Catalogue(10'000, "a");
  both.push_back(Info("b", 9));
  link.a.SetLocal(both);
  for (auto& i : both) i.source = i.device == "b";
  link.b.SetLocal(both);
  // Streams a is the source of that hold nothing yet: b does not store them (it
  // has nothing to fetch), and they do not make the sums differ.
  std::vector<journal::StreamInfo> empty;
  for (int i = 0; i < 500; ++i)
    empty.push_back(Info("empty-" + std::to_string(i), 0, true));
  link.a.SetLocal(empty);
  link.a.Guard({"a"}, 1);
  link.Activate();
  link.Run();
  EXPECT_TRUE(link.closes.empty());
  EXPECT_EQ(link.ab.summaries, 1u);
  EXPECT_EQ(link.ba.summaries, 1u);
  EXPECT_EQ(link.ab.wants + link.ba.wants, 0u);
  EXPECT_LT(link.ab.catalogue_bytes, 4096u) << "not a summary's size";
  EXPECT_LT(link.ba.catalogue_bytes, 4096u);
  std::printf("10,000 devices that agree: %zu and %zu bytes of catalogue\n",
              link.ab.catalogue_bytes, link.ba.catalogue_bytes);
  EXPECT_EQ(link.a.PeerLast(Id(9'999)), 100u + 9'999);
  EXPECT_EQ(link.b.PeerLast(Id(0)), 100u);
  EXPECT_EQ(link.b.SourcePeer("a"), "a") << "the summary names its sender's own device";
  EXPECT_EQ(link.a.SourcePeer("b"), "b");
  EXPECT_EQ(link.a.SourcePeer(Id(5)), "");
  EXPECT_TRUE(link.a.guarded().empty()) << "the summary counts as the peer's catalogue";
  EXPECT_EQ(link.b.catalogue_stats().summaries_received, 1u);
  EXPECT_EQ(link.b.catalogue_stats().buckets_agreed, 256u);
}

// The two devices whose heads move the most, each node's own, go beside the
// sums: a node that appended to its own device while the two were apart costs
// no bucket either way.
TEST(SummaryTest, EachNodesOwnDeviceMovesWithoutCostingABucket) {
  Link link(Named("a"), Named("b"));
  auto cat = Catalogue(10'000, "a");
  cat.push_back(Info("b", 50));
  link.a.SetLocal(cat);
  cat[10'000].source = false;  // "a" at b
  cat[10'000].last = 3;        // b last saw a's own device at 3; a is at 7
  cat[10'001].source = true;   // "b" at b, which appended while apart
  cat[10'001].last = 60;
  link.b.SetLocal(cat);
  link.Activate();
  link.Run();
  EXPECT_TRUE(link.closes.empty());
  EXPECT_EQ(link.ab.wants + link.ba.wants, 0u) << "a bucket was asked for an own device";
  EXPECT_EQ(link.b.PeerLast("a"), 7u);
  EXPECT_EQ(link.a.PeerLast("b"), 60u);
  EXPECT_EQ(link.b.SourcePeer("a"), "a");
  EXPECT_EQ(link.a.Via("b"), "b");
  EXPECT_EQ(link.b.Via("a"), "a");
}

// A node that follows less than its peer stores less than the peer compares
// with: it sends its catalogue whole rather than a summary every bucket of which
// would differ.
TEST(SummaryTest, ANodeThatFollowsLessSendsEntries) {
  Link link(Named("a"), Named("b"));
  auto narrow = Interest::Parse({"dev-00*"});
  ASSERT_TRUE(narrow.ok());
  link.a.SetInterest(*narrow);
  std::vector<journal::StreamInfo> held;
  for (int i = 0; i < 10'000; ++i) held.push_back(Info(Id(i), 100 + i));  // dev-00*
  link.a.SetLocal(held);
  link.b.SetLocal(Catalogue(20'000, "b"));
  link.Activate();
  link.Run();
  EXPECT_TRUE(link.closes.empty());
  EXPECT_EQ(link.ab.summaries, 0u);
  // b follows every device: one summary cut to every device before a's interest
  // reached it (ignored), then one cut to that interest.
  EXPECT_EQ(link.ba.summaries, 2u);
  EXPECT_EQ(link.ab.wants, 0u) << "a holds what b has of a's interest";
  EXPECT_EQ(link.b.PeerLast(Id(9'999)), 100u + 9'999);
  EXPECT_EQ(link.a.PeerLast(Id(9'999)), 100u + 9'999);
  EXPECT_EQ(link.a.PeerLast(Id(10'000)), 0u);
}

// One device ahead on one side costs the bucket it falls in: about 40 entries,
// not 10,000, and the side behind follows it.
TEST(SummaryTest, OneDeviceAheadCostsItsBucketAndIsFollowed) {
  Link link(Named("a"), Named("b"));
  auto cat = Catalogue(10'000, "a");
  link.a.SetLocal(cat);
  cat.back().source = false;
  cat[1234].last += 5;
  link.b.SetLocal(cat);
  link.Activate();
  link.Run();
  EXPECT_TRUE(link.closes.empty());
  EXPECT_EQ(link.ab.wants, 1u);
  EXPECT_EQ(link.ab.want_buckets, 1u);
  EXPECT_EQ(link.ba.wants, 1u);
  EXPECT_EQ(link.ba.want_buckets, 1u);
  EXPECT_LT(link.b.catalogue_stats().entries_sent, 100u);
  EXPECT_GT(link.b.catalogue_stats().entries_sent, 10u);
  EXPECT_EQ(link.a.PeerLast(Id(1234)), 100u + 1234 + 5);
  EXPECT_EQ(link.a.Via(Id(1234)), "b");
  EXPECT_EQ(link.b.PeerLast(Id(1234)), 100u + 1234) << "a's answer names a's head";
  EXPECT_EQ(link.a.PeerLast(Id(1233)), 100u + 1233);
}

// A new node (nothing stored) asks for every bucket and gets the whole
// catalogue, in parts: what it would have got without a summary.
TEST(SummaryTest, ANewNodeAsksForEveryBucketAndGetsEverything) {
  Link link(Named("a"), Named("b"));
  link.a.SetLocal(Catalogue(20'000, "a"));
  link.b.SetLocal({Info("b", 1, true)});
  link.b.Guard({"b"}, 1);
  link.Activate();
  link.Run();
  EXPECT_TRUE(link.closes.empty());
  EXPECT_EQ(link.ba.want_buckets, 512u);
  EXPECT_EQ(link.a.catalogue_stats().entries_sent, 20'001u);
  EXPECT_EQ(link.b.PeerLast(Id(19'999)), 100u + 19'999);
  EXPECT_EQ(link.b.SourcePeer("a"), "a");
  EXPECT_TRUE(link.b.guarded().empty());
}

// A summary made before our interest reached the sender is ignored; the one cut
// to it counts. With an interest that is neither every device nor the sender's
// own, the sender scans in steps; what changes behind the scan goes with it.
TEST(SummaryTest, ASummaryCutToAnotherInterestIsIgnoredAndChangesBehindAScanAreSent) {
  Link link(Named("a"), Named("b"));
  auto cat = Catalogue(50'000, "a");  // past the scan bound of one call
  link.a.SetLocal(cat);
  auto interest = Interest::Parse({"dev-00*", "dev-04*"});
  ASSERT_TRUE(interest.ok());
  link.b.SetInterest(*interest);
  std::vector<journal::StreamInfo> held;
  for (const auto& i : cat) {
    if (interest->Matches(i.device) && i.device != "a") held.push_back(i);
  }
  link.b.SetLocal(held);  // 20,000 of them, all at a's heads
  link.Activate();
  // The first summary (for every device) reaches b before b's interest reaches a.
  for (auto& act : link.a.TakeActions()) {
    if (act.kind == Action::Kind::kSend) link.b.OnMessage("a", act.message);
  }
  EXPECT_EQ(link.b.catalogue_stats().summaries_received, 1u);
  EXPECT_EQ(
      link.b.catalogue_stats().buckets_agreed + link.b.catalogue_stats().buckets_asked,
      0u)
      << "a summary cut to another interest was compared";
  for (auto& act : link.b.TakeActions()) {
    if (act.kind == Action::Kind::kSend) link.a.OnMessage("b", act.message);
  }
  // b's interest started a scan toward the next summary (20,000 devices a
  // call): change one device it has passed.
  link.a.OnLocalChange(Info(Id(1), 5000));
  link.Run();
  EXPECT_TRUE(link.closes.empty());
  EXPECT_EQ(link.b.catalogue_stats().summaries_received, 2u);
  EXPECT_EQ(link.b.PeerLast(Id(1)), 5000u) << "a change behind the scan was lost";
  EXPECT_EQ(link.b.PeerLast(Id(40'000)), 100u + 40'000);
  EXPECT_EQ(link.b.PeerLast(Id(10'000)), 0u) << "not in b's interest";
  EXPECT_EQ(link.ba.want_buckets, 0u) << "the sums were made before the change";
}

// What a peer may not do with summaries, wants and answers.
TEST(SummaryTest, MalformedOrUnaskedSummaryMessagesCloseThePeer) {
  auto summary = [](uint32_t bits, int sums, uint64_t id = 1) {
    wire::Envelope m;
    auto* s = m.mutable_catalogue()->mutable_summary();
    s->set_id(id);
    s->set_bits(bits);
    s->set_interest(InterestDigest(Interest::All()));
    for (int i = 0; i < sums; ++i) s->add_sums(1);
    return m;
  };
  auto closed = [](Engine& e) {
    for (const auto& a : e.TakeActions()) {
      if (a.kind == Action::Kind::kClose) return a.reason;
    }
    return std::string();
  };
  {
    Engine e;
    e.OnPeerActive("m");
    (void)e.TakeActions();
    e.OnMessage("m", summary(13, 1 << 13));
    EXPECT_NE(closed(e).find("summary"), std::string::npos);
  }
  {
    Engine e;
    e.OnPeerActive("m");
    (void)e.TakeActions();
    e.OnMessage("m", summary(4, 15));
    EXPECT_NE(closed(e).find("summary"), std::string::npos);
  }
  {  // A flood of summaries: each costs a pass over our catalogue.
    Engine e;
    e.SetLocal(Catalogue(1000, "x"));
    e.OnPeerActive("m");
    (void)e.TakeActions();
    std::string reason;
    for (int i = 0; i < 10 && reason.empty(); ++i) {
      e.OnMessage("m", summary(4, 16, 1 + static_cast<uint64_t>(i)));
      reason = closed(e);
    }
    EXPECT_NE(reason.find("faster than"), std::string::npos) << reason;
  }
  {
    Engine e;
    e.OnPeerActive("m");
    (void)e.TakeActions();
    wire::Envelope answer;
    answer.mutable_catalogue()->set_answer(true);
    e.OnMessage("m", answer);
    EXPECT_NE(closed(e).find("nobody asked"), std::string::npos);
  }
  {  // A want of the wrong size; one for another summary is ignored; one is answered
     // once.
    SyncOptions o;
    o.summary_min_entries = 0;
    Engine e(o);
    e.SetLocal(Catalogue(1000, "x"));
    e.OnPeerActive("m");
    uint64_t id = 0;
    for (const auto& a : e.TakeActions()) {
      if (a.kind == Action::Kind::kSend && a.message.catalogue().has_summary()) {
        id = a.message.catalogue().summary().id();
        EXPECT_EQ(a.message.catalogue().summary().bits(), 4u);
      }
    }
    ASSERT_NE(id, 0u);
    auto want = [](uint64_t of, size_t bytes) {
      wire::Envelope m;
      m.mutable_catalogue_want()->set_id(of);
      m.mutable_catalogue_want()->set_buckets(std::string(bytes, '\xff'));
      return m;
    };
    e.OnMessage("m", want(id + 1, 2));
    EXPECT_TRUE(e.TakeActions().empty()) << "a want for another summary was answered";
    e.OnMessage("m", want(id, 2));
    size_t entries = 0;
    for (const auto& a : e.TakeActions()) entries += a.message.catalogue().entries_size();
    EXPECT_EQ(entries, 1001u);
    e.OnMessage("m", want(id, 2));
    EXPECT_TRUE(e.TakeActions().empty()) << "one summary answered twice";
    Engine f(o);
    f.SetLocal(Catalogue(1000, "x"));
    f.OnPeerActive("m");
    for (const auto& a : f.TakeActions()) {
      if (a.kind == Action::Kind::kSend && a.message.catalogue().has_summary())
        id = a.message.catalogue().summary().id();
    }
    f.OnMessage("m", want(id, 3));
    EXPECT_NE(closed(f).find("catalogue want of 3 bytes"), std::string::npos);
  }
}

}  // namespace
}  // namespace cairn::sync
