// Subscribers (`cairn tail --peer`): a hello marked `subscriber` makes an accepted
// connection active for the layer above, but never a peer: not in the table, not
// saved to peer history, not exchanged, not dialled back.
#include <gtest/gtest.h>

#include "discovery/core_fixture.h"

namespace cairn::discovery::testing {
namespace {

using K = Action::Kind;

class SubscriberTest : public CoreTest {
 protected:
  static wire::Envelope SubscriberHello(const std::string& id) {
    wire::Envelope m = Hello(id);
    m.mutable_hello()->set_subscriber(true);
    return m;
  }

  // An accepted connection from `id` whose hello says it is a subscriber.
  ConnId Subscriber(const std::string& id) {
    ConnId conn = pm_->OnIncomingOpened(id, "10.9.9.8:50000");
    pm_->OnMessage(conn, SubscriberHello(id));
    Take();
    return conn;
  }

  bool SavedOrErased() const {
    return !Of(K::kSavePeer).empty() || !Of(K::kErasePeer).empty();
  }
};

TEST_F(SubscriberTest, IsActiveUnderItsOwnNameAndNotInThePeerTable) {
  ConnId conn = Subscriber("cli");
  ASSERT_EQ(Of(K::kSubscriberActive).size(), 1u);
  const std::string name = Of(K::kSubscriberActive)[0].node_id;
  EXPECT_EQ(name, SubscriberName("cli", conn));
  EXPECT_TRUE(Of(K::kPeerActive).empty());
  EXPECT_FALSE(SavedOrErased());
  EXPECT_EQ(pm_->ActiveConnection(name), conn);
  EXPECT_EQ(pm_->ActiveName(conn), name);
  EXPECT_EQ(StateOf("cli"), PeerState::kDeleted);  // no row
  EXPECT_TRUE(pm_->ActivePeers().empty());
}

TEST_F(SubscriberTest, ItsMessagesAreDeliveredAndItsEndIsReportedOnce) {
  ConnId conn = Subscriber("cli");
  const std::string name = SubscriberName("cli", conn);
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device("d");
  pm_->OnMessage(conn, std::move(sub));
  Take();
  ASSERT_EQ(Of(K::kDeliver).size(), 1u);
  EXPECT_EQ(Of(K::kDeliver)[0].node_id, name);
  pm_->OnClosed(conn, "peer closed");
  Take();
  ASSERT_EQ(Of(K::kPeerGone).size(), 1u);
  EXPECT_EQ(Of(K::kPeerGone)[0].node_id, name);
  EXPECT_FALSE(SavedOrErased());
  EXPECT_TRUE(Of(K::kConnect).empty());
  AdvanceMs(10'000);
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty()) << "a subscriber is never dialled back";
  EXPECT_FALSE(pm_->ActiveConnection(name).has_value());
}

TEST_F(SubscriberTest, IsNeverToldToOtherPeers) {
  ConnId a = Incoming("a", "10.0.0.1:7411");
  Take();
  ConnId conn = Subscriber("cli");
  EXPECT_FALSE(SentOn(a, wire::Envelope::kPeerExchange));
  ConnId c = Incoming("c", "10.0.0.3:7411");
  for (const Action& act : last_) {
    if (act.kind != K::kSend || !act.envelope.has_peer_exchange()) continue;
    for (const auto& p : act.envelope.peer_exchange().peers()) {
      EXPECT_NE(p.node_id(), "cli");
    }
  }
  EXPECT_FALSE(SentOn(conn, wire::Envelope::kPeerExchange));
  (void)c;
}

TEST_F(SubscriberTest, UsingTheIdOfAnActivePeerLeavesThatPeerAlone) {
  ConnId peer = Incoming("c", "10.0.0.3:7411");
  ConnId conn = Subscriber("c");
  EXPECT_EQ(pm_->ActiveConnection("c"), peer);
  EXPECT_EQ(StateOf("c"), PeerState::kActive);
  EXPECT_TRUE(CloseReasonOf(peer).empty());
  EXPECT_EQ(pm_->ActiveConnection(SubscriberName("c", conn)), conn);
}

TEST_F(SubscriberTest, UsingTheIdOfAPeerInLifesupportGivesItsEntryBack) {
  ConnId peer = Incoming("c", "10.0.0.3:7411");
  pm_->OnClosed(peer, "network: reset");
  ASSERT_EQ(StateOf("c"), PeerState::kLifesupport);
  ConnId conn = pm_->OnIncomingOpened("c", "10.9.9.8:50000");
  EXPECT_EQ(StateOf("c"), PeerState::kIncoming);
  pm_->OnMessage(conn, SubscriberHello("c"));
  EXPECT_EQ(StateOf("c"), PeerState::kLifesupport);
  EXPECT_EQ(Row("c").addresses, std::vector<std::string>{"10.0.0.3:7411"});
  pm_->OnClosed(conn, "peer closed");
  EXPECT_EQ(StateOf("c"), PeerState::kLifesupport);
}

TEST_F(SubscriberTest, OurOwnIdMayTailUs) {
  ConnId conn = Subscriber(self_);
  EXPECT_EQ(Of(K::kSubscriberActive).size(), 1u);
  EXPECT_TRUE(CloseReasonOf(conn).empty());
}

TEST_F(SubscriberTest, ANodeWeDialledThatAnswersAsASubscriberIsClosed) {
  pm_->AddSeed("10.0.0.3:7411");
  Take();
  ConnId conn = ConnectTo("10.0.0.3:7411");
  pm_->OnOpened(conn, "c", "10.0.0.3:7411");
  pm_->OnMessage(conn, SubscriberHello("c"));
  Take();
  EXPECT_NE(CloseReasonOf(conn).find("answered as a subscriber"), std::string::npos)
      << CloseReasonOf(conn);
  EXPECT_TRUE(Of(K::kSubscriberActive).empty());
}

TEST_F(SubscriberTest, SubscribersAreBounded) {
  Options o = FastOptions();
  o.max_subscribers = 2;
  Remake(o);
  Subscriber("s1");
  Subscriber("s2");
  ConnId third = Subscriber("s3");
  EXPECT_NE(CloseReasonOf(third).find("too many subscribers"), std::string::npos);
  EXPECT_EQ(pm_->subscriber_count(), 2u);
}

TEST_F(SubscriberTest, SubscriberGetsPongsAndIsDeadAfterSilence) {
  ConnId conn = Subscriber("cli");
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(7);
  pm_->OnMessage(conn, std::move(ping));
  Take();
  EXPECT_TRUE(SentOn(conn, wire::Envelope::kPong));
  AdvanceMs(400);
  Take();
  EXPECT_NE(CloseReasonOf(conn).find("dead"), std::string::npos);
}

}  // namespace
}  // namespace cairn::discovery::testing
