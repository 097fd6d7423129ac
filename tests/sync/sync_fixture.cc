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
  }
  HarnessConfig hc;
  hc.peer_exchange = config.peer_exchange;
  hc.sync = config.sync;
  for (const auto& seed : config.seeds) {
    hc.seeds.push_back("127.0.0.1:" + std::to_string(Node(seed).port));
  }
  slot->Start(&loop_, pki_, ca_, dir_.path(), hc);
  return *slot;
}

void SyncTest::Stop(const std::string& id) {
  SyncTestNode& n = Node(id);
  n.BeginStop();
  CHECK(RunUntil([&] { return n.Stopped(); })) << id << " did not stop";
  n.Release();
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
