#include "sim/world.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <tuple>

#include "base/clock.h"
#include "base/rng.h"
#include "journal/identity.h"
#include "journal/journal.h"
#include "sim/sim_env.h"
#include "sync/driver.h"
#include "testutil/pki.h"

namespace cairn::sim {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kSec = 1'000'000;
// Wall-clock time at simulated zero: 2026-06-01, inside the certificates'
// validity (TestPki(name, seed) counts from 2025-01-01).
constexpr int64_t kEpochUs = 1'780'272'000'000'000;
constexpr uint64_t kHighWater = 256u << 10;  // per direction, like a socket buffer
constexpr uint64_t kLowWater = 64u << 10;
constexpr size_t kSimReadChunk = 1024;
constexpr uint64_t kSimCreditSlack = 2048;

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

class SimClock final : public Clock {
 public:
  explicit SimClock(const std::atomic<int64_t>* now) : now_(now) {}
  int64_t NowMicros() override { return kEpochUs + now_->load() + skew_.load(); }
  int64_t MonotonicMicros() override { return now_->load(); }
  void Jump(int64_t us) { skew_ += us; }

 private:
  const std::atomic<int64_t>* now_;
  std::atomic<int64_t> skew_{0};
};

class World;

struct Node final : sync::DriverHost, sync::PeerSessions {
  Node(World* w, int i, const std::atomic<int64_t>* now)
      : world(w), index(i), id("n" + std::to_string(i)), clock(now) {}

  // DriverHost
  void QueueJob(std::unique_ptr<sync::Job> job) override;
  void Wake() override { wake = true; }
  void ArmFlush(int ms) override;
  // PeerSessions
  Status Send(const std::string& peer, const wire::Envelope& message) override;
  bool AboveHighWater(const std::string& peer) const override;
  void Disconnect(const std::string& peer, const std::string& reason) override;

  World* world;
  int index;
  std::string id;
  std::vector<std::string> devices;  // its own
  std::vector<std::shared_ptr<journal::DeviceSigner>> signers;
  SimEnv env;
  SimClock clock;
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<sync::Driver> driver;
  bool up = false;
  bool hostile = false;
  uint64_t epoch = 0;  // a crash or restart moves it: older events are dropped
  std::atomic<bool> wake{false};
  int64_t disk_until = 0;  // a disk fault lasts until then
};

struct Link {
  int a = 0;
  int b = 0;
  bool open = false;
  uint64_t conn = 0;  // moves on every open and close: stale deliveries are dropped
  int64_t tail[2] = {0, 0};     // the last delivery time queued, per direction
  uint64_t queued[2] = {0, 0};  // bytes in flight, per direction
  bool above[2] = {false, false};
  bool connecting = false;
};

class World {
 public:
  explicit World(const Options& o) : o_(o), rng_(o.seed), pki_("cairn-sim-ca", o.seed) {}

  Outcome Go();

  // For nodes.
  void At(int64_t at, std::function<void()> fn) {
    queue_.push(Ev{std::max(at, now_.load()), seq_++, std::move(fn)});
  }
  int64_t now() const { return now_.load(); }
  Rng& rng() { return rng_; }
  Link* LinkOf(int from, const std::string& peer);
  void Deliver(int from, int to, std::string bytes);
  void Close(int from, int to, const std::string& reason, bool by_protocol);
  void CheckCredit(int from, int to, const wire::Envelope& m, size_t size, bool sent);
  void Trace(const std::string& line);
  void Violation(const std::string& what);
  int IndexOf(const std::string& id) const;
  journal::Journal* JournalOf(int i) { return nodes_[i]->journal.get(); }
  bool failed() const { return !outcome_.ok; }

 private:
  struct Ev {
    int64_t at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Ev& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  void Setup();
  // Runs `fn` at `first`, then again after the delay it returns (negative: stop).
  void Every(int64_t first, std::function<int64_t()> fn);
  void Recur(size_t k, int64_t at);
  Status Open(Node& n);
  void Shut(Node& n);
  void Crash(Node& n, bool wipe);
  void Restart(int i, uint64_t epoch);
  void TryConnect(Link& l);
  void Append();
  void Fault();
  void Partition();
  void Heal();
  void RunWakes();
  bool Converged(std::string* lag);
  void Explain(int i, const std::string& device);
  void Operator();
  void FinalChecks();
  void Step(int64_t until);

  Options o_;
  Rng rng_;
  testutil::TestPki pki_;
  std::shared_ptr<const journal::CertAuthority> ca_;
  std::atomic<int64_t> now_{0};
  uint64_t seq_ = 0;
  std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> queue_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::pair<int, int>, Link> links_;
  std::set<int> cut_;  // one side of a partition (empty: none)
  int64_t last_fault_healed_ = 0;
  // device -> seq -> payload, of every append acknowledged
  std::map<std::string, std::map<uint64_t, std::string>> acked_;
  std::map<std::string, int> source_of_;  // device -> node index
  uint64_t counter_ = 0;
  std::deque<std::string> tail_;
  std::vector<std::function<int64_t()>> recurring_;
  struct Credit {
    uint64_t sub = 0;
    uint64_t granted = 0;
    uint64_t sent = 0;
  };
  std::map<std::tuple<int, int, std::string>, Credit>
      credit_;                                        // (server, subscriber, device)
  std::vector<std::pair<int, std::string>> lagging_;  // what Converged found behind
  Outcome outcome_;
};

// ---- nodes

void Node::QueueJob(std::unique_ptr<sync::Job> job) {
  // The thread pool: the job runs after a disk's delay, then completes on the
  // node's loop, unless the node crashed in between.
  const uint64_t e = epoch;
  int64_t delay = 100 + static_cast<int64_t>(world->rng().Uniform(2 * kMs));
  // Now and then a disk stalls (an fsync behind a busy device): what is sent
  // meanwhile waits in the queue that credit bounds.
  if (world->rng().Uniform(20) == 0)
    delay += static_cast<int64_t>(world->rng().Uniform(300 * kMs));
  std::shared_ptr<sync::Job> shared(std::move(job));
  world->At(world->now() + delay, [this, e, shared] {
    if (!up || epoch != e) return;
    sync::Driver::RunJob(journal.get(), *shared);
    driver->Complete(*shared);
  });
}

void Node::ArmFlush(int ms) {
  const uint64_t e = epoch;
  world->At(world->now() + ms * kMs, [this, e] {
    if (up && epoch == e) driver->Flush();
  });
}

Status Node::Send(const std::string& peer, const wire::Envelope& message) {
  const Link* l = world->LinkOf(index, peer);
  if (l == nullptr || !l->open) return Status::FailedPrecondition("not connected");
  world->Deliver(index, world->IndexOf(peer), message.SerializeAsString());
  return Status::Ok();
}

bool Node::AboveHighWater(const std::string& peer) const {
  const Link* l = world->LinkOf(index, peer);
  return l != nullptr && l->above[l->a == index ? 0 : 1];
}

void Node::Disconnect(const std::string& peer, const std::string& reason) {
  const int to = world->IndexOf(peer);
  if (to >= 0) world->Close(index, to, reason, /*by_protocol=*/true);
}

// ---- the world

int World::IndexOf(const std::string& id) const {
  if (id.size() < 2 || id[0] != 'n') return -1;
  const int i = std::atoi(id.c_str() + 1);
  return i >= 0 && i < static_cast<int>(nodes_.size()) ? i : -1;
}

Link* World::LinkOf(int from, const std::string& peer) {
  const int to = IndexOf(peer);
  if (to < 0) return nullptr;
  auto it = links_.find({std::min(from, to), std::max(from, to)});
  return it == links_.end() ? nullptr : &it->second;
}

void World::Trace(const std::string& line) {
  if (failed()) return;  // what follows a violation is the teardown
  const std::string full = Fmt("%10.6f ", static_cast<double>(now()) / kSec) + line;
  for (unsigned char c : full) {
    outcome_.stats.trace_hash ^= c;
    outcome_.stats.trace_hash *= 1099511628211ull;
  }
  outcome_.stats.trace_hash ^= '\n';
  outcome_.stats.trace_hash *= 1099511628211ull;
  if (o_.trace_all) std::fprintf(stderr, "%s\n", full.c_str());
  tail_.push_back(full);
  if (tail_.size() > o_.trace_tail) tail_.pop_front();
}

void World::Violation(const std::string& what) {
  if (!outcome_.ok) return;
  Trace("VIOLATION: " + what);
  outcome_.ok = false;
  outcome_.violation = what;
}

// Credit, as the wire shows it: what a subscriber granted (Subscribe.credit,
// Credit) as it reaches the server, against what the server sends for that
// subscription. An honest server overshoots by less than a read (it ends at a
// signed record); past that it ignores the credit it was given.
void World::CheckCredit(int from, int to, const wire::Envelope& m, size_t size,
                        bool sent) {
  if (sent) {  // from is the server
    std::string device;
    uint64_t sub = 0;
    if (m.has_events()) {
      device = m.events().device();
      sub = m.events().sub();
    } else if (m.has_snapshot()) {
      device = m.snapshot().header().device();
      sub = m.snapshot().sub();
    } else {
      return;
    }
    auto it = credit_.find({from, to, device});
    if (it == credit_.end() || it->second.sub != sub) return;
    it->second.sent += size;
    const uint64_t tolerance = kSimReadChunk + kSimCreditSlack;
    if (it->second.sent > it->second.granted + tolerance && !nodes_[from]->hostile) {
      Violation(Fmt("%s sent %s %" PRIu64 " bytes of %s against %" PRIu64 " granted",
                    nodes_[from]->id.c_str(), nodes_[to]->id.c_str(), it->second.sent,
                    device.c_str(), it->second.granted));
    }
    return;
  }
  // Delivered to `to`, the server.
  if (m.has_subscribe()) {
    credit_[{to, from, m.subscribe().device()}] =
        Credit{m.subscribe().sub(), m.subscribe().credit(), 0};
  } else if (m.has_credit()) {
    auto it = credit_.find({to, from, m.credit().device()});
    if (it != credit_.end() &&
        (m.credit().sub() == 0 || m.credit().sub() == it->second.sub))
      it->second.granted += m.credit().bytes();
  } else if (m.has_unsubscribe()) {
    credit_.erase({to, from, m.unsubscribe().device()});
  }
}

void World::Deliver(int from, int to, std::string bytes) {
  Link& l = links_.at({std::min(from, to), std::max(from, to)});
  {
    wire::Envelope sent;
    if (sent.ParseFromString(bytes)) CheckCredit(from, to, sent, bytes.size(), true);
  }
  const int d = l.a == from ? 0 : 1;
  // Mostly a LAN's delay, now and then a slow path; never out of order on one
  // connection.
  int64_t delay = 200 + static_cast<int64_t>(rng_.Uniform(5 * kMs));
  if (rng_.Uniform(50) == 0) delay += static_cast<int64_t>(rng_.Uniform(300 * kMs));
  const int64_t at = std::max(l.tail[d], now() + delay);
  l.tail[d] = at;
  const size_t size = bytes.size();
  l.queued[d] += size;
  if (l.queued[d] > kHighWater) l.above[d] = true;
  const uint64_t conn = l.conn;
  At(at, [this, from, to, conn, d, size, bytes = std::move(bytes)] {
    Link& link = links_.at({std::min(from, to), std::max(from, to)});
    if (link.conn != conn || !link.open) return;
    link.queued[d] -= size;
    Node& sender = *nodes_[from];
    Node& receiver = *nodes_[to];
    if (link.above[d] && link.queued[d] <= kLowWater) {
      link.above[d] = false;
      sender.driver->OnPeerDrained(receiver.id);
    }
    wire::Envelope m;
    if (!m.ParseFromString(bytes)) return Violation("a message did not parse");
    CheckCredit(from, to, m, size, false);
    ++outcome_.stats.messages;
    outcome_.stats.message_bytes += size;
    if (m.has_events() && !m.events().records().empty()) {
      const auto& rs = m.events().records();
      Trace(Fmt("%s > %s events %s %" PRIu64 "..%" PRIu64, sender.id.c_str(),
                receiver.id.c_str(), m.events().device().c_str(), rs[0].seq(),
                rs[rs.size() - 1].seq()));
    }
    receiver.driver->OnPeerMessage(sender.id, std::move(m));
  });
}

void World::Close(int from, int to, const std::string& reason, bool by_protocol) {
  Link& l = links_.at({std::min(from, to), std::max(from, to)});
  if (!l.open) return;
  Node& a = *nodes_[from];
  Node& b = *nodes_[to];
  Trace(Fmt("%s closes %s: %s", a.id.c_str(), b.id.c_str(), reason.c_str()));
  if (by_protocol && !a.hostile && !b.hostile) {
    Violation(a.id + " closed " + b.id + ", both honest: " + reason);
  }
  l.open = false;
  ++l.conn;
  std::erase_if(credit_, [&](const auto& c) {
    const auto& [server, subscriber, device] = c.first;
    return (server == from && subscriber == to) || (server == to && subscriber == from);
  });
  l.queued[0] = l.queued[1] = 0;
  l.above[0] = l.above[1] = false;
  l.tail[0] = l.tail[1] = 0;
  // Told on the next turn of each loop, as a closed socket would tell them.
  for (Node* n : {&a, &b}) {
    const std::string peer = n == &a ? b.id : a.id;
    const uint64_t e = n->epoch;
    At(now(), [n, peer, e, reason] {
      if (n->up && n->epoch == e) n->driver->OnPeerGone(peer, reason);
    });
  }
  // Discovery dials again after a backoff.
  const int64_t backoff = 100 * kMs + static_cast<int64_t>(rng_.Uniform(2 * kSec));
  Link* lp = &l;
  At(now() + backoff, [this, lp] { TryConnect(*lp); });
}

void World::TryConnect(Link& l) {
  Node& a = *nodes_[l.a];
  Node& b = *nodes_[l.b];
  if (l.open || !a.up || !b.up) return;
  if (!cut_.empty() && cut_.count(l.a) != cut_.count(l.b)) return;  // Heal redials
  l.open = true;
  ++l.conn;
  Trace(Fmt("%s <-> %s connected", a.id.c_str(), b.id.c_str()));
  a.driver->OnPeerActive(b.id);
  b.driver->OnPeerActive(a.id);
  const int64_t rtt = 500 + static_cast<int64_t>(rng_.Uniform(10 * kMs));
  a.driver->OnPeerRtt(b.id, rtt);
  b.driver->OnPeerRtt(a.id, rtt);
}

Status World::Open(Node& n) {
  journal::JournalOptions jo;
  jo.store.path = "/sim/" + n.id;
  jo.store.env = &n.env;
  jo.store.write_buffer_bytes = 64u << 10;  // small tables: compactions happen
  jo.store.block_cache_bytes = 1u << 20;
  jo.ca = ca_;
  jo.sources = n.signers;
  jo.clock = &n.clock;
  jo.sync_writes = true;
  jo.snapshot_every_events = 0;
  auto j = journal::Journal::Open(std::move(jo));
  if (!j.ok()) return j.status();
  n.journal = std::move(*j);
  sync::SyncOptions so;
  so.self = n.id;
  so.restore_guard = true;
  // Every peer it is configured with must report before it appends again (a
  // cairnd waits for a majority of them, and its README names what that can
  // miss: with one of them the simulator finds a wiped source re-acknowledging
  // seqs a peer that answered late still held).
  so.guard_expected_peers = 0;
  for (const auto& [key, l] : links_) {
    if (l.a == n.index || l.b == n.index) ++so.guard_expected_peers;
  }
  // Small windows, so that the streams of a short run cross them: credit runs
  // out, is granted back in batches, and reads come in several chunks.
  so.initial_credit_bytes = 2048;
  so.credit_batch_bytes = 512;
  so.read_chunk_bytes = kSimReadChunk;
  so.credit_slack_bytes =
      kSimCreditSlack;  // an append batch (signed at its end) is < 1 KiB
  n.driver = std::make_unique<sync::Driver>(&n, n.journal.get(), &n, so);
  Node* np = &n;
  n.driver->set_log(
      [this, np](const std::string& line) { Trace(np->id + " log: " + line); });
  if (n.hostile) {
    // Forges a third of what it relays: one byte of the payload of other
    // devices' events. (Always forging, it could hold the only copy left of
    // events a wiped source lost, and no honest node could ever get them.)
    n.driver->set_outbound_filter([this, np](const std::string&, wire::Envelope& m) {
      if (!m.has_events() || m.events().device().rfind(np->id + "-", 0) == 0) return;
      if (rng_.Uniform(3) != 0) return;
      for (auto& r : *m.mutable_events()->mutable_records()) {
        if (r.payload().empty()) continue;
        r.mutable_payload()->back() ^= 1;
        ++outcome_.stats.forged;
        Trace(Fmt("%s forges %s %" PRIu64, np->id.c_str(), m.events().device().c_str(),
                  r.seq()));
        break;
      }
    });
  }
  n.up = true;
  ++n.epoch;
  n.driver->Start();
  return Status::Ok();
}

// The process goes away: its connections close, its work is dropped.
void World::Shut(Node& n) {
  for (auto& [key, l] : links_) {
    if (l.open && (l.a == n.index || l.b == n.index)) {
      const int other = l.a == n.index ? l.b : l.a;
      Close(other, n.index, "connection lost", /*by_protocol=*/false);
    }
  }
  n.up = false;
  ++n.epoch;
  n.driver->Stop();
  n.driver.reset();
  n.journal.reset();
}

void World::Crash(Node& n, bool wipe) {
  ++outcome_.stats.faults;
  ++outcome_.stats.crashes;
  if (wipe) {
    // What the disk took: acknowledged events no other node holds. Only the
    // device's own source could have lost them, and it is this node.
    for (const auto& device : n.devices) {
      uint64_t held = 0;
      // Held by an honest node, that is: what only the hostile one holds no
      // honest node will ever get (it forges what it relays).
      for (auto& other : nodes_) {
        if (other.get() == &n || !other->up || other->hostile) continue;
        auto s = other->journal->Stream(device);
        if (s.ok()) held = std::max(held, s->last);
      }
      auto& acks = acked_[device];
      auto lost = acks.upper_bound(held);
      if (lost != acks.end()) {
        Trace(Fmt("%s wiped: %s %" PRIu64 "..%" PRIu64 " held nowhere else", n.id.c_str(),
                  device.c_str(), lost->first, acks.rbegin()->first));
        acks.erase(lost, acks.end());
      }
    }
    Trace(n.id + " disk wiped");
  } else {
    Trace(n.id + " crashes");
    n.env.Freeze(rng_);
  }
  Shut(n);
  if (wipe) {
    n.env.Wipe();
  } else {
    n.env.RestoreFrozen();
  }
  const uint64_t e = n.epoch;
  const int i = n.index;
  At(now() + 500 * kMs + static_cast<int64_t>(rng_.Uniform(4 * kSec)),
     [this, i, e] { Restart(i, e); });
}

void World::Restart(int i, uint64_t epoch) {
  Node& n = *nodes_[i];
  if (n.up || n.epoch != epoch) return;
  n.env.set_fault(SimEnv::Fault::kNone);
  Status s = Open(n);
  if (!s.ok()) return Violation(n.id + " could not reopen its journal: " + s.ToString());
  Trace(n.id + " restarted");
  for (auto& [key, l] : links_) {
    if (l.a == i || l.b == i) {
      Link* lp = &l;
      At(now() + static_cast<int64_t>(rng_.Uniform(500 * kMs)),
         [this, lp] { TryConnect(*lp); });
    }
  }
}

void World::Setup() {
  auto ca = journal::CertAuthority::FromPem(pki_.ca_cert_pem(), "sim CA");
  ca_ = *ca;
  for (int i = 0; i < o_.nodes; ++i) {
    auto n = std::make_unique<Node>(this, i, &now_);
    for (int d = 0; d < o_.devices_per_node; ++d) {
      const std::string device = n->id + "-d" + std::to_string(d);
      testutil::Issued cert = pki_.Issue(device, 3650);
      auto signer = journal::DeviceSigner::FromPem(cert.cert_pem, cert.key_pem, *ca_);
      if (!signer.ok()) {
        Violation("device certificate: " + signer.status().ToString());
        return;
      }
      n->signers.push_back(*signer);
      n->devices.push_back(device);
      source_of_[device] = i;
    }
    // Clocks disagree a little from the start.
    n->clock.Jump(static_cast<int64_t>(rng_.Uniform(4 * kSec)) - 2 * kSec);
    nodes_.push_back(std::move(n));
  }
  if (o_.hostile && o_.nodes >= 4) nodes_[1 + rng_.Uniform(o_.nodes - 1)]->hostile = true;
  // A ring keeps the mesh connected; chords make paths short and relays many.
  for (int i = 0; i < o_.nodes; ++i) {
    const int j = (i + 1) % o_.nodes;
    if (i != j)
      links_[{std::min(i, j), std::max(i, j)}] = Link{std::min(i, j), std::max(i, j)};
    for (int k = 0; k < 2 && o_.nodes > 3; ++k) {
      const int c = static_cast<int>(rng_.Uniform(o_.nodes));
      if (c != i)
        links_[{std::min(i, c), std::max(i, c)}] = Link{std::min(i, c), std::max(i, c)};
    }
  }
  for (auto& n : nodes_) {
    Status s = Open(*n);
    if (!s.ok()) return Violation(n->id + " could not open: " + s.ToString());
  }
  for (auto& [key, l] : links_) {
    Link* lp = &l;
    At(static_cast<int64_t>(rng_.Uniform(200 * kMs)), [this, lp] { TryConnect(*lp); });
  }
  for (auto& n : nodes_) {
    Node* np = n.get();
    // The loop's timers: a tick every second, retention every 5 s.
    Every(static_cast<int64_t>(rng_.Uniform(kSec)), [this, np] {
      if (np->up) np->driver->Tick();
      return kSec;
    });
    Every(static_cast<int64_t>(rng_.Uniform(5 * kSec)), [this, np] {
      if (np->up) np->driver->Retain();
      return 5 * kSec;
    });
  }
}

void World::Every(int64_t first, std::function<int64_t()> fn) {
  recurring_.push_back(std::move(fn));
  Recur(recurring_.size() - 1, first);
}

void World::Recur(size_t k, int64_t at) {
  At(at, [this, k] {
    const int64_t next = recurring_[k]();
    if (next >= 0) Recur(k, now() + next);
  });
}

void World::Append() {
  std::vector<Node*> up;
  for (auto& n : nodes_) {
    if (n->up) up.push_back(n.get());
  }
  if (up.empty()) return;
  Node& n = *up[rng_.Uniform(up.size())];
  const std::string& device = n.devices[rng_.Uniform(n.devices.size())];
  std::vector<journal::NewEvent> events;
  const size_t count = 1 + rng_.Uniform(4);
  for (size_t k = 0; k < count; ++k) {
    const uint64_t c = ++counter_;
    if (rng_.Uniform(2) == 0) {
      events.push_back({"kv.put", Fmt("{\"store\":\"s\",\"key\":\"k%" PRIu64
                                      "\",\"value\":%" PRIu64 "}",
                                      c % 7, c)});
    } else {
      events.push_back({"note", Fmt("%s event %" PRIu64, device.c_str(), c)});
    }
  }
  std::vector<std::string> payloads;
  for (const auto& e : events) payloads.push_back(e.payload);
  auto r = n.journal->Append(device, std::move(events));
  if (!r.ok()) {
    Trace(Fmt("%s append %s refused: %s", n.id.c_str(), device.c_str(),
              r.status().ToString().c_str()));
    return;
  }
  ++outcome_.stats.appends_acked;
  Trace(Fmt("%s append %s %" PRIu64 "..%" PRIu64, n.id.c_str(), device.c_str(), r->first,
            r->last));
  auto& acks = acked_[device];
  for (uint64_t seq = r->first; seq <= r->last; ++seq) {
    ++outcome_.stats.records_acked;
    if (!acks.emplace(seq, payloads[seq - r->first]).second) {
      return Violation(
          Fmt("seq %" PRIu64 " of %s acknowledged twice", seq, device.c_str()));
    }
  }
  // Now and then the source takes a snapshot of its view.
  if (rng_.Uniform(20) == 0) {
    auto s = n.journal->Snapshot(device);
    Trace(Fmt("%s snapshot %s: %s", n.id.c_str(), device.c_str(),
              s.ok() ? std::to_string(*s).c_str() : s.status().ToString().c_str()));
  }
}

void World::Partition() {
  cut_.clear();
  const size_t size = 1 + rng_.Uniform(std::max<size_t>(1, nodes_.size() / 2));
  while (cut_.size() < size) cut_.insert(static_cast<int>(rng_.Uniform(nodes_.size())));
  std::string names;
  for (int i : cut_) names += " " + nodes_[i]->id;
  Trace("partition:" + names + " apart");
  for (auto& [key, l] : links_) {
    if (l.open && cut_.count(l.a) != cut_.count(l.b))
      Close(l.a, l.b, "partitioned", /*by_protocol=*/false);
  }
  ++outcome_.stats.faults;
  At(now() + kSec + static_cast<int64_t>(rng_.Uniform(8 * kSec)), [this] { Heal(); });
}

void World::Heal() {
  if (cut_.empty()) return;
  Trace("partition healed");
  cut_.clear();
  last_fault_healed_ = std::max(last_fault_healed_, now());
  for (auto& [key, l] : links_) {
    Link* lp = &l;
    At(now() + static_cast<int64_t>(rng_.Uniform(300 * kMs)),
       [this, lp] { TryConnect(*lp); });
  }
}

void World::Fault() {
  const uint64_t kind = rng_.Uniform(100);
  Node& n = *nodes_[rng_.Uniform(nodes_.size())];
  if (kind < 40) {  // a connection reset
    std::vector<Link*> open;
    for (auto& [key, l] : links_) {
      if (l.open) open.push_back(&l);
    }
    if (open.empty()) return;
    Link& l = *open[rng_.Uniform(open.size())];
    ++outcome_.stats.faults;
    Close(l.a, l.b, "connection reset", /*by_protocol=*/false);
  } else if (kind < 55) {
    if (cut_.empty()) Partition();
  } else if (kind < 75) {
    if (n.up) Crash(n, /*wipe=*/false);
  } else if (kind < 80) {
    // A wiped source restores from its peers (when they all run, so that what
    // they hold is known).
    bool all_up = true;
    for (auto& other : nodes_) all_up = all_up && other->up;
    if (all_up) Crash(n, /*wipe=*/true);
  } else if (kind < 90) {
    if (!n.up || n.env.fault() != SimEnv::Fault::kNone) return;
    const SimEnv::Fault f = rng_.Uniform(3) == 0   ? SimEnv::Fault::kTooManyFiles
                            : rng_.Uniform(2) == 0 ? SimEnv::Fault::kNoSpace
                                                   : SimEnv::Fault::kIoError;
    ++outcome_.stats.faults;
    Trace(n.id + " disk fault: " +
          (f == SimEnv::Fault::kNoSpace   ? "ENOSPC"
           : f == SimEnv::Fault::kIoError ? "EIO"
                                          : "EMFILE"));
    n.env.set_fault(f);
    // The fault clears; a journal that hit it is restarted by its supervisor.
    const uint64_t e = n.epoch;
    Node* np = &n;
    At(now() + 200 * kMs + static_cast<int64_t>(rng_.Uniform(2 * kSec)), [this, np, e] {
      np->env.set_fault(SimEnv::Fault::kNone);
      last_fault_healed_ = std::max(last_fault_healed_, now());
      if (!np->up || np->epoch != e) return;
      Trace(np->id + " disk fault cleared; restarted");
      Shut(*np);
      const uint64_t e2 = np->epoch;
      const int i = np->index;
      At(now() + 100 * kMs, [this, i, e2] { Restart(i, e2); });
    });
  } else {
    const int64_t jump =
        static_cast<int64_t>(rng_.Uniform(2 * 3600)) * kSec - 3600 * kSec;
    ++outcome_.stats.faults;
    Trace(Fmt("%s clock jumps %+" PRId64 " s", n.id.c_str(), jump / kSec));
    n.clock.Jump(jump);
  }
  last_fault_healed_ = std::max(last_fault_healed_, now());
}

void World::RunWakes() {
  for (int round = 0; round < 1000; ++round) {
    bool any = false;
    for (auto& n : nodes_) {
      if (n->up && n->wake.exchange(false)) {
        n->driver->Wake();
        any = true;
      }
    }
    if (!any) return;
  }
}

void World::Step(int64_t until) {
  while (!queue_.empty() && !failed()) {
    if (queue_.top().at > until) break;
    Ev ev = queue_.top();
    queue_.pop();
    now_ = ev.at;
    ++outcome_.stats.events;
    ev.fn();
    RunWakes();
    for (auto& n : nodes_) {
      if (!n->up) continue;
      const auto& e = n->driver->engine();
      if (e.snapshot_memory_held() > sync::SyncOptions().max_snapshot_memory_total) {
        Violation(n->id + " holds " + std::to_string(e.snapshot_memory_held()) +
                  " bytes of snapshot chunks, over the engine's limit");
      }
    }
  }
  now_ = std::max(now_.load(), until);
}

// Every node holds every device up to the head its source acknowledged.
// What the README tells an operator to do about a stalled replica (its peers
// deleted, by retention, events it lacks after its head, so the snapshot they
// send cannot be checked against its events): `cairn resync DEV`. Only after the
// faults, and counted: a run that needs it is one where retention let events go
// that a follower it did not know (or forgot in a crash) still lacked.
void World::Operator() {
  for (auto& n : nodes_) {
    if (!n->up || n->hostile) continue;
    for (const auto& [device, acks] : acked_) {
      if (n->driver->engine().Stalled(device).empty()) continue;
      ++outcome_.stats.resyncs;
      Trace(n->id + " operator: cairn resync " + device + " (" +
            n->driver->engine().Stalled(device) + ")");
      Status s = n->driver->Resync(device);
      if (!s.ok()) Trace(n->id + " resync refused: " + s.ToString());
    }
  }
}

// What a node that does not converge sees: where it follows the device, and
// what each of its peers stores of it and keeps for whom.
void World::Explain(int i, const std::string& device) {
  Node& n = *nodes_[i];
  if (!n.up) return;
  const auto& e = n.driver->engine();
  const std::string stalled = e.Stalled(device);
  Trace(Fmt("%s follows %s via '%s', peers report up to %" PRIu64 "%s%s", n.id.c_str(),
            device.c_str(), e.Via(device).c_str(), e.PeerLast(device),
            stalled.empty() ? "" : "; stalled: ", stalled.c_str()));
  for (auto& [key, l] : links_) {
    if (l.a != i && l.b != i) continue;
    Node& p = *nodes_[l.a == i ? l.b : l.a];
    if (!p.up) continue;
    auto s = p.journal->Stream(device);
    Trace(Fmt("  peer %s (%s): stores %" PRIu64 "..%" PRIu64 ", snapshot %" PRIu64 "; %s",
              p.id.c_str(), l.open ? "connected" : "not connected", s.ok() ? s->first : 0,
              s.ok() ? s->last : 0, s.ok() ? s->snapshot : 0,
              p.journal->RetentionState(device).c_str()));
  }
}

// The hostile node counts here (and in FinalChecks) for its own devices only:
// it stores honestly, but after a wipe it may hold the only copy of events
// their source then appends again, a fork no honest node sees.
bool World::Converged(std::string* lag) {
  lag->clear();
  lagging_.clear();
  for (auto& n : nodes_) {
    if (!n->up) {
      *lag = n->id + " is down";
      return false;
    }
    for (const auto& [device, acks] : acked_) {
      if (acks.empty()) continue;
      if (n->hostile && source_of_[device] != n->index) continue;  // its own only
      const uint64_t want = acks.rbegin()->first;
      auto s = n->journal->Stream(device);
      const uint64_t have = s.ok() ? s->last : 0;
      if (have < want) {
        if (lag->empty()) {
          *lag = Fmt("%s holds %s up to %" PRIu64 " of %" PRIu64, n->id.c_str(),
                     device.c_str(), have, want);
        }
        lagging_.emplace_back(n->index, device);
      }
    }
  }
  return lag->empty();
}

void World::FinalChecks() {
  for (const auto& [device, acks] : acked_) {
    Node& src = *nodes_[source_of_[device]];
    // Every acknowledged event is at its source, as it was appended.
    for (const auto& [seq, payload] : acks) {
      auto r = src.journal->Read(device, seq, 1);
      if (!r.ok() || r->empty() || (*r)[0].seq() != seq) {
        // Retention may have moved it into a snapshot: then the head covers it.
        auto s = src.journal->Stream(device);
        if (s.ok() && s->snapshot >= seq) continue;
        return Violation(Fmt("acknowledged seq %" PRIu64
                             " of %s is gone from its source %s",
                             seq, device.c_str(), src.id.c_str()));
      }
      if ((*r)[0].payload() != payload) {
        return Violation(Fmt("acknowledged seq %" PRIu64 " of %s changed at its source",
                             seq, device.c_str()));
      }
    }
    auto head = src.journal->Stream(device);
    if (!head.ok()) return Violation(src.id + " lost its own " + device);
    auto view = src.journal->KvList(device, "s", "", 1000);
    for (auto& n : nodes_) {
      if (n->hostile) continue;
      if (head->last == 0 && !n->journal->Stream(device).ok()) continue;  // nothing yet
      Status v = n->journal->Verify(device);
      if (!v.ok()) {
        return Violation(n->id + "'s copy of " + device +
                         " fails verification: " + v.ToString());
      }
      auto s = n->journal->Stream(device);
      if (!s.ok() || s->last != head->last || s->head_hash != head->head_hash) {
        return Violation(n->id + "'s copy of " + device +
                         " differs from its source's head");
      }
      auto kv = n->journal->KvList(device, "s", "", 1000);
      if (!kv.ok() || !view.ok() || *kv != *view) {
        return Violation(n->id + "'s view of " + device + " differs from its source's");
      }
    }
  }
  for (auto& n : nodes_) {
    if (!n->hostile && n->journal->ForkCount() > 0)
      return Violation(n->id + " recorded a fork; none was planted");
  }
  if (outcome_.stats.records_acked == 0) return Violation("nothing was acknowledged");
  if (outcome_.stats.messages == 0) return Violation("nothing was delivered");
  if (o_.faults && outcome_.stats.faults == 0) return Violation("no fault was given");
}

Outcome World::Go() {
  Setup();
  if (failed()) return outcome_;
  // The workload and the faults, drawn as they go.
  Every(500 * kMs, [this] {
    if (now() >= o_.run_us) return int64_t{-1};
    Append();
    return 20 * kMs + static_cast<int64_t>(rng_.Uniform(200 * kMs));
  });
  if (o_.faults) {
    Every(kSec, [this] {
      if (now() >= o_.run_us) return int64_t{-1};
      Fault();
      return 200 * kMs + static_cast<int64_t>(rng_.Uniform(2 * kSec));
    });
  }
  Step(o_.run_us);
  // Faults stop: partitions heal, crashed nodes come back (already scheduled).
  Heal();
  last_fault_healed_ = std::max(last_fault_healed_, now());
  std::string lag;
  const int64_t deadline = last_fault_healed_ + o_.settle_us;
  int64_t next_operator = now() + 10 * kSec;
  while (!failed()) {
    Step(now() + 100 * kMs);
    if (now() >= next_operator) {
      next_operator = now() + 10 * kSec;
      Operator();
    }
    if (Converged(&lag)) {
      outcome_.stats.converge_us = now() - last_fault_healed_;
      Trace(Fmt("converged %.3f s after the last fault healed",
                static_cast<double>(outcome_.stats.converge_us) / kSec));
      break;
    }
    if (now() > deadline) {
      for (size_t k = 0; k < lagging_.size() && k < 4; ++k)
        Explain(lagging_[k].first, lagging_[k].second);
      Violation(Fmt("not converged %.0f s after the last fault healed: ",
                    static_cast<double>(o_.settle_us) / kSec) +
                lag);
      break;
    }
  }
  if (!failed()) FinalChecks();
  outcome_.stats.sim_us = now();
  outcome_.trace_tail.assign(tail_.begin(), tail_.end());
  for (auto& n : nodes_) {
    if (n->up) Shut(*n);
  }
  return outcome_;
}

}  // namespace

Outcome Run(const Options& options) {
  World w(options);
  return w.Go();
}

}  // namespace cairn::sim
