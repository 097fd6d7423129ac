// The discovery core over time: heartbeats, lifesupport and backoff, pinned versus
// unpinned peers, peer exchange, peer history and DNS seeds.
#include <gtest/gtest.h>

#include "discovery/core_fixture.h"

namespace cairn::discovery::testing {
namespace {

using K = Action::Kind;

class LifeTest : public CoreTest {
 protected:
  // Entries of the peer table (purgatory rows aside).
  size_t Entries() const {
    size_t n = 0;
    for (const auto& row : pm_->Snapshot()) n += row.state != PeerState::kPurgatory;
    return n;
  }
  // Fails the pending attempt to `address` before it opens.
  void FailAttempt(const std::string& address) {
    ConnId conn = ConnectTo(address);
    pm_->OnClosed(conn, "network: connection refused");
  }
  // Advances until a Connect shows up (at most `limit_ms`); returns the ms waited.
  int64_t WaitForConnect(int64_t limit_ms) {
    for (int64_t waited = 1; waited <= limit_ms; ++waited) {
      AdvanceMs(1);
      Take();
      if (!Of(K::kConnect).empty()) return waited;
    }
    return -1;
  }
};

TEST_F(LifeTest, IdlePeerIsPingedAndAPongKeepsItActive) {
  ConnId conn = Incoming("c", "10.0.0.3:7411");
  AdvanceMs(99);
  Take();
  EXPECT_FALSE(SentOn(conn, wire::Envelope::kPing));
  AdvanceMs(1);
  Take();
  ASSERT_TRUE(SentOn(conn, wire::Envelope::kPing));
  wire::Envelope pong;
  pong.mutable_pong()->set_nonce(last_[0].envelope.ping().nonce());
  pm_->OnMessage(conn, std::move(pong));
  AdvanceMs(250);
  Take();
  EXPECT_TRUE(Of(K::kClose).empty());
  EXPECT_EQ(StateOf("c"), PeerState::kActive);
}

TEST_F(LifeTest, APingIsAnsweredWithAPongOfTheSameNonce) {
  ConnId conn = Incoming("c");
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(77);
  pm_->OnMessage(conn, std::move(ping));
  Take();
  ASSERT_TRUE(SentOn(conn, wire::Envelope::kPong));
  EXPECT_EQ(last_[0].envelope.pong().nonce(), 77u);
}

// The nonce of the ping sent on `conn` in last_; fails the test when none.
uint64_t PingNonce(const std::vector<Action>& actions, ConnId conn) {
  for (const Action& a : actions) {
    if (a.kind == K::kSend && a.conn == conn && a.envelope.has_ping())
      return a.envelope.ping().nonce();
  }
  ADD_FAILURE() << "no ping sent";
  return 0;
}

wire::Envelope Pong(uint64_t nonce) {
  wire::Envelope m;
  m.mutable_pong()->set_nonce(nonce);
  return m;
}

TEST_F(LifeTest, ActivationTimesAPingAndItsPongGivesTheRoundTripTime) {
  ConnId conn = Incoming("c");
  const uint64_t nonce = PingNonce(last_, conn);
  EXPECT_EQ(Row("c").rtt_us, 0);
  clock_.Advance(3'000);
  pm_->OnMessage(conn, Pong(nonce + 2));  // not the timed ping: no sample
  Take();
  EXPECT_TRUE(Of(K::kPeerRtt).empty());
  pm_->OnMessage(conn, Pong(nonce));
  Take();
  ASSERT_EQ(Of(K::kPeerRtt).size(), 1u);
  EXPECT_EQ(Of(K::kPeerRtt)[0].node_id, "c");
  EXPECT_EQ(Of(K::kPeerRtt)[0].rtt_us, 3'000);
  EXPECT_EQ(Row("c").rtt_us, 3'000);
}

TEST_F(LifeTest, ABusyPeerIsStillTimedEveryProbeIntervalAndSamplesAreSmoothed) {
  Options o = FastOptions();
  o.rtt_probe_interval_ms = 1'000;
  Remake(o);
  ConnId conn = Incoming("c");
  uint64_t nonce = PingNonce(last_, conn);
  clock_.Advance(3'000);
  pm_->OnMessage(conn, Pong(nonce));
  Take();
  // Traffic every 50 ms keeps the liveness ping quiet, not the probe.
  wire::Envelope data;
  data.mutable_catalogue();
  bool probed = false;
  for (int i = 0; i < 25 && !probed; ++i) {
    AdvanceMs(50);
    Take();
    probed = SentOn(conn, wire::Envelope::kPing);
    if (!probed) pm_->OnMessage(conn, wire::Envelope(data));
  }
  ASSERT_TRUE(probed);
  nonce = PingNonce(last_, conn);
  clock_.Advance(11'000);
  pm_->OnMessage(conn, Pong(nonce));
  Take();
  ASSERT_EQ(Of(K::kPeerRtt).size(), 1u);
  EXPECT_EQ(Of(K::kPeerRtt)[0].rtt_us, 3'000 + (11'000 - 3'000) / 8);
}

TEST_F(LifeTest, SilentPeerGoesToLifesupportAfterTheDeadInterval) {
  ConnId conn = Incoming("c", "10.0.0.3:7411");
  AdvanceMs(100);
  AdvanceMs(199);
  Take();
  EXPECT_TRUE(Of(K::kClose).empty());
  AdvanceMs(1);
  Take();
  EXPECT_EQ(CloseReasonOf(conn), "dead: nothing received for 300 ms");
  pm_->OnClosed(conn, "local: dead");
  Take();
  ASSERT_EQ(Of(K::kPeerGone).size(), 1u);
  EXPECT_EQ(Of(K::kPeerGone)[0].reason, "dead: nothing received for 300 ms");
  PeerStatus row = Row("c");
  EXPECT_EQ(row.state, PeerState::kLifesupport);
  EXPECT_EQ(row.reason, "dead: nothing received for 300 ms");
  EXPECT_GE(row.next_in_us, 25'000);
  EXPECT_LE(row.next_in_us, 50'000);
}

TEST_F(LifeTest, BackoffDoublesWithJitterUpToTheCapAndPinnedSeedsNeverGiveUp) {
  pm_->AddSeed("10.0.0.3:7411");
  Take();
  const int64_t expected_cap_ms[] = {100, 200, 400, 400, 400, 400, 400};
  for (int64_t d : expected_cap_ms) {
    FailAttempt("10.0.0.3:7411");
    PeerStatus row = Row("10.0.0.3:7411");
    ASSERT_EQ(row.state, PeerState::kLifesupport) << row.reason;
    EXPECT_GE(row.next_in_us, d * 1000 / 2) << d;
    EXPECT_LE(row.next_in_us, d * 1000) << d;
    int64_t waited = WaitForConnect(d);
    EXPECT_GE(waited, d / 2) << d;
  }
  EXPECT_TRUE(Row("10.0.0.3:7411").pinned);
  EXPECT_EQ(Row("10.0.0.3:7411").attempts, 7u);
}

TEST_F(LifeTest, UnpinnedPeerIsDeletedAfterMaxAttempts) {
  ConnId conn = Incoming("c", "10.0.0.3:7411");
  pm_->OnClosed(conn, "peer closed");
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_GT(WaitForConnect(400), 0) << attempt;
    FailAttempt("10.0.0.3:7411");
    Take();
  }
  EXPECT_EQ(StateOf("c"), PeerState::kDeleted);
  ASSERT_EQ(Of(K::kErasePeer).size(), 1u);
  EXPECT_EQ(Of(K::kErasePeer)[0].node_id, "c");
  EXPECT_NE(pm_->transitions().back().reason.find("gave up after 3 attempts"),
            std::string::npos)
      << pm_->transitions().back().reason;
}

TEST_F(LifeTest, APeerWithoutAnAddressIsDeletedWhenItGoes) {
  ConnId conn = Incoming("c");  // advertised nothing
  pm_->OnClosed(conn, "peer closed");
  EXPECT_EQ(StateOf("c"), PeerState::kDeleted);
}

TEST_F(LifeTest, LifesupportPeerComesBackOnReconnect) {
  ConnId conn = Incoming("c", "10.0.0.3:7411");
  pm_->OnClosed(conn, "network: reset");
  ASSERT_GT(WaitForConnect(50), 0);
  ConnId again = ConnectTo("10.0.0.3:7411");
  pm_->OnOpened(again, "c", "10.0.0.3:7411");
  pm_->OnMessage(again, Hello("c", "10.0.0.3:7411"));
  EXPECT_EQ(StateOf("c"), PeerState::kActive);
  EXPECT_EQ(Row("c").attempts, 0u);
}

TEST_F(LifeTest, ActivationExchangesPeersBothWays) {
  ConnId a = Incoming("a", "10.0.0.1:7411");
  ConnId c = Incoming("c", "10.0.0.3:7411");
  Take();
  ConnId d = Incoming("d", "10.0.0.4:7411");
  // d learns of a and c; a and c learn of d.
  bool told_d = false, told_a = false, told_c = false;
  for (const Action& x : last_) {
    if (x.kind != K::kSend || !x.envelope.has_peer_exchange()) continue;
    const auto& peers = x.envelope.peer_exchange().peers();
    if (x.conn == d) told_d = peers.size() == 2 && peers[0].node_id() == "a";
    if (x.conn == a) told_a = peers.size() == 1 && peers[0].address() == "10.0.0.4:7411";
    if (x.conn == c) told_c = peers.size() == 1 && peers[0].node_id() == "d";
  }
  EXPECT_TRUE(told_d && told_a && told_c);
}

TEST_F(LifeTest, PeerExchangeDialsNewPeersAndSkipsSelfAndJunk) {
  ConnId a = Incoming("a", "10.0.0.1:7411");
  pm_->OnMessage(a, PeerExchange({{"c", "10.0.0.3:7411"},
                                  {"b", "10.0.0.2:7411"},
                                  {"-bad", "10.0.0.9:7411"},
                                  {"e", "no-port"},
                                  {"a", "10.0.0.11:7411"}}));
  Take();
  ASSERT_EQ(Of(K::kConnect).size(), 1u);
  EXPECT_EQ(Of(K::kConnect)[0].address, "10.0.0.3:7411");
  EXPECT_EQ(Row("a").addresses.size(), 2u);  // learned a second address for a
  EXPECT_EQ(pm_->connect_attempts(), 1u);
}

TEST_F(LifeTest, PeerExchangeIsBounded) {
  Options o = FastOptions();
  o.max_exchange_entries = 2;
  o.max_peers = 3;
  Remake(o);
  ConnId a = Incoming("a", "10.0.0.1:7411");
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 10; ++i) {
    many.emplace_back("n" + std::to_string(i), "10.1.0." + std::to_string(i) + ":7411");
  }
  pm_->OnMessage(a, PeerExchange(many));
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 2u);
  pm_->OnMessage(a, PeerExchange({{"x", "10.2.0.1:7411"}, {"y", "10.2.0.2:7411"}}));
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 0u);  // the table is full (max_peers 3)
}

// Issue 14, item 3: five exchanges of 64 made-up peers used to fill the 256-entry
// table, keep new legitimate nodes out ("peer table full"), have every junk
// address dialled, and be saved and redialled after a restart.
std::vector<std::pair<std::string, std::string>> Junk(int round, int n) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < n; ++i) {
    out.emplace_back("junk-" + std::to_string(round) + "-" + std::to_string(i),
                     "10.9." + std::to_string(round) + "." + std::to_string(i) + ":7411");
  }
  return out;
}

TEST_F(LifeTest, APeerExchangeFloodGetsAFewUnverifiedEntriesAndNoneIsSaved) {
  ConnId a = Incoming("a", "10.0.0.1:7411");
  Take();
  for (int round = 0; round < 5; ++round)
    pm_->OnMessage(a, PeerExchange(Junk(round, 64)));
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 8u);  // max_unverified_per_source
  size_t junk = 0;
  for (const auto& row : pm_->Snapshot()) junk += row.node_id.starts_with("junk-");
  EXPECT_EQ(junk, 8u);
  // They never answer: retried, given up, and never written to peer history.
  std::vector<Action> saved;
  for (const auto& x : Of(K::kConnect)) pm_->OnClosed(x.conn, "connection refused");
  for (int i = 0; i < 200; ++i) {
    AdvanceMs(500);
    for (const auto& x : Take()) {
      if (x.kind == K::kConnect) pm_->OnClosed(x.conn, "connection refused");
      if (x.kind == K::kSavePeer && x.record.node_id().starts_with("junk-"))
        saved.push_back(x);
    }
  }
  EXPECT_TRUE(saved.empty()) << saved.size() << " junk peers saved";
  EXPECT_EQ(Entries(), 1u);  // a (silent, in lifesupport); the junk given up
  // With them gone, a (back) may bring a few again.
  ConnId again = Incoming("a", "10.0.0.1:7411");
  Take();
  pm_->OnMessage(again, PeerExchange(Junk(9, 64)));
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 8u);
}

TEST_F(LifeTest, AVerifiedPeerEvictsUnverifiedEntriesFromAFullTable) {
  Options o = FastOptions();
  o.max_peers = 6;
  Remake(o);
  ConnId a = Incoming("a", "10.0.0.1:7411");
  pm_->OnMessage(a, PeerExchange(Junk(0, 20)));
  Take();
  ASSERT_EQ(Entries(), 6u);  // a and 5 of its junk: full
  ConnId c = Incoming("c", "10.0.0.3:7411");
  EXPECT_EQ(StateOf("c"), PeerState::kActive) << CloseReasonOf(c);
  EXPECT_EQ(Entries(), 6u);
  ConnId d = Outgoing("10.0.0.4:7411", "d");
  EXPECT_EQ(StateOf("d"), PeerState::kActive) << CloseReasonOf(d);
}

TEST_F(LifeTest, PeerExchangesAreRateLimitedPerPeer) {
  Options o = FastOptions();
  o.exchange_burst = 2;
  o.exchange_per_s = 1;
  o.max_unverified_per_source = 100;
  o.ping_interval_ms = 10'000;  // a stays active while the clock moves
  o.dead_interval_ms = 30'000;
  Remake(o);
  ConnId a = Incoming("a", "10.0.0.1:7411");
  Take();
  for (int round = 0; round < 4; ++round) pm_->OnMessage(a, PeerExchange(Junk(round, 1)));
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 2u);  // the burst; the rest ignored
  AdvanceMs(1000);
  Take();
  pm_->OnMessage(a, PeerExchange(Junk(7, 1)));
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 1u);  // a token came back
}

TEST_F(LifeTest, PeriodicExchangeGoesToEveryActivePeer) {
  Options o = FastOptions();
  o.exchange_interval_ms = 50;
  Remake(o);
  ConnId a = Incoming("a", "10.0.0.1:7411");
  ConnId c = Incoming("c", "10.0.0.3:7411");
  AdvanceMs(50);
  Take();
  EXPECT_TRUE(SentOn(a, wire::Envelope::kPeerExchange));
  EXPECT_TRUE(SentOn(c, wire::Envelope::kPeerExchange));
}

TEST_F(LifeTest, PeerHistoryIsRestoredAndDialled) {
  wire::PeerRecord r;
  r.set_node_id("c");
  r.add_addresses("10.0.0.3:7411");
  r.set_pinned(true);
  r.set_last_seen_us(5);
  wire::PeerRecord me;
  me.set_node_id("b");
  me.add_addresses("10.0.0.2:7411");
  pm_->Restore({r, me});
  Take();
  ASSERT_EQ(Of(K::kConnect).size(), 1u);
  EXPECT_EQ(ConnectTo("10.0.0.3:7411"), Of(K::kConnect)[0].conn);
  EXPECT_TRUE(Row("c").pinned);
  EXPECT_EQ(StateOf("c"), PeerState::kOutgoing);
  pm_->AddSeed("10.0.0.3:7411");  // the same peer as a seed: no second dial
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty());
}

TEST_F(LifeTest, DnsNameIsResolvedRetriedAfterFailureAndRefreshed) {
  pm_->AddDnsName("mesh.test");
  Take();
  ASSERT_EQ(Of(K::kResolve).size(), 1u);
  pm_->OnResolved("mesh.test", {}, "Domain name not found");
  AdvanceMs(499);
  Take();
  EXPECT_TRUE(Of(K::kResolve).empty());
  AdvanceMs(1);
  Take();
  ASSERT_EQ(Of(K::kResolve).size(), 1u);
  pm_->OnResolved("mesh.test", {"10.0.0.3:7411", "10.0.0.4:7411"}, "");
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 2u);
  AdvanceMs(5000);
  Take();
  EXPECT_EQ(Of(K::kResolve).size(), 1u);
  pm_->OnResolved("mesh.test", {"10.0.0.3:7411"}, "");
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty());  // known already
}

TEST_F(LifeTest, DeadlineIsTheEarliestThingDue) {
  EXPECT_FALSE(pm_->NextDeadline().has_value());
  Incoming("c", "10.0.0.3:7411");
  ASSERT_TRUE(pm_->NextDeadline().has_value());
  EXPECT_EQ(*pm_->NextDeadline(), clock_.MonotonicMicros() + 100'000);
}

TEST_F(LifeTest, EveryTransitionHasAReasonAndATime) {
  ConnId conn = Incoming("c", "10.0.0.3:7411");
  pm_->OnClosed(conn, "network: reset");
  ASSERT_GE(pm_->transitions().size(), 3u);
  for (const Transition& t : pm_->transitions()) {
    EXPECT_FALSE(t.reason.empty());
    EXPECT_EQ(t.time_us, clock_.NowMicros());
  }
  EXPECT_EQ(pm_->transitions().back().to, PeerState::kLifesupport);
  EXPECT_EQ(pm_->transitions().back().reason, "network: reset");
}

// The bounded mesh (issue 15): at the target, what peer exchange brings waits as
// a spare (no timer, its reason in status) and a spare replaces a peer that goes.
TEST_F(LifeTest, AtTheTargetNewPeersAreSparesAndReplaceThoseThatGo) {
  Options o = FastOptions();
  o.target_peers = 2;
  Remake(o);
  ConnId a = Incoming("a", "10.0.0.1:7411");
  pm_->OnMessage(a, PeerExchange({{"c", "10.0.0.3:7411"},
                                  {"d", "10.0.0.4:7411"},
                                  {"e", "10.0.0.5:7411"},
                                  {"f", "10.0.0.6:7411"}}));
  Take();
  ASSERT_EQ(Of(K::kConnect).size(), 1u) << "one slot left of 2";
  size_t spares = 0;
  for (const char* id : {"c", "d", "e", "f"}) {
    if (Row(id).state == PeerState::kOutgoing) continue;
    EXPECT_EQ(Row(id).state, PeerState::kLifesupport) << id;
    EXPECT_EQ(Row(id).reason.rfind("spare: 2 peers connected or being dialled", 0), 0u)
        << Row(id).reason;
    ++spares;
  }
  EXPECT_EQ(spares, 3u);
  // Spares keep no timer: nothing is due but the connections' heartbeats.
  AdvanceMs(1000);
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty()) << "a spare was dialled with no slot free";
  // a goes: a spare is dialled at once in its place.
  pm_->OnClosed(a, "network: reset");
  Take();
  ASSERT_EQ(Of(K::kConnect).size(), 1u);
  EXPECT_EQ(spares - 1, [&] {
    size_t n = 0;
    for (const char* id : {"c", "d", "e", "f"})
      n += Row(id).reason.rfind("spare", 0) == 0;
    return n;
  }());
}

TEST_F(LifeTest, SeedsAreDialledWhateverTheTarget) {
  Options o = FastOptions();
  o.target_peers = 1;
  Remake(o);
  for (const char* seed : {"10.0.0.1:7411", "10.0.0.3:7411", "10.0.0.4:7411"}) {
    pm_->AddSeed(seed);
  }
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 3u);
}

// Past max_active, a node's hello is answered with where to go instead and a
// goodbye marked full; the node that hears it comes back with backoff.
TEST_F(LifeTest, PastMaxActiveAHelloIsSentElsewhereAndToldItIsFull) {
  Options o = FastOptions();
  o.max_active = 2;
  Remake(o);
  Incoming("a", "10.0.0.1:7411");
  Incoming("c", "10.0.0.3:7411");
  ConnId d = pm_->OnIncomingOpened("d", "10.9.9.9:40001");
  pm_->OnMessage(d, Hello("d", "10.0.0.4:7411"));
  Take();
  EXPECT_TRUE(SentOn(d, wire::Envelope::kPeerExchange)) << "told where to go instead";
  EXPECT_NE(CloseReasonOf(d).find("peer limit reached: 2 peers active"),
            std::string::npos)
      << CloseReasonOf(d);
  bool full = false;
  for (const Action& x : Of(K::kSend)) {
    if (x.conn == d && x.envelope.has_goodbye()) full = x.envelope.goodbye().full();
  }
  EXPECT_TRUE(full);
  EXPECT_EQ(StateOf("a"), PeerState::kActive);
  EXPECT_EQ(StateOf("c"), PeerState::kActive);
}

TEST_F(LifeTest, AFullPeerIsRetriedWithBackoffNotAtOnce) {
  ConnId conn = Outgoing("10.0.0.1:7411", "a");
  ASSERT_EQ(StateOf("a"), PeerState::kActive);
  wire::Envelope bye;
  bye.mutable_goodbye()->set_reason("peer limit reached");
  bye.mutable_goodbye()->set_full(true);
  pm_->OnMessage(conn, std::move(bye));
  pm_->OnClosed(conn, "closed");
  Take();
  EXPECT_EQ(StateOf("a"), PeerState::kLifesupport);
  EXPECT_EQ(Row("a").attempts, 1u) << "counted like a failed dial: its backoff grows";
  AdvanceMs(FastOptions().backoff_max_ms);
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 1u) << "alone, it is dialled again with backoff";
}

// With other peers, a full peer (a seed too) waits as a spare: no timer redials
// it, a free slot does.
TEST_F(LifeTest, AFullPeerWaitsAsASpareWhileThereAreOtherPeers) {
  Options o = FastOptions();
  o.target_peers = 1;
  Remake(o);
  pm_->AddSeed("10.0.0.1:7411");
  ConnId seed = Outgoing("10.0.0.1:7411", "a");
  ConnId c = Incoming("c", "10.0.0.3:7411");
  Take();
  wire::Envelope bye;
  bye.mutable_goodbye()->set_reason("peer limit reached");
  bye.mutable_goodbye()->set_full(true);
  pm_->OnMessage(seed, std::move(bye));
  pm_->OnClosed(seed, "closed");
  Take();
  EXPECT_EQ(Row("a").reason.rfind("spare:", 0), 0u) << Row("a").reason;
  for (int i = 0; i < 10; ++i) {
    AdvanceMs(FastOptions().backoff_max_ms);
    Take();
    ASSERT_TRUE(Of(K::kConnect).empty()) << "the full seed was redialled on a timer";
  }
  pm_->OnClosed(c, "network: reset");  // a slot frees: the spare is dialled
  Take();
  EXPECT_EQ(Of(K::kConnect).size(), 1u);
}

}  // namespace
}  // namespace cairn::discovery::testing
