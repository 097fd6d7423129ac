// Sources of peers: configured seeds, DNS seed names, peer history, and what other
// peers tell us (Learn).
#include "discovery/address.h"
#include "discovery/peer_manager.h"

namespace cairn::discovery {
namespace {

std::string AddressKey(const std::string& address) { return "@" + address; }

}  // namespace

// ---------------------------------------------------------------- sources

void PeerManager::AddSeed(const std::string& address) {
  Learn("", address, /*pinned=*/true, "configured seed " + address);
}

void PeerManager::AddDnsName(const std::string& name) {
  if (dns_.size() >= options_.max_dns_names || dns_.count(name) != 0) return;
  dns_[name].pending = true;
  actions_.push_back(Action::Resolve(name));
}

void PeerManager::OnResolved(const std::string& name,
                             const std::vector<std::string>& addresses,
                             const std::string& error) {
  auto it = dns_.find(name);
  if (it == dns_.end()) return;
  DnsName& d = it->second;
  d.pending = false;
  const int64_t now = clock_->MonotonicMicros();
  if (!error.empty() || addresses.empty()) {
    d.last_error = error.empty() ? "no addresses" : error;
    d.next_mono = now + options_.dns_retry_ms * 1000;
    return;
  }
  d.last_error.clear();
  d.next_mono = now + options_.dns_refresh_ms * 1000;
  size_t n = std::min(addresses.size(), options_.max_dns_addresses);
  for (size_t i = 0; i < n; ++i) Learn("", addresses[i], false, "dns seed " + name);
}

void PeerManager::Restore(const std::vector<wire::PeerRecord>& records) {
  for (const wire::PeerRecord& r : records) {
    if (!IsPlausibleNodeId(r.node_id()) || r.node_id() == self_id_) continue;
    if (Find(r.node_id()) != nullptr) continue;
    Entry* e = NewEntry(r.node_id(), "restored from peer history", /*verified=*/true);
    if (e == nullptr) return;
    e->node_id = r.node_id();
    for (const std::string& a : r.addresses()) AddAddress(*e, a, false);
    e->pinned = r.pinned();
    e->attempts = r.attempts();
    e->last_seen_us = r.last_seen_us();
    DialOrPark(r.node_id(), "reconnect after restart");
  }
}

// Something told us about `address` (and perhaps whose it is): remember it and dial
// it if it is new.
void PeerManager::Learn(const std::string& node_id, const std::string& address,
                        bool pinned, const std::string& why,
                        const std::string& from_peer) {
  if (!SplitHostPort(address) || self_addresses_.count(address) != 0) return;
  if (node_id == self_id_) return;
  if (!node_id.empty()) {
    if (Entry* e = Find(node_id)) {
      AddAddress(*e, address, false);
      e->pinned = e->pinned || pinned;
      return;
    }
  }
  std::string known = KeyOfAddress(address);
  if (!known.empty()) {
    Entry* e = Find(known);
    e->pinned = e->pinned || pinned;
    return;
  }
  std::string key = node_id.empty() ? AddressKey(address) : node_id;
  Entry* e = NewEntry(key, why, /*verified=*/from_peer.empty());
  if (e == nullptr) return;
  e->learned_from = from_peer;
  e->node_id = node_id;
  e->pinned = pinned;
  AddAddress(*e, address, false);
  DialOrPark(key, why);
}

}  // namespace cairn::discovery
