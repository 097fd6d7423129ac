#include "discovery/core_fixture.h"

#include <algorithm>

namespace cairn::discovery::testing {

Options FastOptions() {
  Options o;
  o.ping_interval_ms = 100;
  o.dead_interval_ms = 300;
  o.hello_timeout_ms = 300;
  o.backoff_initial_ms = 50;
  o.backoff_max_ms = 400;
  o.max_attempts = 3;
  o.purgatory_ms = 1000;
  o.exchange_interval_ms = 10'000;
  o.dns_refresh_ms = 5'000;
  o.dns_retry_ms = 500;
  o.target_peers = 0;  // a full mesh, unless a test bounds it
  return o;
}

CoreTest::CoreTest(std::string self, std::string advertise)
    : self_(std::move(self)), advertise_(std::move(advertise)) {
  Remake(FastOptions());
}

void CoreTest::Remake(Options options) {
  pm_ = std::make_unique<PeerManager>(self_, advertise_, options, &clock_, &rng_);
}

const std::vector<Action>& CoreTest::Take() {
  last_ = pm_->TakeActions();
  return last_;
}

std::vector<Action> CoreTest::Of(Action::Kind kind) const {
  std::vector<Action> out;
  for (const Action& a : last_) {
    if (a.kind == kind) out.push_back(a);
  }
  return out;
}

ConnId CoreTest::ConnectTo(const std::string& address) const {
  for (const Action& a : last_) {
    if (a.kind == Action::Kind::kConnect && a.address == address) return a.conn;
  }
  ADD_FAILURE() << "no Connect to " << address;
  return 0;
}

std::string CoreTest::CloseReasonOf(ConnId conn) const {
  std::string reason;
  for (const Action& a : last_) {
    if (a.kind == Action::Kind::kClose && a.conn == conn) reason = a.reason;
  }
  return reason;
}

bool CoreTest::SentOn(ConnId conn, wire::Envelope::MsgCase type) const {
  for (const Action& a : last_) {
    if (a.kind == Action::Kind::kSend && a.conn == conn &&
        a.envelope.msg_case() == type) {
      return true;
    }
  }
  return false;
}

wire::Envelope CoreTest::Hello(const std::string& id, const std::string& advertise,
                               uint32_t version) {
  wire::Envelope m;
  m.mutable_hello()->set_node_id(id);
  m.mutable_hello()->set_advertise(advertise);
  m.mutable_hello()->set_protocol_version(version);
  return m;
}

wire::Envelope CoreTest::PeerExchange(
    const std::vector<std::pair<std::string, std::string>>& peers) {
  wire::Envelope m;
  for (const auto& [id, address] : peers) {
    auto* p = m.mutable_peer_exchange()->add_peers();
    p->set_node_id(id);
    p->set_address(address);
  }
  return m;
}

ConnId CoreTest::Outgoing(const std::string& address, const std::string& id,
                          const std::string& advertise) {
  pm_->AddSeed(address);
  Take();
  ConnId conn = ConnectTo(address);
  pm_->OnOpened(conn, id, address);
  pm_->OnMessage(conn, Hello(id, advertise));
  Take();
  return conn;
}

ConnId CoreTest::Incoming(const std::string& id, const std::string& advertise) {
  ConnId conn = pm_->OnIncomingOpened(id, "10.9.9.9:40000");
  pm_->OnMessage(conn, Hello(id, advertise));
  Take();
  return conn;
}

PeerStatus CoreTest::Row(const std::string& id_or_address) const {
  std::vector<PeerStatus> rows = pm_->Snapshot();
  auto has = [&](const PeerStatus& s) {
    return std::find(s.addresses.begin(), s.addresses.end(), id_or_address) !=
           s.addresses.end();
  };
  for (const PeerStatus& s : rows) {
    if (s.state != PeerState::kPurgatory && s.node_id == id_or_address) return s;
  }
  for (const PeerStatus& s : rows) {
    if (s.state != PeerState::kPurgatory && s.node_id.empty() && has(s)) return s;
  }
  for (const PeerStatus& s : rows) {
    if (s.state == PeerState::kPurgatory && has(s)) return s;
  }
  PeerStatus none;
  none.state = PeerState::kDeleted;
  return none;
}

void CoreTest::AdvanceMs(int64_t ms) {
  clock_.Advance(ms * 1000);
  pm_->OnTimer();
}

}  // namespace cairn::discovery::testing
