// The journal's replication input under arbitrary bytes: the record verifier
// (Journal::Apply) and the snapshot path (the sync Engine assembling Snapshot
// messages into Journal::InstallSnapshot). Both run against a fresh replica on an
// in-memory LevelDB that already holds a prefix of the genuine stream of the
// fixed device (fuzz_fixture.h).
//
// The property both check: whatever arrives, the replica only ever holds the
// genuine stream, a prefix of it, or one of its genuine snapshots, and it still
// verifies end to end. Only the device key can sign, and the fuzzer has none.
#include <string>

#include "base/check.h"
#include "fuzz_entries.h"
#include "fuzz_fixture.h"
#include "sync/engine.h"

namespace cairn::fuzz {
namespace {

constexpr size_t kMaxFrames = 16;

// The certificate a peer would send with its stream, picked by `mode`.
const std::string& CertFor(uint8_t mode) {
  static const std::string garbage = "not a certificate";
  static const std::string none;
  const Fixture& f = Fixture::Get();
  switch (mode % 5) {
    case 0:
      return f.cert_der;
    case 1:
      return none;  // "the stream is known": only works once something is stored
    case 2:
      return f.other_cert_der;
    case 3:
      return f.stranger_cert_der;
    default:
      return garbage;
  }
}

// Prefills the replica with the first `n` genuine records (n <= 25).
void Prefill(journal::Journal& j, size_t n) {
  const Fixture& f = Fixture::Get();
  if (n == 0) return;
  std::vector<wire::Record> head(f.records.begin(), f.records.begin() + n);
  auto out = j.Apply(kFuzzDevice, f.cert_der, std::move(head));
  CHECK(out.ok()) << out.status().ToString();
}

// Everything the replica holds of fz-dev is genuine, and it verifies.
void CheckGenuine(journal::Journal& j) {
  const Fixture& f = Fixture::Get();
  auto info = j.Stream(kFuzzDevice);
  if (!info.ok()) {
    CHECK(j.Catalogue().empty()) << "a stream that cannot be read";
    return;
  }
  CHECK(info->last <= f.records.size()) << "the replica holds more than was signed";
  if (info->last > 0 && info->last > info->snapshot) {
    CHECK(info->head_hash == f.records[info->last - 1].hash()) << "a forged head";
  }
  if (info->snapshot > 0) {
    auto snap = j.ReadSnapshot(kFuzzDevice);
    CHECK(snap.ok()) << snap.status().ToString();
    const std::string header = snap->header.SerializeAsString();
    CHECK(header == f.snapshot_a.header.SerializeAsString() ||
          header == f.snapshot_b.header.SerializeAsString())
        << "a snapshot the device never signed";
  }
  auto stored = j.Read(kFuzzDevice, info->first, 100);
  if (stored.ok()) {
    for (const auto& r : *stored) {
      CHECK(r.seq() >= 1 && r.seq() <= f.records.size());
      CHECK(r.hash() == f.records[r.seq() - 1].hash()) << "a forged record stored";
    }
  }
  Status v = j.Verify(kFuzzDevice);
  CHECK(v.ok()) << v.ToString();
  for (const auto& s : j.Catalogue()) {
    CHECK(s.device == kFuzzDevice) << "stored a stream of another device";
  }
}

}  // namespace

// data[0]: the genuine prefix the replica holds (low 5 bits, 0..25); data[1]: the
// certificate sent along. Then frames, each an Events message applied as is.
int FuzzRecords(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Fixture& f = Fixture::Get();
  Replica replica;
  Prefill(*replica, std::min<size_t>(data[0] & 31, f.records.size()));
  const std::string& cert = CertFor(data[1]);
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  for (std::string_view frame : SplitFrames(rest, kMaxFrames)) {
    wire::Events events;
    if (!events.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) continue;
    std::vector<wire::Record> records(events.records().begin(), events.records().end());
    auto out = replica->Apply(events.device(), cert, std::move(records));
    if (out.ok()) CHECK(out->last <= f.records.size());
  }
  CheckGenuine(*replica);
  return 0;
}

namespace {

// Plays the sync engine of the replica, following fz-dev through peer "p", and
// runs what it asks of the journal at once.
class SnapshotDriver {
 public:
  explicit SnapshotDriver(journal::Journal* j) : j_(j) {
    engine_.SetLocal(j_->Catalogue());
    engine_.OnPeerActive("p");
    wire::Envelope c;
    auto* e = c.mutable_catalogue()->add_entries();
    c.mutable_catalogue()->set_full(true);
    e->set_device(kFuzzDevice);
    e->set_first(26);
    e->set_last(25);
    e->set_snapshot(25);
    e->set_source(true);
    Deliver(c);
  }
  bool open() const { return open_; }
  void Deliver(const wire::Envelope& m) {
    engine_.OnMessage("p", m);
    Run();
  }

 private:
  void Run() {
    for (int round = 0; round < 64; ++round) {
      std::vector<sync::Action> actions = engine_.TakeActions();
      if (actions.empty()) return;
      for (auto& a : actions) Perform(a);
    }
  }
  void Perform(sync::Action& a) {
    using Kind = sync::Action::Kind;
    if (a.kind == Kind::kClose) {
      CHECK(!a.reason.empty()) << "a close without a reason";
      open_ = false;
    } else if (a.kind == Kind::kStage) {
      engine_.OnApplyDone(a.peer, a.device,
                          j_->StageSnapshot(a.stage_id, std::move(a.snapshot)), a.credit);
    } else if (a.kind == Kind::kDropStage) {
      j_->DropStaged(a.device, a.stage_id);
    } else if (a.kind == Kind::kInstall) {
      auto r = j_->InstallSnapshot(a.cert_der, std::move(a.snapshot), a.stage_id);
      if (r.ok()) engine_.OnLocalChange(*j_->Stream(a.device));
      engine_.OnApplyDone(a.peer, a.device, r.status(), a.credit);
    } else if (a.kind == Kind::kApply) {
      auto r = j_->Apply(a.device, a.cert_der, std::move(a.records));
      if (r.ok()) engine_.OnLocalChange(*j_->Stream(a.device));
      engine_.OnApplyDone(a.peer, a.device, r.status(), a.credit);
    }
  }

  journal::Journal* j_;
  sync::Engine engine_;
  bool open_ = true;
};

}  // namespace

// data[0]: the genuine prefix held (0..25); data[1]: the certificate in the
// StreamHeader. Then frames, each a Snapshot message from the peer.
int FuzzSnapshot(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Replica replica;
  Prefill(*replica, std::min<size_t>(data[0] & 31, Fixture::Get().records.size()));
  SnapshotDriver driver(&*replica);
  wire::Envelope header;
  header.mutable_stream_header()->set_device(kFuzzDevice);
  header.mutable_stream_header()->set_device_cert(CertFor(data[1]));
  driver.Deliver(header);
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  for (std::string_view frame : SplitFrames(rest, kMaxFrames)) {
    if (!driver.open()) break;
    wire::Envelope m;
    if (!m.mutable_snapshot()->ParseFromArray(frame.data(),
                                              static_cast<int>(frame.size())))
      continue;
    driver.Deliver(m);
  }
  CheckGenuine(*replica);
  return 0;
}

}  // namespace cairn::fuzz
