// Interest (what a node follows) and the engine's use of it: catalogues cut to
// the peer's interest both ways, follows left and streams forgotten when it
// narrows, a restart of the catalogue when it widens.
#include "sync/interest.h"

#include <gtest/gtest.h>

#include "sync/engine.h"

namespace cairn::sync {
namespace {

Interest Of(std::vector<std::string> patterns) {
  auto i = Interest::Parse(patterns);
  EXPECT_TRUE(i.ok()) << i.status().ToString();
  return i.ok() ? *i : Interest::None();
}

TEST(InterestTest, IdsGlobsAndGroupsMatchWhatTheyName) {
  Interest i = Of({"door-1", "sensor-*", "group:floor2"});
  EXPECT_FALSE(i.all());
  EXPECT_TRUE(i.Matches("door-1"));
  EXPECT_FALSE(i.Matches("door-10"));
  EXPECT_TRUE(i.Matches("sensor-"));
  EXPECT_TRUE(i.Matches("sensor-77"));
  EXPECT_FALSE(i.Matches("xsensor-1"));
  EXPECT_FALSE(i.Matches("cam-1", std::vector<std::string>{"floor1"}));
  EXPECT_TRUE(i.Matches("cam-1", std::vector<std::string>{"floor1", "floor2"}));
  EXPECT_TRUE(Interest::All().Matches("anything"));
  EXPECT_FALSE(Interest::None().Matches("anything"));
  EXPECT_TRUE(Of({"*", "door-1"}).all());
  EXPECT_EQ(Of({"*", "door-1"}).patterns(), std::vector<std::string>{"*"});
}

TEST(InterestTest, BadPatternsAreRefusedWithTheReason) {
  for (const char* bad : {"", "a b", "group:", "group:a/b", "x[", "door;rm"}) {
    auto i = Interest::Parse({bad});
    EXPECT_FALSE(i.ok()) << "'" << bad << "' was taken";
  }
  EXPECT_FALSE(Interest::Parse({std::string(200, 'a')}).ok());
  std::vector<std::string> many;
  for (int k = 0; k < 65; ++k) many.push_back("g" + std::to_string(k) + "-*");
  auto globs = Interest::Parse(many);
  ASSERT_FALSE(globs.ok());
  EXPECT_NE(globs.status().message().find("glob"), std::string::npos);
  std::vector<std::string> ids;
  for (int k = 0; k < 1025; ++k) ids.push_back("d" + std::to_string(k));
  EXPECT_FALSE(Interest::Parse(ids).ok());
}

TEST(InterestTest, UnfollowingWhatIsNotAPatternSaysWhatIs) {
  auto r = Interest::All().Without({"door-1"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("pattern '*' matches it"), std::string::npos)
      << r.status().message();
  auto glob = Of({"door-*"}).Without({"door-7"});
  ASSERT_FALSE(glob.ok());
  EXPECT_NE(glob.status().message().find("pattern 'door-*' matches it"),
            std::string::npos)
      << glob.status().message();
  auto fewer = Of({"door-1", "door-2"}).Without({"door-1"});
  ASSERT_TRUE(fewer.ok());
  EXPECT_EQ(fewer->patterns(), std::vector<std::string>{"door-2"});
  auto none = Interest::All().Without({"*"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->patterns().empty());
  auto more = none->With({"door-3"});
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->Matches("door-3"));
}

// ---------------------------------------------------------------- in the engine

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

std::vector<Action> Kind(std::vector<Action> actions, Action::Kind kind,
                         wire::Envelope::MsgCase msg = wire::Envelope::MSG_NOT_SET) {
  std::vector<Action> out;
  for (auto& a : actions) {
    if (a.kind == kind &&
        (msg == wire::Envelope::MSG_NOT_SET || a.message.msg_case() == msg))
      out.push_back(std::move(a));
  }
  return out;
}

std::set<std::string> Devices(const std::vector<Action>& sends) {
  std::set<std::string> out;
  for (const auto& a : sends) {
    for (const auto& e : a.message.catalogue().entries()) out.insert(e.device());
  }
  return out;
}

wire::Envelope InterestMsg(std::vector<std::string> patterns) {
  wire::Envelope m;
  m.mutable_interest();
  for (auto& p : patterns) m.mutable_interest()->add_follow(p);
  return m;
}

TEST(EngineInterestTest, APeerIsToldOnlyOfWhatItFollowsAndAllAgainWhenThatChanges) {
  Engine e;
  e.SetLocal({Info("door-1", 3, true), Info("sensor-1", 4),
              Info("cam-1", 5, false, {"floor2"})});
  e.OnPeerActive("p");
  EXPECT_EQ(
      Devices(Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue)),
      (std::set<std::string>{"cam-1", "door-1", "sensor-1"}));
  e.OnMessage("p", InterestMsg({"sensor-*", "group:floor2"}));
  auto again = Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(again[0].message.catalogue().full()) << "a new interest restarts it";
  EXPECT_EQ(Devices(again), (std::set<std::string>{"cam-1", "sensor-1"}));
  // Deltas too.
  e.OnLocalChange(Info("door-1", 4, true));
  e.OnLocalChange(Info("sensor-1", 5));
  e.Flush();
  EXPECT_EQ(
      Devices(Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue)),
      (std::set<std::string>{"sensor-1"}));
  // A bad interest closes the peer.
  e.OnMessage("p", InterestMsg({"a b"}));
  EXPECT_EQ(Kind(e.TakeActions(), Action::Kind::kClose).size(), 1u);
}

TEST(EngineInterestTest, WhatWeDoNotFollowIsNeitherKeptNorFollowed) {
  Engine e;
  e.SetInterest(Of({"door-*"}));
  e.OnPeerActive("p");
  auto first = e.TakeActions();
  auto told = Kind(first, Action::Kind::kSend, wire::Envelope::kInterest);
  ASSERT_EQ(told.size(), 1u) << "the peer is told our interest";
  EXPECT_EQ(told[0].message.interest().follow(0), "door-*");
  wire::Envelope cat;
  cat.mutable_catalogue()->set_full(true);
  for (int i = 0; i < 1000; ++i) {
    auto* x = cat.mutable_catalogue()->add_entries();
    x->set_device("other-" + std::to_string(i));
    x->set_last(10);
  }
  auto* d = cat.mutable_catalogue()->add_entries();
  d->set_device("door-1");
  d->set_last(10);
  e.OnMessage("p", cat);
  auto subs = Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe);
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].message.subscribe().device(), "door-1");
  EXPECT_EQ(e.PeerLast("other-1"), 0u) << "an entry we do not follow was kept";
  EXPECT_EQ(e.PeerLast("door-1"), 10u);
}

TEST(EngineInterestTest, NarrowingLeavesFollowsAndForgetsStreamsButNeverOurOwn) {
  Engine e;
  e.SetLocal({Info("mine", 3, true), Info("door-1", 4), Info("cam-1", 5)});
  e.OnPeerActive("p");
  wire::Envelope cat;
  cat.mutable_catalogue()->set_full(true);
  for (const char* dev : {"door-1", "cam-1"}) {
    auto* x = cat.mutable_catalogue()->add_entries();
    x->set_device(dev);
    x->set_last(9);
  }
  e.OnMessage("p", cat);
  EXPECT_EQ(Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).size(),
            2u);
  e.SetInterest(Of({"door-*"}));
  auto actions = e.TakeActions();
  auto unsub = Kind(actions, Action::Kind::kSend, wire::Envelope::kUnsubscribe);
  ASSERT_EQ(unsub.size(), 1u);
  EXPECT_EQ(unsub[0].message.unsubscribe().device(), "cam-1");
  auto forget = Kind(actions, Action::Kind::kForget);
  ASSERT_EQ(forget.size(), 1u) << "only cam-1 goes: door-1 is followed, mine is ours";
  EXPECT_EQ(forget[0].device, "cam-1");
  EXPECT_EQ(Kind(actions, Action::Kind::kSend, wire::Envelope::kInterest).size(), 1u);
  EXPECT_EQ(e.Via("cam-1"), "");
  EXPECT_EQ(e.Via("door-1"), "p");
  // Done: peers hear that we no longer hold it.
  e.OnForgotten("cam-1", Status::Ok());
  e.Flush();
  auto gone = Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue);
  ASSERT_EQ(gone.size(), 1u);
  ASSERT_EQ(gone[0].message.catalogue().entries_size(), 1);
  EXPECT_TRUE(gone[0].message.catalogue().entries(0).gone());
  // Nothing follows "none" but our own device, which is never forgotten.
  e.SetInterest(Interest::None());
  auto none = e.TakeActions();
  auto f2 = Kind(none, Action::Kind::kForget);
  ASSERT_EQ(f2.size(), 1u);
  EXPECT_EQ(f2[0].device, "door-1");
}

TEST(EngineInterestTest, AGoneEntryLeavesTheFollowThroughThatPeer) {
  Engine e;
  e.OnPeerActive("p");
  wire::Envelope cat;
  cat.mutable_catalogue()->set_full(true);
  auto* x = cat.mutable_catalogue()->add_entries();
  x->set_device("door-1");
  x->set_last(9);
  e.OnMessage("p", cat);
  (void)e.TakeActions();
  ASSERT_EQ(e.Via("door-1"), "p");
  wire::Envelope gone;
  auto* g = gone.mutable_catalogue()->add_entries();
  g->set_device("door-1");
  g->set_gone(true);
  e.OnMessage("p", gone);
  (void)e.TakeActions();
  EXPECT_EQ(e.Via("door-1"), "");
  EXPECT_EQ(e.PeerLast("door-1"), 0u);
  EXPECT_EQ(e.Unheld(), std::vector<std::string>{}) << "every device: none named";
  e.SetInterest(Of({"door-1", "door-*"}));
  EXPECT_EQ(e.Unheld(), std::vector<std::string>{"door-1"});
}

// A peer's claim of a group brings the device; its certificate, once stored,
// decides: a claim it does not back is dropped and not followed again.
TEST(EngineInterestTest, AGroupClaimTheCertificateDoesNotBackIsDropped) {
  Engine e;
  e.SetInterest(Of({"group:floor2"}));
  e.OnPeerActive("p");
  wire::Envelope cat;
  cat.mutable_catalogue()->set_full(true);
  auto* x = cat.mutable_catalogue()->add_entries();
  x->set_device("cam-9");
  x->set_last(9);
  x->add_groups("floor2");
  e.OnMessage("p", cat);
  EXPECT_EQ(Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).size(),
            1u);
  e.OnLocalChange(Info("cam-9", 9, false, {"floor7"}));
  auto actions = e.TakeActions();
  EXPECT_EQ(Kind(actions, Action::Kind::kForget).size(), 1u);
  EXPECT_EQ(e.Via("cam-9"), "");
  e.OnForgotten("cam-9", Status::Ok());
  e.OnMessage("p", cat);  // the same claim again
  EXPECT_TRUE(
      Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).empty());
}

// A peer flooding interest changes gets at most one catalogue restart a second
// (the last interest wins), and a catalogue cut to an interest that matches
// nothing scans a bounded number of devices per call, not all 100,000 at once.
TEST(EngineInterestTest, InterestFloodsAndEmptyMatchesCostABoundedScan) {
  Engine e;
  std::vector<journal::StreamInfo> local;
  for (int i = 0; i < 100'000; ++i)
    local.push_back(Info("d" + std::to_string(i), 1, true));
  e.SetLocal(local);
  e.OnPeerActive("p");
  (void)e.TakeActions();
  for (int i = 0; i < 100; ++i) e.OnMessage("p", InterestMsg({"x-" + std::to_string(i)}));
  // The first restart scans 20,000 devices and says nothing until it knows
  // whether the peer is offered enough for a summary.
  EXPECT_TRUE(
      Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue).empty())
      << "scanned everything at once";
  int ticks = 0;
  int catalogues = 0;
  bool done = false;
  while (!done && ticks < 20) {
    e.RetryPaused();
    ++ticks;
    for (const auto& a :
         Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue)) {
      ++catalogues;
      EXPECT_EQ(a.message.catalogue().entries_size(), 0);
      EXPECT_TRUE(a.message.catalogue().full());
      done = done || !a.message.catalogue().more();
    }
  }
  // The pending restart (the last interest) came on the first tick, then the
  // scan went on at 20,000 devices a tick, and what it found went whole.
  EXPECT_TRUE(done);
  EXPECT_EQ(catalogues, 1);
  EXPECT_GE(ticks, 5);
  // The last interest is the one in force: a device it names is sent.
  e.OnLocalChange(Info("x-99", 1, true));
  e.OnLocalChange(Info("x-5", 1, true));
  e.Flush();
  EXPECT_EQ(
      Devices(Kind(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue)),
      (std::set<std::string>{"x-99"}));
}

// Many peers with big catalogues: past the node's limit for all of them, the
// one that sent the most is closed, whoever's message crossed it.
TEST(EngineInterestTest, AllPeersCataloguesTogetherAreBounded) {
  SyncOptions o;
  o.max_catalogue_entries_total = 100;
  Engine e(o);
  auto catalogue = [](const std::string& prefix, int n) {
    wire::Envelope m;
    m.mutable_catalogue()->set_full(true);
    for (int i = 0; i < n; ++i) {
      auto* x = m.mutable_catalogue()->add_entries();
      x->set_device(prefix + std::to_string(i));
      x->set_last(1);
    }
    return m;
  };
  for (const char* p : {"p1", "p2", "p3"}) e.OnPeerActive(p);
  (void)e.TakeActions();
  e.OnMessage("p1", catalogue("a", 60));
  EXPECT_TRUE(Kind(e.TakeActions(), Action::Kind::kClose).empty());
  e.OnMessage("p2", catalogue("b", 30));
  EXPECT_TRUE(Kind(e.TakeActions(), Action::Kind::kClose).empty());
  e.OnMessage("p3", catalogue("c", 20));  // 110: p1 holds the most
  auto closes = Kind(e.TakeActions(), Action::Kind::kClose);
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_EQ(closes[0].peer, "p1");
  EXPECT_NE(closes[0].reason.find("over its limit of 100"), std::string::npos)
      << closes[0].reason;
  EXPECT_EQ(e.PeerLast("a1"), 0u) << "what p1 sent is gone with it";
  EXPECT_EQ(e.PeerLast("c1"), 1u);
}

// Unfollowed while a write of it is in flight: the delete waits for that write
// (they run on different threads; one that ran after it would store it again).
TEST(EngineInterestTest, ADeleteWaitsForTheWriteOfTheStreamInFlight) {
  Engine e;
  e.SetLocal({Info("cam-1", 1)});
  e.OnPeerActive("p");
  wire::Envelope cat;
  cat.mutable_catalogue()->set_full(true);
  auto* x = cat.mutable_catalogue()->add_entries();
  x->set_device("cam-1");
  x->set_last(9);
  e.OnMessage("p", cat);
  (void)e.TakeActions();
  wire::Envelope events;
  events.mutable_events()->set_device("cam-1");
  events.mutable_events()->add_records()->set_seq(2);
  e.OnMessage("p", events);
  auto applies = Kind(e.TakeActions(), Action::Kind::kApply);
  ASSERT_EQ(applies.size(), 1u);
  e.SetInterest(Interest::None());
  EXPECT_TRUE(Kind(e.TakeActions(), Action::Kind::kForget).empty())
      << "deleted while its apply was in flight";
  e.OnApplyDone("p", "cam-1", Status::Ok(), applies[0].credit);
  auto forget = Kind(e.TakeActions(), Action::Kind::kForget);
  ASSERT_EQ(forget.size(), 1u);
  EXPECT_EQ(forget[0].device, "cam-1");
  // The journal refuses (its own device, say): not asked again and again.
  e.OnForgotten("cam-1", Status::FailedPrecondition("own device"));
  (void)e.TakeActions();
  e.RetryPaused();
  e.OnLocalChange(Info("cam-1", 2));
  EXPECT_TRUE(Kind(e.TakeActions(), Action::Kind::kForget).empty());
}

}  // namespace
}  // namespace cairn::sync
