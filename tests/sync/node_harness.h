// A whole node for tests and benchmarks: a Journal that is the source of the
// device named after the node, a Discovery on its own TLS endpoint (127.0.0.1,
// short timers) and a SyncNode, all on a caller-owned libuv loop.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "discovery/discovery_uv.h"
#include "journal/journal.h"
#include "sync/sync_uv.h"
#include "testutil/pki.h"

namespace cairn::sync::testing {

struct HarnessConfig {
  std::vector<std::string> seeds;  // "127.0.0.1:PORT"
  bool peer_exchange = true;
  bool sync_writes = false;
  SyncOptions sync;
};

struct HarnessNode {
  std::string id;
  int port = 0;             // kept across restarts
  testutil::Issued device;  // the node's own device key, kept across restarts
  testutil::Issued tls;     // its TLS identity
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<discovery::Discovery> discovery;
  std::unique_ptr<SyncNode> sync;

  // Opens the journal and starts discovery and sync. REQUIRES: not running.
  void Start(uv_loop_t* loop, const testutil::TestPki& pki,
             const std::shared_ptr<const journal::CertAuthority>& ca,
             const std::string& dir, const HarnessConfig& config);
  // Asks sync and discovery to stop; `Stopped()` turns true once both are done.
  void BeginStop();
  bool Stopped() const { return sync_stopped_ && discovery_stopped_; }
  // Releases everything. REQUIRES: Stopped().
  void Release();

 private:
  bool sync_stopped_ = false;
  bool discovery_stopped_ = false;
};

}  // namespace cairn::sync::testing
