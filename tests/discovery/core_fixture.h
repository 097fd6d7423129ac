// Test vocabulary for the discovery core: a PeerManager on a ManualClock and a
// seeded Rng, helpers that play the driver (open a connection, deliver a hello) and
// look at the actions the core returned.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/rng.h"
#include "discovery/peer_manager.h"
#include "testutil/manual_clock.h"

namespace cairn::discovery::testing {

// Short intervals, as the integration tests use them.
Options FastOptions();

class CoreTest : public ::testing::Test {
 protected:
  explicit CoreTest(std::string self = "b", std::string advertise = "10.0.0.2:7411");
  void Remake(Options options);

  // Takes the core's actions into `last_` (and returns them).
  const std::vector<Action>& Take();
  // The actions of `kind` in `last_`.
  std::vector<Action> Of(Action::Kind kind) const;
  // The id of the one Connect to `address` in `last_`; fails the test if none.
  ConnId ConnectTo(const std::string& address) const;
  // The last Close of `conn` in `last_`, "" when none.
  std::string CloseReasonOf(ConnId conn) const;
  bool SentOn(ConnId conn, wire::Envelope::MsgCase type) const;

  static wire::Envelope Hello(const std::string& id, const std::string& advertise = "",
                              uint32_t version = kProtocolVersion);
  static wire::Envelope PeerExchange(
      const std::vector<std::pair<std::string, std::string>>& peers);

  // Dials `address` (a seed unless already known) and completes the hello as `id`.
  ConnId Outgoing(const std::string& address, const std::string& id,
                  const std::string& advertise = "");
  // An accepted connection from `id` that completes the hello.
  ConnId Incoming(const std::string& id, const std::string& advertise = "");

  // The status row of node id or address; state kDeleted when absent.
  PeerStatus Row(const std::string& id_or_address) const;
  PeerState StateOf(const std::string& id_or_address) const {
    return Row(id_or_address).state;
  }
  // Moves the clock and fires the timer.
  void AdvanceMs(int64_t ms);

  testutil::ManualClock clock_;
  Rng rng_{20240501};
  std::string self_;
  std::string advertise_;
  std::unique_ptr<PeerManager> pm_;
  std::vector<Action> last_;
};

}  // namespace cairn::discovery::testing
