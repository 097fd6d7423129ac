#include "discovery/discovery_uv.h"

#include <iostream>
#include <random>

#include "base/check.h"
#include "discovery/address.h"
#include "discovery/holdings.h"

namespace cairn::discovery {
namespace {

// Actions performed per Pump before it yields to the loop: a bound on one burst.
constexpr int kMaxPumpRounds = 10'000;

uint64_t SeedOf(uint64_t configured) {
  if (configured != 0) return configured;
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

Discovery::Discovery(uv_loop_t* loop, std::shared_ptr<const tls::Context> context,
                     DiscoveryConfig config, PeerStore* store, Clock* clock)
    : loop_(loop),
      context_(context),
      config_(std::move(config)),
      store_(store),
      clock_(clock),
      rng_(SeedOf(config_.rng_seed)),
      endpoint_(loop, context, config_.tls) {}

Discovery::~Discovery() {
  CHECK(!started_ || (stopping_ && stop_pending_ == 0))
      << "Discovery destroyed before Stop completed";
}

Result<int> Discovery::Start() {
  CHECK(!started_) << "Discovery::Start called twice";
  started_ = true;
  CHECK(uv_timer_init(loop_, &timer_) == 0);
  timer_.data = this;
  endpoint_.set_on_refused([this](const std::string& why) {
    const int64_t now = clock_->MonotonicMicros();
    if (refused_logged_ && now - refused_logged_mono_ < 1'000'000) {
      ++refused_unlogged_;
      return;
    }
    refused_logged_ = true;
    refused_logged_mono_ = now;
    std::string line = why;
    if (refused_unlogged_ > 0) {
      line += " (and " + std::to_string(refused_unlogged_) +
              " more refused since the last line)";
      refused_unlogged_ = 0;
    }
    Log(line);
  });
  CAIRN_ASSIGN_OR_RETURN(
      int port, endpoint_.Listen(config_.listen_host, config_.listen_port, Callbacks()));
  advertise_ = config_.advertise;
  if (advertise_.empty() && config_.listen_host != "0.0.0.0" &&
      config_.listen_host != "::") {
    advertise_ = JoinHostPort(config_.listen_host, port);
  }
  core_ = std::make_unique<PeerManager>(context_->node_id(), advertise_, config_.options,
                                        clock_, &rng_);
  if (store_ != nullptr) {
    Result<std::vector<wire::PeerRecord>> history =
        store_->Load(config_.options.max_peers);
    if (!history.ok()) return history.status().WithContext("peer history");
    for (const auto& r : *history) {
      if (!r.node_id().empty() && r.last_seen_us() > 0) ++remembered_peers_;
    }
    core_->Restore(*history);
  }
  for (const std::string& seed : config_.seeds) core_->AddSeed(seed);
  if (!config_.dns_names.empty()) {
    DnsResolver::Config dc;
    dc.server = config_.dns_server;
    dc.default_port = config_.dns_default_port;
    dc.max_addresses = config_.options.max_dns_addresses;
    CAIRN_ASSIGN_OR_RETURN(dns_, DnsResolver::Create(loop_, dc));
    for (const std::string& name : config_.dns_names) core_->AddDnsName(name);
  }
  Pump();
  return port;
}

void Discovery::Stop(std::function<void()> done) {
  CHECK(started_ && !stopping_);
  stopping_ = true;
  stopped_ = std::move(done);
  stop_pending_ = 2;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
    auto* self = static_cast<Discovery*>(h->data);
    --self->stop_pending_;
    self->MaybeStopped();
  });
  if (dns_ != nullptr) {
    ++stop_pending_;
    dns_->Close([this] {
      --stop_pending_;
      MaybeStopped();
    });
  }
  endpoint_.Close([this] {
    --stop_pending_;
    MaybeStopped();
  });
}

void Discovery::MaybeStopped() {
  if (stop_pending_ > 0 || !stopped_) return;
  std::function<void()> done = std::move(stopped_);
  stopped_ = nullptr;
  done();
}

// ---------------------------------------------------------------- events in

tls::ConnectionCallbacks Discovery::Callbacks() {
  tls::ConnectionCallbacks cb;
  cb.on_open = [this](tls::Connection& c) {
    auto it = ids_.find(&c);
    if (it != ids_.end()) {
      core_->OnOpened(it->second, c.peer_id(), c.remote_address());
    } else if (!stopping_) {
      tls::PeerRole role = tls::RoleOf(c.peer_certificate());
      ConnId id = core_->OnIncomingOpened(c.peer_id(), c.remote_address(), role.reader,
                                          std::move(role.read_scope));
      ids_[&c] = id;
      conns_[id] = &c;
    }
    Pump();
  };
  cb.on_message = [this](tls::Connection& c, wire::Envelope&& m) {
    auto it = ids_.find(&c);
    if (it == ids_.end()) return;
    ++traffic_.messages_received;
    traffic_.bytes_received += m.ByteSizeLong();
    core_->OnMessage(it->second, std::move(m));
    Pump();
  };
  cb.on_drained = [this](tls::Connection& c) {
    auto it = ids_.find(&c);
    if (it == ids_.end() || listener_ == nullptr) return;
    if (auto name = core_->ActiveName(it->second)) listener_->OnPeerDrained(*name);
  };
  cb.on_close = [this](tls::Connection& c, const tls::CloseReason& reason) {
    auto it = ids_.find(&c);
    if (it == ids_.end()) return;
    ConnId id = it->second;
    ids_.erase(it);
    conns_.erase(id);
    core_->OnClosed(id, reason.ToString());
    Pump();
  };
  return cb;
}

void Discovery::Pump() {
  if (pumping_ || core_ == nullptr) return;
  pumping_ = true;
  for (int round = 0; round < kMaxPumpRounds; ++round) {
    std::vector<Action> actions = core_->TakeActions();
    if (actions.empty()) break;
    for (Action& a : actions) Perform(a);
  }
  pumping_ = false;
  ArmTimer();
}

void Discovery::ArmTimer() {
  if (stopping_) return;
  std::optional<int64_t> deadline = core_->NextDeadline();
  if (!deadline) {
    uv_timer_stop(&timer_);
    return;
  }
  int64_t wait_us = std::max<int64_t>(0, *deadline - clock_->MonotonicMicros());
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Discovery*>(t->data);
        self->core_->OnTimer();
        self->Pump();
      },
      static_cast<uint64_t>((wait_us + 999) / 1000), 0);
}

// ---------------------------------------------------------------- actions out

void Discovery::Perform(Action& a) {
  using K = Action::Kind;
  switch (a.kind) {
    case K::kConnect:
      return PerformConnect(a);
    case K::kSend: {
      auto it = conns_.find(a.conn);
      if (it == conns_.end() || !it->second->open()) return;
      // Our own messages (hello, pings, pongs, exchange, goodbye) are small: one
      // refused is a write queue full of what the peer has not read.
      CountSent(a.envelope);
      if (Status s = it->second->Send(a.envelope);
          s.code() == Status::Code::kResourceExhausted) {
        Log("peer " + it->second->peer_id() + ": " + s.message() +
            "; closing: it does not read what it is sent");
        it->second->Abort("write queue full: the peer does not read");
      }
      return;
    }
    case K::kClose: {
      auto it = conns_.find(a.conn);
      if (it != conns_.end()) it->second->Close(a.reason);
      return;
    }
    case K::kResolve:
      return PerformResolve(a.address);
    case K::kPeerActive:
      if (listener_ != nullptr) listener_->OnPeerActive(a.node_id);
      return;
    case K::kSubscriberActive:
      if (listener_ != nullptr) listener_->OnSubscriberActive(a.node_id, a.read_scope);
      return;
    case K::kPeerGone:
      if (listener_ != nullptr) listener_->OnPeerGone(a.node_id, a.reason);
      return;
    case K::kDeliver:
      if (listener_ != nullptr)
        listener_->OnPeerMessage(a.node_id, std::move(a.envelope));
      return;
    case K::kPeerRtt:
      if (listener_ != nullptr) listener_->OnPeerRtt(a.node_id, a.rtt_us);
      return;
    case K::kSavePeer:
    case K::kErasePeer:
      return PerformStore(a);
    case K::kLog:
      return Log("peer " + a.node_id + ": " + a.reason);
  }
}

void Discovery::PerformConnect(const Action& a) {
  if (stopping_) return core_->OnClosed(a.conn, "local: discovery stopping");
  std::optional<HostPort> hp = SplitHostPort(a.address);
  Result<tls::Connection*> c =
      hp ? endpoint_.Connect(hp->host, hp->port, Callbacks())
         : Result<tls::Connection*>(Status::InvalidArgument("not HOST:PORT"));
  if (!c.ok()) return core_->OnClosed(a.conn, c.status().ToString());
  ids_[*c] = a.conn;
  conns_[a.conn] = *c;
}

void Discovery::PerformResolve(const std::string& name) {
  if (stopping_ || dns_ == nullptr) return;
  dns_->Resolve(name,
                [this](const std::string& n, const std::vector<std::string>& addresses,
                       const std::string& error) {
                  if (!error.empty())
                    Log("DNS seed " + n + ": " + error + " (will retry)");
                  core_->OnResolved(n, addresses, error);
                  Pump();
                });
}

void Discovery::PerformStore(const Action& a) {
  if (store_ == nullptr) return;
  Status s = a.kind == Action::Kind::kSavePeer ? store_->Save(a.record)
                                               : store_->Erase(a.node_id);
  if (!s.ok()) Log("peer history: " + s.ToString());
}

size_t Discovery::DropRevoked() {
  std::vector<tls::Connection*> revoked;
  for (const auto& [id, c] : conns_) {
    if (!c->open()) continue;
    const std::string why = context_->Revoked(c->peer_certificate());
    if (why.empty()) continue;
    Log("peer " + c->peer_id() + " (" + c->remote_address() + "): " + why +
        "; disconnected");
    revoked.push_back(c);
  }
  // At once, dropping what is queued for it: nothing more goes to a revoked peer.
  for (tls::Connection* c : revoked) c->Abort("certificate revoked");
  revoked_disconnects_ += revoked.size();
  return revoked.size();
}

void Discovery::Log(const std::string& line) {
  if (config_.log) return config_.log(line);
  std::cerr << "discovery[" << context_->node_id() << "]: " << line << "\n";
}

// ---------------------------------------------------------------- for the layer above

tls::Connection* Discovery::ConnectionOf(const std::string& node_id) const {
  if (core_ == nullptr) return nullptr;
  std::optional<ConnId> id = core_->ActiveConnection(node_id);
  if (!id) return nullptr;
  auto it = conns_.find(*id);
  return it == conns_.end() ? nullptr : it->second;
}

Status Discovery::Send(const std::string& node_id, const wire::Envelope& message) {
  tls::Connection* c = ConnectionOf(node_id);
  if (c == nullptr)
    return Status::FailedPrecondition("peer " + node_id + " is not active");
  CountSent(message);
  return c->Send(message);
}

void Discovery::CountSent(const wire::Envelope& m) {
  ++traffic_.messages_sent;
  traffic_.bytes_sent += m.ByteSizeLong();
}

void Discovery::Disconnect(const std::string& node_id, const std::string& reason) {
  tls::Connection* c = ConnectionOf(node_id);
  if (c != nullptr) c->Close(reason);
}

void Discovery::SetStored(const std::vector<std::string>& devices) {
  SetHoldings(MakeHoldings(devices));
}

void Discovery::SetHoldings(wire::Holdings own) {
  if (core_ == nullptr) return;
  core_->SetHoldings(std::move(own));
  Pump();
}

void Discovery::SetWanted(std::vector<std::string> devices) {
  if (core_ == nullptr) return;
  core_->SetWanted(std::move(devices));
  Pump();
}

bool Discovery::AboveHighWater(const std::string& node_id) const {
  tls::Connection* c = ConnectionOf(node_id);
  return c != nullptr && c->above_high_water();
}

std::vector<PeerStatus> Discovery::Snapshot() const {
  return core_ == nullptr ? std::vector<PeerStatus>{} : core_->Snapshot();
}

std::vector<std::string> Discovery::ActivePeers() const {
  return core_ == nullptr ? std::vector<std::string>{} : core_->ActivePeers();
}

uint64_t Discovery::connect_attempts() const {
  return core_ == nullptr ? 0 : core_->connect_attempts();
}

}  // namespace cairn::discovery
