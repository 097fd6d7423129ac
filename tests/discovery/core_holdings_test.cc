// Holdings (what a node stores, as a bloom filter): the filter's error rate, and
// the core passing holdings on, dialling a node that may hold a wanted device
// within its bounds, and closing a peer whose holdings are over the limit.
#include <gtest/gtest.h>

#include "discovery/core_fixture.h"
#include "discovery/holdings.h"

namespace cairn::discovery::testing {
namespace {

using K = Action::Kind;

TEST(HoldingsTest, NoFalseNegativesAndAboutOnePercentFalsePositives) {
  std::vector<std::string> held;
  for (int i = 0; i < 10'000; ++i) held.push_back("dev-" + std::to_string(i));
  wire::Holdings h = MakeHoldings(held);
  EXPECT_LE(h.bloom().size(), 13'000u) << "about 9.6 bits per device";
  for (const auto& d : held) ASSERT_TRUE(MayHold(h, d)) << d;
  int wrong = 0;
  for (int i = 0; i < 100'000; ++i) wrong += MayHold(h, "other-" + std::to_string(i));
  EXPECT_LT(wrong, 2'000) << "false positives: " << wrong << " of 100,000";
  EXPECT_GT(wrong, 100) << "a filter that says no to everything is no filter";
  EXPECT_FALSE(MayHold(MakeHoldings({}), "dev-1"));
  EXPECT_FALSE(MayHold(wire::Holdings(), "dev-1"));
  // Past its size the filter stops growing; it still never says no to a member.
  std::vector<std::string> many;
  for (int i = 0; i < 200'000; ++i) many.push_back("m-" + std::to_string(i));
  wire::Holdings big = MakeHoldings(many);
  EXPECT_EQ(big.bloom().size(), kMaxHoldingsBytes);
  EXPECT_TRUE(MayHold(big, "m-199999"));
  EXPECT_TRUE(CheckHoldings(big).ok());
  big.mutable_bloom()->push_back('x');
  EXPECT_FALSE(CheckHoldings(big).ok());
  wire::Holdings full;  // says "maybe" to everything: refused
  full.set_bloom(std::string(1024, '\xff'));
  full.set_hashes(3);
  full.set_devices(10);
  EXPECT_FALSE(CheckHoldings(full).ok());
}

class HoldingsCoreTest : public CoreTest {
 protected:
  static wire::Envelope HoldingsMsg(const std::vector<std::string>& devices) {
    wire::Envelope m;
    *m.mutable_holdings() = MakeHoldings(devices);
    return m;
  }
  static wire::Envelope ExchangeWith(const std::string& id, const std::string& address,
                                     const std::vector<std::string>& holds) {
    wire::Envelope m = PeerExchange({{id, address}});
    *m.mutable_peer_exchange()->mutable_peers(0)->mutable_holdings() =
        MakeHoldings(holds);
    return m;
  }
};

TEST_F(HoldingsCoreTest, OursGoToEveryPeerAndTheirsArePassedOn) {
  ConnId a = Incoming("a", "10.0.0.1:7411");
  ConnId c = Incoming("c", "10.0.0.3:7411");
  Take();
  pm_->SetHoldings(MakeHoldings({"mine"}));
  Take();
  EXPECT_TRUE(SentOn(a, wire::Envelope::kHoldings));
  EXPECT_TRUE(SentOn(c, wire::Envelope::kHoldings));
  // a tells us what it holds: c hears of it with the next forward, with a's address.
  auto passed_on = [&](const std::string& device) {
    for (const auto& s : Of(K::kSend)) {
      if (s.conn != c || !s.envelope.has_peer_exchange()) continue;
      for (const auto& p : s.envelope.peer_exchange().peers()) {
        if (p.node_id() == "a" && MayHold(p.holdings(), device)) return true;
      }
    }
    return false;
  };
  pm_->OnMessage(a, HoldingsMsg({"door-1"}));
  AdvanceMs(1);
  Take();
  EXPECT_TRUE(passed_on("door-1")) << "a's holdings were not passed on to c";
  // New ones within holdings_forward_ms wait, and go together.
  pm_->OnMessage(a, HoldingsMsg({"door-1", "door-2"}));
  pm_->OnMessage(a, HoldingsMsg({"door-1", "door-2", "door-3"}));
  AdvanceMs(1);
  Take();
  EXPECT_FALSE(SentOn(c, wire::Envelope::kPeerExchange));
  AdvanceMs(FastOptions().holdings_forward_ms);
  Take();
  EXPECT_TRUE(passed_on("door-3"));
  size_t exchanges = 0;
  for (const auto& s : Of(K::kSend))
    exchanges += s.conn == c && s.envelope.has_peer_exchange();
  EXPECT_EQ(exchanges, 1u);
}

TEST_F(HoldingsCoreTest, AWantedDeviceDialsAPossibleHolderBeyondTheTargetWithinBounds) {
  Options o = FastOptions();
  o.target_peers = 1;
  o.max_holder_peers = 2;
  Remake(o);
  ConnId a = Incoming("a", "10.0.0.1:7411");
  Take();
  // a tells of four nodes: x1 and x2 hold door-2, x3 door-3, y1 door-4.
  pm_->OnMessage(a, ExchangeWith("x1", "10.0.1.1:7411", {"door-2"}));
  pm_->OnMessage(a, ExchangeWith("x2", "10.0.1.2:7411", {"door-2"}));
  pm_->OnMessage(a, ExchangeWith("x3", "10.0.1.3:7411", {"door-3"}));
  pm_->OnMessage(a, ExchangeWith("y1", "10.0.2.1:7411", {"door-4"}));
  Take();
  for (const auto& c : Of(K::kConnect)) ADD_FAILURE() << "dialled " << c.address;
  pm_->SetWanted({"door-9"});
  Take();
  for (const auto& c : Of(K::kConnect)) ADD_FAILURE() << "door-9 dialled " << c.address;
  pm_->SetWanted({"door-2"});
  Take();
  ASSERT_EQ(Of(K::kConnect).size(), 1u);
  const std::string first = Of(K::kConnect)[0].address;
  EXPECT_TRUE(first == "10.0.1.1:7411" || first == "10.0.1.2:7411") << first;
  // Asked again while that dial is on: nothing more for door-2 (tried).
  pm_->SetWanted({"door-2"});
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty());
  // Another device: one more, then the bound.
  pm_->SetWanted({"door-2", "door-3"});
  Take();
  ASSERT_EQ(Of(K::kConnect).size(), 1u);
  EXPECT_EQ(Of(K::kConnect)[0].address, "10.0.1.3:7411");
  pm_->SetWanted({"door-2", "door-3", "door-4"});
  Take();
  EXPECT_TRUE(Of(K::kConnect).empty()) << "past max_holder_peers";
}

TEST_F(HoldingsCoreTest, HoldingsOverTheLimitCloseThePeer) {
  ConnId a = Incoming("a", "10.0.0.1:7411");
  Take();
  wire::Envelope m;
  m.mutable_holdings()->set_bloom(std::string(kMaxHoldingsBytes + 1, '\xff'));
  m.mutable_holdings()->set_hashes(3);
  m.mutable_holdings()->set_devices(1);
  pm_->OnMessage(a, std::move(m));
  Take();
  EXPECT_NE(CloseReasonOf(a).find("holdings of"), std::string::npos) << CloseReasonOf(a);
}

}  // namespace
}  // namespace cairn::discovery::testing
