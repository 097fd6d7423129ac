#include "node_harness.h"

#include "base/check.h"
#include "tls/context.h"

namespace cairn::sync::testing {

void HarnessNode::Start(uv_loop_t* loop, const testutil::TestPki& pki,
                        const std::shared_ptr<const journal::CertAuthority>& ca,
                        const std::string& dir, const HarnessConfig& config) {
  CHECK(sync == nullptr) << id << " is running";
  if (device.cert_pem.empty()) device = pki.Issue(id);
  if (tls.cert_pem.empty()) tls = pki.Issue(id);
  auto signer = journal::DeviceSigner::FromPem(device.cert_pem, device.key_pem, *ca);
  CHECK(signer.ok()) << signer.status().ToString();
  journal::JournalOptions jo;
  jo.store.path = dir + "/" + id;
  jo.ca = ca;
  jo.sources.push_back(*signer);
  jo.sync_writes = config.sync_writes;
  auto j = journal::Journal::Open(std::move(jo));
  CHECK(j.ok()) << j.status().ToString();
  journal = std::move(*j);

  discovery::DiscoveryConfig dc;
  dc.listen_host = "127.0.0.1";
  dc.listen_port = port;
  dc.options.ping_interval_ms = 200;
  dc.options.dead_interval_ms = 1000;
  dc.options.backoff_initial_ms = 50;
  dc.options.backoff_max_ms = 400;
  dc.options.max_attempts = 50;
  dc.options.peer_exchange = config.peer_exchange;
  dc.options.exchange_interval_ms = 500;
  dc.tls.handshake_timeout_ms = 5000;
  dc.rng_seed = 7;
  dc.seeds = config.seeds;
  auto context = tls::Context::FromPem({pki.ca_cert_pem(), tls.cert_pem, tls.key_pem});
  CHECK(context.ok()) << context.status().ToString();
  discovery =
      std::make_unique<discovery::Discovery>(loop, *context, dc, nullptr, SystemClock());
  sync = std::make_unique<SyncNode>(loop, journal.get(), discovery.get(), config.sync);
  discovery->set_listener(sync.get());
  sync->Start();
  Result<int> bound = discovery->Start();
  CHECK(bound.ok()) << id << ": " << bound.status().ToString();
  port = *bound;
  sync_stopped_ = discovery_stopped_ = false;
}

void HarnessNode::BeginStop() {
  sync->Stop([this] { sync_stopped_ = true; });
  discovery->Stop([this] { discovery_stopped_ = true; });
}

void HarnessNode::Release() {
  CHECK(Stopped());
  sync.reset();
  discovery.reset();
  journal.reset();
}

}  // namespace cairn::sync::testing
