// Every peer message a node parses from the network, through the code that
// handles it: the discovery core (hello, ping, pong, goodbye, peer exchange, and
// anything out of order) and the sync engine (catalogue, subscribe, unsubscribe,
// credit, stream header, snapshot, events), wired the way discovery_uv.cc and
// sync_uv.cc wire them, on a manual clock. Journal work the engine asks for
// completes at once with success, so the engine goes as deep as it can.
#include <string>

#include "base/check.h"
#include "base/rng.h"
#include "discovery/peer_manager.h"
#include "fuzz_entries.h"
#include "fuzz_fixture.h"
#include "sync/engine.h"
#include "testutil/manual_clock.h"

namespace cairn::fuzz {
namespace {

constexpr size_t kMaxFrames = 32;
constexpr char kPeer[] = "p";

class PeerDriver {
 public:
  explicit PeerDriver(uint8_t mode)
      : clock_(1'700'000'000'000'000),
        rng_(mode),
        pm_("self", "127.0.0.1:7411", Options(), &clock_, &rng_) {
    journal::StreamInfo mine;
    mine.device = "self";
    mine.first = 1;
    mine.last = 40;
    mine.source = true;
    journal::StreamInfo relayed;
    relayed.device = kFuzzDevice;
    relayed.first = 1;
    relayed.last = mode & 31;
    engine_.SetLocal({mine, relayed});
    conn_ = pm_.OnIncomingOpened(kPeer, "127.0.0.1:50000");
    Run();
  }

  void Deliver(wire::Envelope&& m, uint8_t advance_ms) {
    if (closed_) return;
    clock_.Advance(int64_t{advance_ms} * 1000);
    pm_.OnTimer();
    pm_.OnMessage(conn_, std::move(m));
    Run();
  }
  bool closed() const { return closed_; }

 private:
  static discovery::Options Options() {
    discovery::Options o;
    o.ping_interval_ms = 100;
    o.dead_interval_ms = 300;
    return o;
  }

  // Performs what both cores ask, until neither asks anything (bounded).
  void Run() {
    for (int round = 0; round < 64; ++round) {
      std::vector<discovery::Action> d = pm_.TakeActions();
      for (auto& a : d) Discovery(a);
      std::vector<sync::Action> s = engine_.TakeActions();
      for (auto& a : s) Sync(a);
      if (d.empty() && s.empty()) return;
    }
  }

  void Discovery(discovery::Action& a) {
    using Kind = discovery::Action::Kind;
    switch (a.kind) {
      case Kind::kClose:
        CHECK(!a.reason.empty()) << "discovery closed a connection without a reason";
        if (a.conn == conn_) closed_ = true;
        pm_.OnClosed(a.conn, a.reason);
        break;
      case Kind::kConnect:
        pm_.OnClosed(a.conn, "network: refused");  // no dialling in a fuzz run
        break;
      case Kind::kPeerActive:
        CHECK(a.node_id == kPeer) << "active as " << a.node_id;
        engine_.OnPeerActive(a.node_id);
        break;
      case Kind::kPeerGone:
        engine_.OnPeerGone(a.node_id);
        break;
      case Kind::kDeliver:
        engine_.OnMessage(a.node_id, a.envelope);
        engine_.Flush();
        break;
      default:
        break;
    }
  }

  void Sync(sync::Action& a) {
    using Kind = sync::Action::Kind;
    switch (a.kind) {
      case Kind::kClose:
        CHECK(!a.reason.empty()) << "sync closed a peer without a reason";
        if (auto c = pm_.ActiveConnection(a.peer)) {
          closed_ = closed_ || *c == conn_;
          pm_.OnClosed(*c, "local: " + a.reason);
        }
        break;
      case Kind::kRead:
      case Kind::kReadSnapshot:
        engine_.OnReadDone(a.peer, a.device, "", journal::Delivery{}, a.generation);
        break;
      case Kind::kApply:
      case Kind::kStage:
      case Kind::kInstall:
        engine_.OnApplyDone(a.peer, a.device, Status::Ok(), a.credit);
        break;
      default:
        break;
    }
  }

  testutil::ManualClock clock_;
  Rng rng_;
  discovery::PeerManager pm_;
  sync::Engine engine_;
  discovery::ConnId conn_ = 0;
  bool closed_ = false;
};

}  // namespace

// data[0]: the mode (the jitter seed, and how much of fz-dev this node holds);
// then frames, each an Envelope from peer "p" on an accepted connection. Before
// each one the clock moves by (its first byte & 63) ms, so timers fire too.
int FuzzPeerMessages(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  PeerDriver driver(data[0]);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (std::string_view frame : SplitFrames(rest, kMaxFrames)) {
    if (driver.closed()) break;
    wire::Envelope m;
    if (!m.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) break;
    const uint8_t advance = frame.empty() ? 0 : static_cast<uint8_t>(frame[0]) & 63;
    driver.Deliver(std::move(m), advance);
  }
  return 0;
}

}  // namespace cairn::fuzz
