// The discovery core: hello in both directions, identity and version checks,
// protocol order, self and duplicate connections, purgatory.
#include <gtest/gtest.h>

#include "discovery/core_fixture.h"

namespace cairn::discovery::testing {
namespace {

using K = Action::Kind;

class HelloTest : public CoreTest {};

TEST_F(HelloTest, SeedIsDialledAndHelloMakesItActiveAndPinned) {
  pm_->AddSeed("10.0.0.3:7411");
  Take();
  ConnId conn = ConnectTo("10.0.0.3:7411");
  EXPECT_EQ(StateOf("10.0.0.3:7411"), PeerState::kOutgoing);
  pm_->OnOpened(conn, "c", "10.0.0.3:7411");
  Take();
  ASSERT_TRUE(SentOn(conn, wire::Envelope::kHello));
  EXPECT_EQ(last_[0].envelope.hello().node_id(), "b");
  EXPECT_EQ(last_[0].envelope.hello().advertise(), "10.0.0.2:7411");
  pm_->OnMessage(conn, Hello("c", "10.0.0.3:7411"));
  Take();
  ASSERT_EQ(Of(K::kPeerActive).size(), 1u);
  EXPECT_EQ(Of(K::kPeerActive)[0].node_id, "c");
  EXPECT_EQ(pm_->ActiveConnection("c"), conn);
  PeerStatus row = Row("c");
  EXPECT_EQ(row.state, PeerState::kActive);
  EXPECT_TRUE(row.pinned);
  EXPECT_NE(row.reason.find("hello exchanged"), std::string::npos) << row.reason;
  ASSERT_EQ(Of(K::kSavePeer).size(), 1u);
  EXPECT_TRUE(Of(K::kSavePeer)[0].record.pinned());
}

TEST_F(HelloTest, IncomingPeerIsIncomingUntilItsHello) {
  ConnId conn = pm_->OnIncomingOpened("c", "10.0.0.3:50000");
  Take();
  EXPECT_TRUE(SentOn(conn, wire::Envelope::kHello));
  EXPECT_EQ(StateOf("c"), PeerState::kIncoming);
  pm_->OnMessage(conn, Hello("c", "10.0.0.3:7411"));
  EXPECT_EQ(StateOf("c"), PeerState::kActive);
  EXPECT_EQ(Row("c").addresses, std::vector<std::string>{"10.0.0.3:7411"});
}

TEST_F(HelloTest, HelloNamingAnotherNodeThanTheCertificateIsClosed) {
  ConnId conn = pm_->OnIncomingOpened("c", "10.0.0.3:50000");
  pm_->OnMessage(conn, Hello("mallory"));
  Take();
  EXPECT_NE(CloseReasonOf(conn).find("certificate says 'c'"), std::string::npos)
      << CloseReasonOf(conn);
  EXPECT_TRUE(SentOn(conn, wire::Envelope::kGoodbye));
  EXPECT_TRUE(Of(K::kPeerActive).empty());
}

TEST_F(HelloTest, IncompatibleProtocolVersionIsRefusedWithAReason) {
  ConnId conn = pm_->OnIncomingOpened("c", "10.0.0.3:50000");
  pm_->OnMessage(conn, Hello("c", "", kProtocolVersion + 1));
  Take();
  EXPECT_NE(CloseReasonOf(conn).find("incompatible protocol version " +
                                     std::to_string(kProtocolVersion + 1)),
            std::string::npos)
      << CloseReasonOf(conn);
  pm_->OnClosed(conn, "local");
  EXPECT_EQ(StateOf("c"), PeerState::kDeleted);  // nothing to dial back
}

TEST_F(HelloTest, MessagesBeforeHelloAreProtocolErrors) {
  ConnId c1 = pm_->OnIncomingOpened("c", "10.0.0.3:50000");
  wire::Envelope events;
  events.mutable_events()->set_device("d");
  pm_->OnMessage(c1, std::move(events));
  ConnId c2 = pm_->OnIncomingOpened("d", "10.0.0.4:50000");
  pm_->OnMessage(c2, wire::Envelope());
  ConnId c3 = pm_->OnIncomingOpened("e", "10.0.0.5:50000");
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(1);
  pm_->OnMessage(c3, std::move(ping));
  Take();
  EXPECT_EQ(CloseReasonOf(c1), "protocol error: events before hello");
  EXPECT_EQ(CloseReasonOf(c2),
            "protocol error: an empty or unknown message before hello");
  EXPECT_EQ(CloseReasonOf(c3), "protocol error: ping before hello");
}

TEST_F(HelloTest, SecondHelloAndBadAdvertiseAreProtocolErrors) {
  ConnId conn = Incoming("c");
  pm_->OnMessage(conn, Hello("c"));
  Take();
  EXPECT_EQ(CloseReasonOf(conn), "protocol error: second hello");
  ConnId other = pm_->OnIncomingOpened("d", "10.0.0.4:50000");
  pm_->OnMessage(other, Hello("d", "not-an-address"));
  Take();
  EXPECT_NE(CloseReasonOf(other).find("not HOST:PORT"), std::string::npos);
}

TEST_F(HelloTest, UnknownMessageAfterHelloIsIgnoredAndOthersAreDelivered) {
  ConnId conn = Incoming("c");
  pm_->OnMessage(conn, wire::Envelope());
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device("dev");
  pm_->OnMessage(conn, std::move(sub));
  Take();
  EXPECT_TRUE(Of(K::kClose).empty());
  ASSERT_EQ(Of(K::kDeliver).size(), 1u);
  EXPECT_EQ(Of(K::kDeliver)[0].node_id, "c");
  EXPECT_EQ(Of(K::kDeliver)[0].envelope.subscribe().device(), "dev");
}

TEST_F(HelloTest, NoHelloWithinTheHelloTimeoutIsClosed) {
  ConnId conn = pm_->OnIncomingOpened("c", "10.0.0.3:50000");
  AdvanceMs(299);
  Take();
  EXPECT_TRUE(Of(K::kClose).empty());
  AdvanceMs(1);
  Take();
  EXPECT_EQ(CloseReasonOf(conn), "no hello within 300 ms");
}

// One certificate may hold only a few accepted connections before their hello:
// each holds a partial frame, and a flood of them would hold many.
TEST_F(HelloTest, ConnectionsOfOneCertificateBeforeHelloAreCapped) {
  Options o = FastOptions();
  o.max_pending_per_cert = 2;
  Remake(o);
  ConnId a = pm_->OnIncomingOpened("m", "10.0.0.9:1");
  ConnId b = pm_->OnIncomingOpened("m", "10.0.0.9:2");
  Take();
  EXPECT_TRUE(Of(K::kClose).empty());
  ConnId c = pm_->OnIncomingOpened("m", "10.0.0.9:3");
  Take();
  EXPECT_EQ(CloseReasonOf(c),
            "2 connections of 'm' have not completed their hello (limit 2)");
  bool logged = false;
  for (const Action& l : Of(K::kLog)) logged |= l.node_id == "m";
  EXPECT_TRUE(logged);
  // Another certificate is not held back by it.
  pm_->OnIncomingOpened("n", "10.0.0.10:1");
  Take();
  EXPECT_TRUE(Of(K::kClose).empty());
  // Once one of m's completes its hello (or goes), m may open another.
  pm_->OnMessage(a, Hello("m"));
  pm_->OnClosed(b, "gone");
  pm_->OnClosed(c, "refused");
  Take();
  ConnId d = pm_->OnIncomingOpened("m", "10.0.0.9:4");
  Take();
  EXPECT_EQ(CloseReasonOf(d), "");
}

TEST_F(HelloTest, SubscribersOfOneCertificateAreCapped) {
  Options o = FastOptions();
  o.max_subscribers_per_cert = 2;
  Remake(o);
  for (int i = 0; i < 3; ++i) {
    ConnId conn = pm_->OnIncomingOpened("reader", "10.0.0.7:" + std::to_string(i + 1));
    wire::Envelope m = Hello("reader");
    m.mutable_hello()->set_subscriber(true);
    pm_->OnMessage(conn, std::move(m));
    Take();
    if (i < 2) {
      EXPECT_EQ(Of(K::kSubscriberActive).size(), 1u) << i;
    } else {
      EXPECT_TRUE(Of(K::kSubscriberActive).empty());
      EXPECT_EQ(CloseReasonOf(conn),
                "too many subscribers with certificate 'reader' (2)");
    }
  }
}

// A reader certificate (TLS client only) may subscribe and nothing else: a node
// hello with one is refused, a subscriber hello carries its scope up.
TEST_F(HelloTest, AReaderCertificateMayOnlySubscribe) {
  ConnId node =
      pm_->OnIncomingOpened("dash", "10.0.0.8:1", /*reader=*/true, {"sensor-*"});
  pm_->OnMessage(node, Hello("dash"));
  Take();
  EXPECT_EQ(
      CloseReasonOf(node),
      "certificate 'dash' is a reader's (TLS client only): it may subscribe, nothing "
      "else");
  EXPECT_TRUE(Of(K::kPeerActive).empty());
  EXPECT_EQ(StateOf("dash"), PeerState::kDeleted) << "a reader never takes an entry";
  ConnId sub = pm_->OnIncomingOpened("dash", "10.0.0.8:2", /*reader=*/true, {"sensor-*"});
  wire::Envelope m = Hello("dash");
  m.mutable_hello()->set_subscriber(true);
  pm_->OnMessage(sub, std::move(m));
  Take();
  ASSERT_EQ(Of(K::kSubscriberActive).size(), 1u);
  EXPECT_EQ(Of(K::kSubscriberActive)[0].read_scope, std::vector<std::string>{"sensor-*"});
  EXPECT_EQ(CloseReasonOf(sub), "");
}

TEST_F(HelloTest, GoodbyeClosesWithThePeersReason) {
  ConnId conn = Incoming("c", "10.0.0.3:7411");
  wire::Envelope bye;
  bye.mutable_goodbye()->set_reason("shutting down");
  pm_->OnMessage(conn, std::move(bye));
  Take();
  EXPECT_EQ(CloseReasonOf(conn), "peer said goodbye: shutting down");
  pm_->OnClosed(conn, "peer closed");
  Take();
  ASSERT_EQ(Of(K::kPeerGone).size(), 1u);
  EXPECT_EQ(Of(K::kPeerGone)[0].reason, "peer said goodbye: shutting down");
  EXPECT_EQ(StateOf("c"), PeerState::kLifesupport);
}

TEST_F(HelloTest, SelfConnectionLandsInPurgatoryUntilItEnds) {
  ConnId conn = Outgoing("10.0.0.2:7411", "b");
  EXPECT_EQ(CloseReasonOf(conn), "connected to ourselves");
  PeerStatus row = Row("10.0.0.2:7411");
  EXPECT_EQ(row.state, PeerState::kPurgatory);
  EXPECT_EQ(row.reason, "connected to ourselves");
  pm_->OnClosed(conn, "local");
  pm_->AddSeed("10.0.0.2:7411");  // known to be us: never dialled again
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty());
  AdvanceMs(1000);
  EXPECT_EQ(StateOf("10.0.0.2:7411"), PeerState::kDeleted);
}

TEST_F(HelloTest, AnIncomingSelfConnectionIsClosedToo) {
  ConnId conn = pm_->OnIncomingOpened("b", "127.0.0.1:5000");
  pm_->OnMessage(conn, Hello("b"));
  Take();
  EXPECT_EQ(CloseReasonOf(conn), "connected to ourselves");
}

TEST_F(HelloTest, AnAddressAnsweringAsAnotherNodeIsDroppedFromThePeer) {
  ConnId c = Incoming("c", "10.0.0.3:7411");
  pm_->OnClosed(c, "network: reset");
  AdvanceMs(50);  // backoff: the first reconnect attempt is due within 50 ms
  Take();
  ConnId conn = ConnectTo("10.0.0.3:7411");
  pm_->OnOpened(conn, "x", "10.0.0.3:7411");
  pm_->OnMessage(conn, Hello("x"));
  Take();
  EXPECT_EQ(CloseReasonOf(conn), "expected node 'c' at 10.0.0.3:7411, found 'x'");
  pm_->OnClosed(conn, "local");
  EXPECT_EQ(StateOf("c"), PeerState::kDeleted);
}

// ---------------------------------------------------------------- duplicates

// Self is "b". Peer "a" is smaller, so the connection "a" opened survives; peer "c"
// is larger, so the connection we opened survives. Each in both arrival orders.
struct DupCase {
  std::string peer;
  bool outgoing_first;
  bool outgoing_survives;
};

class DuplicateTest : public CoreTest, public ::testing::WithParamInterface<DupCase> {};

TEST_P(DuplicateTest, ExactlyOneConnectionSurvivesChosenBySmallerId) {
  const DupCase& p = GetParam();
  const std::string addr = "10.0.0.7:7411";
  pm_->AddSeed(addr);
  Take();
  ConnId out = ConnectTo(addr);
  pm_->OnOpened(out, p.peer, addr);
  ConnId in = pm_->OnIncomingOpened(p.peer, "10.0.0.7:50000");
  if (p.outgoing_first) pm_->OnMessage(out, Hello(p.peer, addr));
  pm_->OnMessage(in, Hello(p.peer, addr));
  if (!p.outgoing_first) pm_->OnMessage(out, Hello(p.peer, addr));
  Take();
  ConnId winner = p.outgoing_survives ? out : in;
  ConnId loser = p.outgoing_survives ? in : out;
  EXPECT_EQ(pm_->ActiveConnection(p.peer), winner);
  EXPECT_NE(CloseReasonOf(loser).find("duplicate connection: keeping the one opened by " +
                                      std::min(p.peer, self_)),
            std::string::npos)
      << CloseReasonOf(loser);
  EXPECT_TRUE(CloseReasonOf(winner).empty());
  pm_->OnClosed(loser, "local");
  EXPECT_EQ(StateOf(p.peer), PeerState::kActive);
  if (!p.outgoing_survives) {
    EXPECT_EQ(Row(addr).state, PeerState::kPurgatory);  // the address we lost on
  }
}

INSTANTIATE_TEST_SUITE_P(BothOrders, DuplicateTest,
                         ::testing::Values(DupCase{"a", true, false},
                                           DupCase{"a", false, false},
                                           DupCase{"c", true, true},
                                           DupCase{"c", false, true}));

TEST_F(HelloTest, ASecondConnectionFromTheSameDialerLosesToALiveOne) {
  ConnId old = Incoming("c", "10.0.0.3:7411");
  AdvanceMs(50);
  ConnId neu = Incoming("c", "10.0.0.3:7411");
  EXPECT_EQ(CloseReasonOf(neu), "duplicate connection: already active");
  EXPECT_EQ(pm_->ActiveConnection("c"), old);
}

TEST_F(HelloTest, AHalfDeadOldConnectionLosesToANewOne) {
  ConnId old = Incoming("c", "10.0.0.3:7411");
  AdvanceMs(150);  // silent past the ping interval (a ping went out, no answer)
  ConnId neu = Incoming("c", "10.0.0.3:7411");
  EXPECT_NE(CloseReasonOf(old).find("replaced by a new connection"), std::string::npos);
  EXPECT_EQ(pm_->ActiveConnection("c"), neu);
  ASSERT_EQ(Of(K::kPeerGone).size(), 1u);
  ASSERT_EQ(Of(K::kPeerActive).size(), 1u);
  pm_->OnClosed(old, "local");
  EXPECT_EQ(StateOf("c"), PeerState::kActive);
}

}  // namespace
}  // namespace cairn::discovery::testing
