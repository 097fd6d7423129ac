#include "sync/planner.h"

#include <gtest/gtest.h>

namespace cairn::sync {
namespace {

wire::CatalogueEntry Entry(const std::string& device, uint64_t last,
                           bool source = false) {
  wire::CatalogueEntry e;
  e.set_device(device);
  e.set_last(last);
  e.set_source(source);
  return e;
}

class PlannerTest : public ::testing::Test {
 protected:
  void Has(const std::string& peer, wire::CatalogueEntry e, int64_t rtt_us = 0) {
    in_.peers[peer].offers[e.device()] = OfferOf(e);
    in_.peers[peer].rtt_us = rtt_us;
  }
  std::map<std::string, std::string> Plan() { return sync::Plan(in_); }
  PlanInput in_;
};

TEST_F(PlannerTest, TheSourceWinsWhenConnected) {
  Has("relay", Entry("d", 100));
  Has("src", Entry("d", 90, true));
  EXPECT_EQ(Plan()["d"], "src");
}

TEST_F(PlannerTest, OtherwiseTheHighestLastThenTheLowerRtt) {
  Has("p1", Entry("d", 50), 900);
  Has("p2", Entry("d", 70), 500);
  Has("p3", Entry("d", 70), 100);
  EXPECT_EQ(Plan()["d"], "p3");
}

TEST_F(PlannerTest, TiesAreBrokenTheSameWayEveryTime) {
  Has("p2", Entry("d", 70));
  Has("p1", Entry("d", 70));
  EXPECT_EQ(Plan()["d"], "p1");
}

TEST_F(PlannerTest, NeverPlansADeviceThisNodeIsTheSourceOf) {
  in_.local["mine"] = OfferOf(Entry("mine", 10, true));
  Has("p", Entry("mine", 20));
  EXPECT_EQ(Plan().count("mine"), 0u);
}

TEST_F(PlannerTest, KeepsTheCurrentPeerUnlessAnotherIsAheadByTheMargin) {
  in_.switch_margin = 10;
  in_.current["d"] = "slow";
  Has("slow", Entry("d", 100));
  Has("fast", Entry("d", 105));
  EXPECT_EQ(Plan()["d"], "slow");
  Has("fast", Entry("d", 111));
  EXPECT_EQ(Plan()["d"], "fast");
}

// Two relays that each followed the device through the other, both holding what
// we hold, while a third peer holds 2 more: the margin must not keep us on a
// peer that can send nothing (found with a renewed device certificate, where a
// and d stayed at 3 of 5 behind each other for good).
TEST_F(PlannerTest, LeavesAPeerThatHoldsNothingWeLackForOneThatDoes) {
  in_.local["d"] = OfferOf(Entry("d", 3));
  Has("relay", Entry("d", 3));
  Has("ahead", Entry("d", 5));
  in_.current["d"] = "relay";
  EXPECT_EQ(Plan()["d"], "ahead");
  in_.local["d"] = OfferOf(Entry("d", 2));  // the relay still has one for us: keep it
  EXPECT_EQ(Plan()["d"], "relay");
}

TEST_F(PlannerTest, MovesToAMuchCloserPeerThatIsAsFarAhead) {
  in_.rtt_switch_min_us = 1'000;
  in_.current["d"] = "far";
  Has("far", Entry("d", 100), 6'000);
  Has("near", Entry("d", 100), 2'500);  // under half, 3.5 ms sooner
  EXPECT_EQ(Plan()["d"], "near");
  Has("near", Entry("d", 100), 3'500);  // not under half: stays
  EXPECT_EQ(Plan()["d"], "far");
  Has("far", Entry("d", 100), 1'500);
  Has("near", Entry("d", 100), 600);  // under half but only 0.9 ms sooner: stays
  EXPECT_EQ(Plan()["d"], "far");
  Has("far", Entry("d", 100), 0);  // the current one not measured yet: stays
  Has("near", Entry("d", 100), 100);
  EXPECT_EQ(Plan()["d"], "far");
}

TEST_F(PlannerTest, ACloserPeerThatIsBehindDoesNotTakeOver) {
  in_.current["d"] = "far";
  Has("far", Entry("d", 100), 50'000);
  Has("near", Entry("d", 99), 100);
  EXPECT_EQ(Plan()["d"], "far");
}

TEST_F(PlannerTest, ACloserRelayNeverTakesOverFromTheSource) {
  in_.current["d"] = "src";
  Has("src", Entry("d", 100, true), 50'000);
  Has("relay", Entry("d", 100), 100);
  EXPECT_EQ(Plan()["d"], "src");
}

TEST_F(PlannerTest, MovesToTheSourceWhenItAppears) {
  in_.current["d"] = "relay";
  Has("relay", Entry("d", 100));
  Has("src", Entry("d", 100, true));
  EXPECT_EQ(Plan()["d"], "src");
}

TEST_F(PlannerTest, APeerThatLeftIsNotPlanned) {
  in_.current["d"] = "gone";
  Has("here", Entry("d", 1));
  EXPECT_EQ(Plan()["d"], "here");
}

}  // namespace
}  // namespace cairn::sync
