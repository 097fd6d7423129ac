#include "discovery/mesh_fixture.h"

#include <sstream>

#include "base/check.h"
#include "base/clock.h"

namespace cairn::discovery::testing {

void MeshTest::TearDown() {
  for (auto& [id, node] : nodes_) {
    if (node->discovery != nullptr) StopNode(id);
  }
  nodes_.clear();
  LoopTest::TearDown();
}

DiscoveryConfig MeshTest::FastConfig() {
  DiscoveryConfig c;
  c.listen_host = "127.0.0.1";
  c.listen_port = 0;
  c.options.ping_interval_ms = 100;
  c.options.dead_interval_ms = 300;
  c.options.hello_timeout_ms = 300;
  c.options.backoff_initial_ms = 50;
  c.options.backoff_max_ms = 400;
  c.options.max_attempts = 50;
  c.options.purgatory_ms = 1000;
  c.options.exchange_interval_ms = 1000;
  c.options.dns_refresh_ms = 1000;
  c.options.dns_retry_ms = 200;
  c.tls = FastOptions();
  c.tls.handshake_timeout_ms = 5000;
  c.rng_seed = 42;
  return c;
}

TestNode& MeshTest::StartNode(const std::string& id, std::vector<std::string> seeds,
                              DiscoveryConfig config) {
  std::unique_ptr<TestNode>& slot = nodes_[id];
  if (slot == nullptr) {
    slot = std::make_unique<TestNode>();
    slot->id = id;
    leveldb::Options o;
    o.create_if_missing = true;
    o.paranoid_checks = true;
    leveldb::DB* db = nullptr;
    leveldb::Status s = leveldb::DB::Open(o, dir_.File(id), &db);
    CHECK(s.ok()) << s.ToString();
    slot->db.reset(db);
    slot->store = std::make_unique<LevelDbPeerStore>(db);
  }
  TestNode& n = *slot;
  CHECK(n.discovery == nullptr) << id << " is running";
  if (n.port != 0) config.listen_port = n.port;
  config.seeds = std::move(seeds);
  n.discovery = std::make_unique<Discovery>(&loop_, NodeContext(id), config,
                                            n.store.get(), SystemClock());
  n.discovery->set_listener(&n.listener);
  Result<int> port = n.discovery->Start();
  CHECK(port.ok()) << id << ": " << port.status().ToString();
  n.port = *port;
  return n;
}

void MeshTest::StopNode(const std::string& id) {
  TestNode& n = Node(id);
  bool stopped = false;
  n.discovery->Stop([&stopped] { stopped = true; });
  CHECK(RunUntil([&] { return stopped; })) << id << " did not stop";
  n.discovery.reset();
}

int MeshTest::FreePort() {
  uv_tcp_t tcp;
  CHECK(uv_tcp_init(&loop_, &tcp) == 0);
  sockaddr_in addr;
  CHECK(uv_ip4_addr("127.0.0.1", 0, &addr) == 0);
  CHECK(uv_tcp_bind(&tcp, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
  sockaddr_storage bound;
  int len = sizeof(bound);
  CHECK(uv_tcp_getsockname(&tcp, reinterpret_cast<sockaddr*>(&bound), &len) == 0);
  bool closed = false;
  tcp.data = &closed;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp),
           [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
  CHECK(RunUntil([&] { return closed; }));
  return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

bool MeshTest::FullMesh(const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    std::vector<std::string> active = Node(id).discovery->ActivePeers();
    if (active.size() != ids.size() - 1) return false;
  }
  return true;
}

PeerState MeshTest::StateAt(const std::string& at, const std::string& peer) {
  for (const PeerStatus& s : Node(at).discovery->Snapshot()) {
    if (s.node_id == peer && s.state != PeerState::kPurgatory) return s.state;
  }
  return PeerState::kDeleted;
}

std::string MeshTest::Describe(const std::string& id) {
  std::ostringstream out;
  out << id << ":";
  if (Node(id).discovery == nullptr) return out.str() + " stopped";
  for (const PeerStatus& s : Node(id).discovery->Snapshot()) {
    out << "\n  " << (s.node_id.empty() ? "?" : s.node_id) << " "
        << (s.addresses.empty() ? "" : s.addresses[0]) << " " << StateName(s.state)
        << " (" << s.reason << ")";
  }
  return out.str();
}

}  // namespace cairn::discovery::testing
