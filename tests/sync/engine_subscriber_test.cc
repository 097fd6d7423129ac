// The sync engine and subscribers (`cairn tail --peer`): served and told the
// catalogue like any peer, but never followed, planned or counted as a peer.
#include <gtest/gtest.h>

#include "sync/engine.h"

namespace cairn::sync {
namespace {

journal::StreamInfo Mine(const std::string& device, uint64_t last) {
  journal::StreamInfo i;
  i.device = device;
  i.first = 1;
  i.last = last;
  i.source = true;
  return i;
}

wire::Envelope SourceCatalogue(const std::string& device, uint64_t last) {
  wire::Envelope e;
  e.mutable_catalogue()->set_full(true);
  auto* c = e.mutable_catalogue()->add_entries();
  c->set_device(device);
  c->set_last(last);
  c->set_source(true);
  return e;
}

size_t Count(const std::vector<Action>& actions, Action::Kind kind,
             wire::Envelope::MsgCase msg = wire::Envelope::MSG_NOT_SET) {
  size_t n = 0;
  for (const auto& a : actions) {
    n += a.kind == kind &&
         (msg == wire::Envelope::MSG_NOT_SET || a.message.msg_case() == msg);
  }
  return n;
}

TEST(EngineSubscriberTest, GetsTheCatalogueAndItsChanges) {
  Engine e;
  e.SetLocal({Mine("d", 3)});
  e.OnSubscriberActive("cli#1");
  auto first = e.TakeActions();
  ASSERT_EQ(Count(first, Action::Kind::kSend, wire::Envelope::kCatalogue), 1u);
  EXPECT_TRUE(first[0].message.catalogue().full());
  e.OnLocalChange(Mine("new", 1));
  e.Flush();
  auto delta = e.TakeActions();
  ASSERT_EQ(Count(delta, Action::Kind::kSend, wire::Envelope::kCatalogue), 1u);
  EXPECT_EQ(delta[0].peer, "cli#1");
  EXPECT_EQ(delta[0].message.catalogue().entries(0).device(), "new");
}

// A reader certificate names the devices it may read: the catalogue it is told,
// full and in deltas, holds only those, and a Subscribe to another closes it.
TEST(EngineSubscriberTest, AReaderSeesAndReadsOnlyItsScope) {
  Engine e;
  e.SetLocal({Mine("sensor-1", 3), Mine("sensor-2", 3), Mine("billing", 3)});
  e.OnSubscriberActive("dash#1", {"sensor-*"});
  auto first = e.TakeActions();
  ASSERT_EQ(Count(first, Action::Kind::kSend, wire::Envelope::kCatalogue), 1u);
  std::vector<std::string> shown;
  for (const auto& entry : first[0].message.catalogue().entries()) {
    shown.push_back(entry.device());
  }
  EXPECT_EQ(shown, (std::vector<std::string>{"sensor-1", "sensor-2"}));
  e.OnLocalChange(Mine("billing", 4));
  e.OnLocalChange(Mine("sensor-3", 1));
  e.Flush();
  auto delta = e.TakeActions();
  ASSERT_EQ(Count(delta, Action::Kind::kSend, wire::Envelope::kCatalogue), 1u);
  ASSERT_EQ(delta[0].message.catalogue().entries_size(), 1);
  EXPECT_EQ(delta[0].message.catalogue().entries(0).device(), "sensor-3");
  wire::Envelope ok;
  ok.mutable_subscribe()->set_device("sensor-1");
  ok.mutable_subscribe()->set_from(1);
  ok.mutable_subscribe()->set_credit(1 << 20);
  e.OnMessage("dash#1", ok);
  EXPECT_EQ(Count(e.TakeActions(), Action::Kind::kClose), 0u);
  wire::Envelope no = ok;
  no.mutable_subscribe()->set_device("billing");
  e.OnMessage("dash#1", no);
  auto refused = e.TakeActions();
  ASSERT_EQ(Count(refused, Action::Kind::kClose), 1u);
  for (const auto& a : refused) {
    if (a.kind == Action::Kind::kClose) {
      EXPECT_EQ(
          a.reason,
          "subscribed to 'billing', which its reader certificate does not let it read");
    }
  }
}

TEST(EngineSubscriberTest, IsServedLikeAPeer) {
  Engine e;
  e.SetLocal({Mine("d", 10)});
  e.OnSubscriberActive("cli#1");
  (void)e.TakeActions();
  wire::Envelope s;
  s.mutable_subscribe()->set_device("d");
  s.mutable_subscribe()->set_from(4);
  s.mutable_subscribe()->set_credit(1000);
  e.OnMessage("cli#1", s);
  auto reads = e.TakeActions();
  ASSERT_EQ(Count(reads, Action::Kind::kRead), 1u);
  EXPECT_EQ(reads[0].from, 4u);
}

TEST(EngineSubscriberTest, IsNeverPlannedAsASource) {
  Engine e;
  e.OnSubscriberActive("cli#1");
  (void)e.TakeActions();
  e.OnMessage("cli#1", SourceCatalogue("d", 100));
  EXPECT_EQ(Count(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe), 0u);
  EXPECT_EQ(e.Via("d"), "");
  EXPECT_EQ(e.PeerLast("d"), 0u);
  e.OnPeerActive("node");
  e.OnMessage("node", SourceCatalogue("d", 50));
  auto subs = e.TakeActions();
  ASSERT_EQ(Count(subs, Action::Kind::kSend, wire::Envelope::kSubscribe), 1u);
  EXPECT_EQ(e.Via("d"), "node");
}

TEST(EngineSubscriberTest, DoesNotCountAsAPeerThatReportedItsHeads) {
  Engine e;
  e.SetLocal({Mine("mine", 5)});
  e.Guard({"mine"}, 1);
  e.OnSubscriberActive("cli#1");
  e.OnMessage("cli#1", SourceCatalogue("other", 1));
  EXPECT_EQ(Count(e.TakeActions(), Action::Kind::kRelease), 0u);
  EXPECT_EQ(e.guarded().size(), 1u);
  e.OnPeerActive("node");
  e.OnMessage("node", SourceCatalogue("other", 1));
  EXPECT_EQ(Count(e.TakeActions(), Action::Kind::kRelease), 1u);
}

TEST(EngineSubscriberTest, TheGuardWaitsForEveryPeerOfItsQuorum) {
  Engine e;
  e.SetLocal({Mine("mine", 5)});
  e.Guard({"mine"}, 2);
  e.OnPeerActive("n1");
  e.OnMessage("n1", SourceCatalogue("other", 1));
  EXPECT_EQ(Count(e.TakeActions(), Action::Kind::kRelease), 0u);
  EXPECT_NE(e.GuardState("mine").find("heard 1 of the 2 needed"), std::string::npos)
      << e.GuardState("mine");
  e.OnPeerActive("n2");
  e.OnMessage("n2", SourceCatalogue("other", 1));
  EXPECT_EQ(Count(e.TakeActions(), Action::Kind::kRelease), 1u);
  EXPECT_EQ(e.GuardState("mine"), "");
}

TEST(EngineSubscriberTest, ItsEndDropsWhatItWasServed) {
  Engine e;
  e.SetLocal({Mine("d", 10)});
  e.OnSubscriberActive("cli#1");
  wire::Envelope s;
  s.mutable_subscribe()->set_device("d");
  s.mutable_subscribe()->set_from(1);
  s.mutable_subscribe()->set_credit(1000);
  e.OnMessage("cli#1", s);
  (void)e.TakeActions();
  e.OnPeerGone("cli#1");
  e.OnReadDone("cli#1", "d", "cert", journal::Delivery{}, 1);
  e.OnLocalChange(Mine("d", 11));
  e.Flush();
  EXPECT_TRUE(e.TakeActions().empty());
}

}  // namespace
}  // namespace cairn::sync
