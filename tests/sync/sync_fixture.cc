#include "sync_fixture.h"

#include "base/check.h"

namespace cairn::sync::testing {

SyncTest::SyncTest() {
  auto ca = journal::CertAuthority::FromPem(pki_.ca_cert_pem(), "test CA");
  CHECK(ca.ok());
  ca_ = *ca;
}

void SyncTest::TearDown() {
  for (auto& [id, node] : nodes_) {
    if (node->sync != nullptr) Stop(id);
  }
  nodes_.clear();
  LoopTest::TearDown();
}

SyncTestNode& SyncTest::Start(const std::string& id, NodeConfig config) {
  auto& slot = nodes_[id];
  if (!slot) {
    slot = std::make_unique<SyncTestNode>();
    slot->id = id;
    slot->device = pki_.Issue(id);
  }
  SyncTestNode& n = *slot;
  CHECK(n.sync == nullptr) << id << " is running";
  auto signer = journal::DeviceSigner::FromPem(n.device.cert_pem, n.device.key_pem, *ca_);
  CHECK(signer.ok());
  journal::JournalOptions jo;
  jo.store.path = dir_.File(id);
  jo.ca = ca_;
  jo.sources.push_back(*signer);
  jo.sync_writes = false;  // process crashes are not what these tests are about
  auto j = journal::Journal::Open(std::move(jo));
  CHECK(j.ok()) << j.status().ToString();
  n.journal = std::move(*j);

  discovery::DiscoveryConfig dc;
  dc.listen_host = "127.0.0.1";
  dc.listen_port = n.port;
  dc.options.ping_interval_ms = 200;
  dc.options.dead_interval_ms = 1000;
  dc.options.backoff_initial_ms = 50;
  dc.options.backoff_max_ms = 400;
  dc.options.max_attempts = 50;
  dc.options.peer_exchange = config.peer_exchange;
  dc.options.exchange_interval_ms = 500;
  dc.tls = FastOptions();
  dc.tls.handshake_timeout_ms = 5000;
  dc.rng_seed = 7;
  for (const auto& seed : config.seeds) {
    dc.seeds.push_back("127.0.0.1:" + std::to_string(Node(seed).port));
  }
  n.discovery = std::make_unique<discovery::Discovery>(&loop_, NodeContext(id), dc,
                                                       nullptr, SystemClock());
  n.sync =
      std::make_unique<SyncNode>(&loop_, n.journal.get(), n.discovery.get(), config.sync);
  n.discovery->set_listener(n.sync.get());
  n.sync->Start();
  Result<int> port = n.discovery->Start();
  CHECK(port.ok()) << id << ": " << port.status().ToString();
  n.port = *port;
  return n;
}

void SyncTest::Stop(const std::string& id) {
  SyncTestNode& n = Node(id);
  bool sync_stopped = false, discovery_stopped = false;
  n.sync->Stop([&] { sync_stopped = true; });
  n.discovery->Stop([&] { discovery_stopped = true; });
  CHECK(RunUntil([&] { return sync_stopped && discovery_stopped; }))
      << id << " did not stop";
  n.sync.reset();
  n.discovery.reset();
  n.journal.reset();
}

void SyncTest::Append(const std::string& id, int n, const std::string& type) {
  for (int done = 0; done < n;) {
    const int batch = std::min(1000, n - done);
    std::vector<journal::NewEvent> events;
    for (int i = 0; i < batch; ++i) {
      events.push_back({type, "{\"n\":" + std::to_string(done + i) + "}"});
    }
    auto r = J(id).Append(id, std::move(events));
    CHECK(r.ok()) << r.status().ToString();
    done += batch;
  }
}

uint64_t SyncTest::Last(const std::string& at, const std::string& device) {
  auto s = J(at).Stream(device);
  return s.ok() ? s->last : 0;
}

bool SyncTest::Converged(const std::vector<std::string>& ids,
                         const std::vector<std::string>& devices) {
  for (const auto& device : devices) {
    auto first = J(ids.front()).Stream(device);
    if (!first.ok()) return false;
    for (const auto& id : ids) {
      auto s = J(id).Stream(device);
      if (!s.ok() || s->last != first->last || s->head_hash != first->head_hash)
        return false;
    }
  }
  for (const auto& device : devices) {
    auto view = J(ids.front()).KeptView(device);
    for (const auto& id : ids) {
      if (!view.ok() || *J(id).KeptView(device) != *view) return false;
    }
  }
  return true;
}

bool SyncTest::RunUntilConverged(const std::vector<std::string>& ids,
                                 const std::vector<std::string>& devices,
                                 uint64_t timeout_ms) {
  return RunUntil([&] { return Converged(ids, devices); }, timeout_ms);
}

}  // namespace cairn::sync::testing
