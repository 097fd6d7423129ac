// Engine: serving subscriptions from our journal, and following devices through
// a peer (apply in order, one journal write at a time, credit granted back).
#include <algorithm>

#include "base/check.h"
#include "base/plant.h"
#include "sync/engine.h"

namespace cairn::sync {
namespace {

constexpr size_t kCheckedHeaders = 4;  // per follow, see Follow::checked

}  // namespace

// ---------------------------------------------------------------- serving

int64_t Engine::ClampCredit(uint64_t bytes) {
  return static_cast<int64_t>(std::min<uint64_t>(bytes, kMaxCreditBytes));
}

void Engine::OnSubscribe(const std::string& peer, const wire::Subscribe& s) {
  if (s.from() == 0 || !journal::ValidateDeviceId(s.device()).ok()) {
    return Close(peer, "malformed subscribe");
  }
  // Only what our catalogue offered: a subscription holds state (here and in
  // SyncNode's tap set), so one for a device we do not hold is a protocol error,
  // not an entry (a million of them once grew a node by 385 MB).
  if (!local_.count(s.device())) {
    return Close(peer,
                 "subscribed to '" + s.device() + "', which this node does not hold");
  }
  if (auto p = peers_.find(peer); p != peers_.end() && !MayRead(p->second, s.device())) {
    return Close(peer, "subscribed to '" + s.device() +
                           "', which its reader certificate does not let it read");
  }
  Serve& serve = peers_[peer].serving[s.device()];
  serve = Serve();  // a read still running for the one it replaces is dropped
  serve.generation = ++serve_generation_;
  serve.sub = s.sub();
  serve.next = s.from();
  serve.credit = ClampCredit(s.credit());
  serve.snapshot_sent = s.snapshot();  // it holds that one: only newer ones go
  Pump(peer, s.device());
}

// Starts the next journal read for a subscription when it has credit, the
// connection is below its high-water mark, no read is in flight and we hold
// something at or after the subscriber's next seq.
void Engine::Pump(const std::string& peer, const std::string& device) {
  auto p = peers_.find(peer);
  if (p == peers_.end()) return;
  auto it = p->second.serving.find(device);
  if (it == p->second.serving.end()) return;
  Serve& s = it->second;
  auto local = local_.find(device);
  if (s.reading || (s.credit <= 0 && !plant::On("ignore-credit")) ||
      local == local_.end() || high_water_(peer)) {
    return;
  }
  const journal::StreamInfo& info = local->second;
  // A snapshot taken here since the subscriber passed its seq travels too, so the
  // subscriber holds it as we do (its retention then decides about its events).
  // Events are served while we store them; the snapshot stands in only for
  // events that are gone here.
  const bool new_snapshot = info.snapshot > s.snapshot_sent && info.snapshot < s.next;
  const bool below_snapshot = s.next < info.first && s.next <= info.snapshot;
  const bool in_snapshot = s.snap_next != 0;
  if (!in_snapshot && !new_snapshot && !below_snapshot && s.next > info.last) {
    return;  // caught up
  }
  Action a;
  a.peer = peer;
  a.device = device;
  a.max_bytes =
      std::min<uint64_t>(static_cast<uint64_t>(s.credit), options_.read_chunk_bytes);
  a.generation = s.generation;
  if (in_snapshot || new_snapshot || below_snapshot) {
    // Snapshots are served a few chunks per read, within the credit and below
    // the connection's high-water mark like events: never queued whole.
    a.kind = Action::Kind::kReadSnapshot;
    a.snapshot_seq = in_snapshot ? s.snap_seq : 0;
    a.chunk = in_snapshot ? s.snap_next : 1;
  } else {
    a.kind = Action::Kind::kRead;
    a.from = s.next;
  }
  s.reading = true;
  actions_.push_back(std::move(a));
}

bool Engine::Serves(const std::string& device) const {
  for (const auto& [peer, p] : peers_) {
    if (p.serving.count(device)) return true;
  }
  return false;
}

// The live path: a subscriber that has everything before these records, has
// its stream header, no read in flight, room on its connection and credit for
// them, gets them as one Events message (the records end at a signature, as a
// read's chunk does). Anyone else is left to Pump.
void Engine::OnLocalRecords(const std::string& device,
                            std::vector<wire::Record> records) {
  if (records.empty()) return;
  const uint64_t first = records.front().seq();
  for (size_t i = 1; i < records.size(); ++i) {
    if (records[i].seq() != first + i) return;
  }
  auto local = local_.find(device);
  const uint64_t snapshot = local == local_.end() ? 0 : local->second.snapshot;
  std::optional<wire::Envelope> m;
  uint64_t bytes = 0;
  for (auto& [peer, p] : peers_) {
    auto it = p.serving.find(device);
    if (it == p.serving.end()) continue;
    Serve& s = it->second;
    if (s.reading || !s.header_sent || s.next != first || s.snap_next != 0) continue;
    if (snapshot > s.snapshot_sent && snapshot < s.next) continue;  // Pump sends it
    if (high_water_(peer)) continue;
    if (!m) {
      m.emplace();
      m->mutable_events()->set_device(device);
      for (const auto& r : records) *m->mutable_events()->add_records() = r;
      bytes = m->ByteSizeLong();
    }
    if (static_cast<int64_t>(bytes) > s.credit || bytes > options_.read_chunk_bytes)
      continue;
    s.next = records.back().seq() + 1;
    s.credit -= static_cast<int64_t>(bytes);
    records_served_ += records.size();
    wire::Envelope mine = *m;
    mine.mutable_events()->set_sub(s.sub);
    Send(peer, std::move(mine));
  }
}

void Engine::SendStreamHeader(const std::string& peer, const std::string& device,
                              Serve& s, const std::string& cert_der,
                              uint64_t restored_from, uint64_t truncated) {
  wire::Envelope h;
  h.mutable_stream_header()->set_device(device);
  h.mutable_stream_header()->set_device_cert(cert_der);
  h.mutable_stream_header()->set_restored_from(restored_from);
  h.mutable_stream_header()->set_truncated(truncated);
  h.mutable_stream_header()->set_sub(s.sub);
  Send(peer, std::move(h));
  s.header_sent = true;
}

// Sends one part of a snapshot transfer (see Pump) and returns its bytes. A part
// of another snapshot than the one in transfer (it was replaced meanwhile) starts
// the transfer over at its chunk 1, which the subscriber takes as a new snapshot.
uint64_t Engine::SendSnapshotPart(const std::string& peer, const std::string& device,
                                  Serve& s, const std::string& cert_der,
                                  const journal::SnapshotData& part) {
  const wire::SnapshotHeader& header = part.header;
  if (s.snap_next == 0 || header.seq() != s.snap_seq || part.first_chunk != s.snap_next) {
    CHECK(part.first_chunk == 1);
    // What we stored when the part was read (not local_, which may lag).
    const uint64_t first = part.first_stored;  // 0: not known
    const bool below = s.next <= header.seq();
    if (below && first != 0 && s.next >= first) {
      // A snapshot taken since this read was planned, at or beyond the seq the
      // subscriber reads next, while we still store the events from there: those
      // go instead (a replica could not check it against its events; a tail
      // would skip them).
      return 0;
    }
    s.snap_seq = header.seq();
    s.snap_next = 1;
    // Events up to its seq come as this snapshot when the subscriber is below it;
    // those below our first stored event will never come as events.
    SendStreamHeader(peer, device, s, cert_der, below ? header.seq() : 0,
                     below && first != 0 && s.next < first ? first - 1 : 0);
  }
  uint64_t sent = 0;
  auto send = [&](uint32_t index, const wire::SnapshotChunk* chunk) {
    wire::Envelope m;
    *m.mutable_snapshot()->mutable_header() = header;
    m.mutable_snapshot()->set_index(index);
    m.mutable_snapshot()->set_sub(s.sub);
    if (chunk) *m.mutable_snapshot()->mutable_chunk() = *chunk;
    sent += m.ByteSizeLong();
    Send(peer, std::move(m));
  };
  if (header.chunks() == 0) send(0, nullptr);  // an empty view: index 0 only
  const uint64_t budget = std::min<uint64_t>(
      static_cast<uint64_t>(std::max<int64_t>(s.credit, 0)), options_.read_chunk_bytes);
  for (size_t i = 0; i < part.chunks.size() && (i == 0 || sent < budget); ++i) {
    const uint32_t index = part.first_chunk + static_cast<uint32_t>(i);
    CHECK(index == s.snap_next && index <= header.chunks());
    send(index, &part.chunks[i]);
    ++s.snap_next;
  }
  if (header.chunks() == 0 || s.snap_next > header.chunks()) {  // the last chunk went
    s.next = std::max(s.next, header.seq() + 1);
    s.snapshot_sent = header.seq();
    s.snap_next = 0;
    s.snap_seq = 0;
  }
  return sent;
}

void Engine::OnReadDone(const std::string& peer, const std::string& device,
                        const std::string& cert_der, journal::Delivery d,
                        uint64_t generation) {
  auto p = peers_.find(peer);
  if (p == peers_.end()) return;
  auto it = p->second.serving.find(device);
  if (it == p->second.serving.end()) return;  // unsubscribed meanwhile
  Serve& s = it->second;
  if (s.generation != generation) return;  // read for a subscription since replaced
  s.reading = false;
  if (!d.status.ok()) {
    p->second.serving.erase(it);  // our own store failed; the subscriber re-plans
    return;
  }
  if (d.empty()) return;
  // Reads for many subscriptions of one peer run at once; those that complete
  // after others filled the connection are dropped (nothing advances) and read
  // again when it drains, so no send is ever refused for lack of room.
  if (high_water_(peer)) return;
  uint64_t sent = 0;
  if (d.snapshot) {
    // From a kReadSnapshot, or from a kRead that found a snapshot taken since
    // local_ was last told (then whole: only the first chunks within the credit
    // go now, the rest is read again from where they stop).
    sent += SendSnapshotPart(peer, device, s, cert_der, *d.snapshot);
    s.credit -= static_cast<int64_t>(sent);
    return Pump(peer, device);
  }
  if (!s.header_sent) SendStreamHeader(peer, device, s, cert_der, d.restored_from, 0);
  if (!d.records.empty()) {
    s.next = d.records.back().seq() + 1;
    records_served_ += d.records.size();
    wire::Envelope m;
    m.mutable_events()->set_device(device);
    m.mutable_events()->set_sub(s.sub);
    for (auto& r : d.records) *m.mutable_events()->add_records() = std::move(r);
    sent += m.ByteSizeLong();
    Send(peer, std::move(m));
  }
  // A read ends at a signed record, so it may overshoot the credit asked for: the
  // overshoot is a debt paid back by later grants, never written off. (Writing
  // it off grew the subscriber's window by every overshoot until an honest relay
  // was closed for sending "beyond the credit granted".)
  s.credit -= static_cast<int64_t>(sent);
  Pump(peer, device);
}

// ---------------------------------------------------------------- following

void Engine::OnStreamMessage(const std::string& peer, const std::string& device,
                             wire::Envelope&& m, uint64_t bytes) {
  auto it = following_.find(device);
  if (it == following_.end() || it->second.peer != peer) return;  // stale: we left
  Follow& f = it->second;
  // Sent for a subscription we have since replaced (0: a peer without ids).
  const uint64_t sub = m.has_events()     ? m.events().sub()
                       : m.has_snapshot() ? m.snapshot().sub()
                                          : m.stream_header().sub();
  if (sub != 0 && sub != f.sub) return;
  if (m.has_snapshot()) {
    switch (CheckSnapshotHeader(device, f, m.snapshot())) {
      case Header::kClosed:
        return;
      case Header::kHeld:
        // Not progress (a peer replaying a genuine old header is not "heard").
        return DropHeldSnapshot(device, f, m.snapshot().header().seq(), bytes);
      case Header::kOk:
        break;
    }
  }
  f.heard = true;
  if (m.has_stream_header()) {
    f.cert_der = m.stream_header().device_cert();
    return;
  }
  if (f.resync_from != 0) {
    const bool starts_there =
        m.has_snapshot() ||
        (m.events().records_size() > 0 && m.events().records(0).seq() == f.resync_from);
    if (!starts_there) return;  // sent before the probe
    f.resync_from = 0;
  }
  f.queued_bytes += bytes;
  if (f.queued_bytes > 2 * options_.initial_credit_bytes + options_.credit_slack_bytes) {
    return Close(peer, "sent '" + device + "' beyond the credit granted");
  }
  Queued q;
  q.bytes = bytes;
  if (m.has_snapshot()) {
    // Held as bytes from here on: a parsed chunk of many small entries takes
    // many times the bytes it came in.
    q.chunk = m.snapshot().chunk().SerializeAsString();
    m.mutable_snapshot()->clear_chunk();
    if (q.chunk.size() > journal::kMaxChunkWireBytes) {
      return Close(peer, "a snapshot chunk of '" + device + "' of " +
                             std::to_string(q.chunk.size()) +
                             " bytes, over the limit of " +
                             std::to_string(journal::kMaxChunkWireBytes));
    }
  }
  q.m = std::move(m);
  f.queue.push_back(std::move(q));
  ApplyNext(device);
}

// ---------------------------------------------------------------- assembly

Engine::Assembly::Assembly(AssemblyLedger* ledger, std::string peer,
                           const wire::SnapshotHeader& header, uint64_t stage_id)
    : ledger_(ledger), peer_(std::move(peer)), stage_id_(stage_id) {
  part_.header = header;
}

Engine::Assembly::~Assembly() {
  GiveBackMemory(hand_ + flight_);
  if (staged_ > 0) {
    ledger_->staged -= staged_;
    auto it = ledger_->staged_by_peer.find(peer_);
    CHECK(it != ledger_->staged_by_peer.end() && it->second >= staged_);
    it->second -= staged_;
    if (it->second == 0) ledger_->staged_by_peer.erase(it);
  }
  if (begun_ && !handed_over_) {
    ledger_->dropped.emplace_back(part_.header.device(), stage_id_);
  }
}

void Engine::Assembly::Add(std::string chunk) {
  const uint64_t memory = chunk.capacity() + sizeof(std::string);
  const uint64_t disk = chunk.size();
  part_.encoded_chunks.push_back(std::move(chunk));
  hand_ += memory;
  ledger_->memory += memory;
  ledger_->memory_by_peer[peer_] += memory;
  staged_ += disk;
  ledger_->staged += disk;
  ledger_->staged_by_peer[peer_] += disk;
}

journal::SnapshotData Engine::Assembly::TakePart(bool last) {
  journal::SnapshotData out;
  out.header = part_.header;
  out.first_chunk = part_.first_chunk;
  out.encoded_chunks = std::move(part_.encoded_chunks);
  part_.encoded_chunks.clear();
  part_.first_chunk += static_cast<uint32_t>(out.encoded_chunks.size());
  begun_ = true;
  flight_ += hand_;
  hand_ = 0;
  handed_over_ = last;
  return out;
}

void Engine::Assembly::PartDone() {
  GiveBackMemory(flight_);
  flight_ = 0;
}

void Engine::Assembly::GiveBackMemory(uint64_t n) {
  if (n == 0) return;
  ledger_->memory -= n;
  auto it = ledger_->memory_by_peer.find(peer_);
  CHECK(it != ledger_->memory_by_peer.end() && it->second >= n);
  it->second -= n;
  if (it->second == 0) ledger_->memory_by_peer.erase(it);
}

// A snapshot's header is checked when its first message arrives, before any of
// its chunks is held: a peer cannot make us keep chunks of a snapshot its device
// never signed. False when the peer was closed.
Engine::Header Engine::CheckSnapshotHeader(const std::string& device, Follow& f,
                                           const wire::Snapshot& s) {
  const wire::SnapshotHeader& h = s.header();
  if (h.device() != device) {
    Close(f.peer,
          "a snapshot header of '" + h.device() + "' in the stream of '" + device + "'");
    return Header::kClosed;
  }
  if (!header_check_) return Header::kOk;
  bool checked = false;
  for (const auto& [seq, sig] : f.checked)
    checked = checked || (seq == h.seq() && sig == h.sig());
  if (!checked) {
    Status st = header_check_(f.cert_der, h);
    // The journal checked its signature first: a genuine header of a snapshot
    // it holds (or an older one). An honest server sends one when ours came
    // through another peer while its own was on the way: dropped, not closed.
    if (st.code() == Status::Code::kStale) return Header::kHeld;
    if (!st.ok()) {
      Close(f.peer, "refused a snapshot header: " + st.message());
      return Header::kClosed;
    }
    f.checked.emplace_back(h.seq(), h.sig());
    if (f.checked.size() > kCheckedHeaders) f.checked.pop_front();
  }
  // Checked before, and installed since (local_ may lag the journal by a loop
  // turn: then the journal's answer above says so).
  return h.seq() <= LocalSnapshot(device) ? Header::kHeld : Header::kOk;
}

void Engine::DropHeldSnapshot(const std::string& device, Follow& f, uint64_t seq,
                              uint64_t bytes) {
  // What was assembled of it goes too (its memory and staging are given back).
  if (f.assembling && f.assembling->header().seq() <= seq) f.assembling.reset();
  OweCredit(device, f, bytes);
}

bool Engine::OverLimit(const std::string& peer, const std::string& device, uint64_t held,
                       uint64_t max, const std::string& of) {
  if (held <= max) return false;
  Close(peer, "snapshot of '" + device + "': " + std::to_string(held) + " bytes " + of +
                  ", over the limit of " + std::to_string(max));
  return true;
}

// Over the node's limit, the peer holding the most goes, not merely the one whose
// chunk came last (two peers parked on half-sent snapshots would otherwise shut
// out every honest one after them). Another peer is closed once this message is
// done (TakeActions): closing it now would replan follows under our feet.
bool Engine::CloseLargest(const std::map<std::string, uint64_t>& by_peer, uint64_t total,
                          uint64_t max, const std::string& what,
                          const std::string& peer) {
  auto most =
      std::max_element(by_peer.begin(), by_peer.end(),
                       [](const auto& x, const auto& y) { return x.second < y.second; });
  const std::string largest = most->first;
  std::string reason = "snapshots from " + largest + " hold " +
                       std::to_string(most->second) + " bytes " + what +
                       ", the most while this node holds " + std::to_string(total) +
                       ", over its limit of " + std::to_string(max);
  if (largest == peer) {
    Close(largest, reason);
    return true;
  }
  deferred_closes_.emplace_back(largest, std::move(reason));
  return false;
}

// Collects a snapshot chunk. Chunks are staged in parts of stage_part_bytes: in
// memory only the part in hand (and one on its way to disk, as a follow has one
// journal write in flight at a time).
Engine::Took Engine::TakeSnapshotChunk(const std::string& device, Follow& f,
                                       const wire::Snapshot& s, std::string chunk) {
  if (!f.assembling || f.assembling->header().seq() != s.header().seq()) {
    f.assembling =
        std::make_unique<Assembly>(&ledger_, f.peer, s.header(), ++next_stage_);
  }
  Assembly& a = *f.assembling;
  if (s.index() > 0) {
    if (s.index() != a.chunks() + 1 || s.index() > s.header().chunks()) {
      Close(f.peer, "snapshot chunks of '" + device + "' out of order");
      return Took::kClosed;
    }
    a.Add(std::move(chunk));
  }
  const auto mem = ledger_.memory_by_peer.find(f.peer);
  if (OverLimit(f.peer, device, a.staged(), options_.max_snapshot_bytes, "for it") ||
      (mem != ledger_.memory_by_peer.end() &&
       OverLimit(f.peer, device, mem->second, options_.max_snapshot_memory_per_peer,
                 "in memory for snapshots from " + f.peer))) {
    return Took::kClosed;
  }
  if (ledger_.memory > options_.max_snapshot_memory_total &&
      CloseLargest(ledger_.memory_by_peer, ledger_.memory,
                   options_.max_snapshot_memory_total, "in memory", f.peer)) {
    return Took::kClosed;
  }
  if (ledger_.staged > options_.max_staged_bytes_total &&
      CloseLargest(ledger_.staged_by_peer, ledger_.staged,
                   options_.max_staged_bytes_total, "staged on disk", f.peer)) {
    return Took::kClosed;
  }
  if (a.chunks() == s.header().chunks()) return Took::kComplete;
  return a.in_hand() >= options_.stage_part_bytes ? Took::kStage : Took::kHeld;
}

// Moves the records out of an Events message (the message is ours to empty).
void Engine::TakeRecords(wire::Envelope& m, std::vector<wire::Record>* out) {
  auto* records = m.mutable_events()->mutable_records();
  out->reserve(out->size() + static_cast<size_t>(records->size()));
  for (auto& r : *records) out->push_back(std::move(r));
}

// Events messages that queued up behind a journal write go into the next write
// with the first one: one write and one signature check (the newest; the chain
// ties the records before it) instead of one per message. This is what lets a
// subscriber that fell behind live catch up instead of falling further behind.
// `batch`: the bytes of the first. Bounded by read_chunk_bytes; returns the bytes
// taken (credit to grant back).
uint64_t Engine::TakeQueuedEvents(Follow& f, uint64_t batch,
                                  std::vector<wire::Record>* records) {
  uint64_t taken = 0;
  while (!f.queue.empty() && f.queue.front().m.has_events()) {
    const uint64_t bytes = f.queue.front().bytes;
    if (batch + bytes > options_.read_chunk_bytes) break;
    Queued q = std::move(f.queue.front());
    f.queue.pop_front();
    f.queued_bytes -= std::min(f.queued_bytes, bytes);
    TakeRecords(q.m, records);
    batch += bytes;
    taken += bytes;
  }
  return taken;
}

void Engine::ApplyNext(const std::string& device) {
  auto it = following_.find(device);
  if (it == following_.end()) return;
  Follow& f = it->second;
  uint64_t credit = 0;
  while (!f.applying && !f.queue.empty()) {
    Queued q = std::move(f.queue.front());
    f.queue.pop_front();
    const uint64_t bytes = q.bytes;
    f.queued_bytes -= std::min(f.queued_bytes, bytes);
    credit += bytes;
    Action a;
    a.peer = f.peer;
    a.device = device;
    a.cert_der = f.cert_der;
    if (q.m.has_events()) {
      a.kind = Action::Kind::kApply;
      TakeRecords(q.m, &a.records);
      credit += TakeQueuedEvents(f, bytes, &a.records);
    } else if (q.m.snapshot().header().seq() <= LocalSnapshot(device)) {
      // Installed while this waited behind the install (from another peer).
      DropHeldSnapshot(device, f, q.m.snapshot().header().seq(), credit);
      credit = 0;
      continue;
    } else {
      const std::string peer = f.peer;
      const Took took = TakeSnapshotChunk(device, f, q.m.snapshot(), std::move(q.chunk));
      if (took == Took::kClosed || took == Took::kHeld) {
        if (!peers_.count(peer)) return;  // closed
        // Held for the snapshot, bounded by the snapshot limits: its bytes are
        // owed now, or a snapshot bigger than the credit would stall the stream.
        OweCredit(device, f, credit);
        credit = 0;
        continue;
      }
      // A part to stage, or the last one with the install: its credit comes back
      // once it is on disk, which paces the peer to the disk.
      const bool last = took == Took::kComplete;
      a.kind = last ? Action::Kind::kInstall : Action::Kind::kStage;
      a.snapshot = f.assembling->TakePart(last);
      a.stage_id = f.assembling->stage_id();
      if (last) f.installing = std::move(f.assembling);
    }
    a.credit = credit;
    f.applying = true;
    actions_.push_back(std::move(a));
  }
}

// Records that do not follow our head are forged, or the source wrote another
// history below them (a restored source that could not catch up first). Asking
// the peer once more from the first seq we hold lets the journal compare the two
// histories where they part: a fork is then proven and kept, a forgery refused.
void Engine::Probe(const std::string& device, const std::string& peer) {
  probed_.insert({device, peer});
  Follow& f = following_.at(device);
  f.queue.clear();
  f.queued_bytes = 0;
  f.credit_owed = 0;  // the new Subscribe grants its own
  f.assembling.reset();
  const wire::CatalogueEntry local = LocalEntry(device);
  f.resync_from = std::max<uint64_t>(1, local.first());
  f.sub = ++next_sub_;
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device(device);
  sub.mutable_subscribe()->set_sub(f.sub);
  sub.mutable_subscribe()->set_from(f.resync_from);
  sub.mutable_subscribe()->set_credit(options_.initial_credit_bytes);
  sub.mutable_subscribe()->set_snapshot(LocalSnapshot(device));
  Send(peer, std::move(sub));
}

// Bytes received on f's subscription and taken off its queue (applied, or held
// for a snapshot) are owed back as credit: granted once a batch is owed, so at
// live rates one Credit message stands for many writes. Never more than half
// the initial credit is held back, so the server always has the other half.
void Engine::OweCredit(const std::string& device, Follow& f, uint64_t bytes) {
  f.credit_owed += bytes;
  if (f.credit_owed == 0 || f.credit_owed < std::min(options_.credit_batch_bytes,
                                                     options_.initial_credit_bytes / 2)) {
    return;
  }
  wire::Envelope c;
  c.mutable_credit()->set_device(device);
  c.mutable_credit()->set_bytes(f.credit_owed);
  c.mutable_credit()->set_sub(f.sub);
  f.credit_owed = 0;
  Send(f.peer, std::move(c));
}

bool Engine::IsLocalFailure(const Status& s) {
  return s.code() == Status::Code::kIOError || s.code() == Status::Code::kUnavailable ||
         s.code() == Status::Code::kUnknownOutcome;
}

void Engine::RetryPaused() {
  ++interest_clock_;
  if (rtt_replan_pending_ && interest_clock_ - rtt_replanned_at_ >= RttReplanTicks()) {
    rtt_replan_pending_ = false;
    rtt_replanned_at_ = interest_clock_;
    Replan();
  }
  // Catalogues cut short by the scan bound or waiting for a restart (their
  // interest changed twice in a second) go on.
  std::vector<std::string> pump;
  for (auto& [peer, p] : peers_) {
    if (p.restart_pending) {
      RestartCatalogue(peer, p);
    } else if (p.sending_after && !high_water_(peer)) {
      pump.push_back(peer);
    }
  }
  for (const auto& peer : pump) PumpCatalogue(peer);
  if (forget_failed_) {
    forget_failed_ = false;
    ForgetUnwanted();
  }
  std::set<std::string> retry;
  for (auto& [device, p] : paused_) {
    if (p.wait > 0 && --p.wait == 0) retry.insert(device);
  }
  if (!retry.empty()) Replan(&retry);
}

void Engine::OnApplyDone(const std::string& peer, const std::string& device,
                         const Status& status, uint64_t credit) {
  auto it = following_.find(device);
  if (it == following_.end()) return;
  Follow& f = it->second;
  f.applying = false;
  f.installing.reset();  // a snapshot's bytes are free once its install is done
  if (f.assembling) f.assembling->PartDone();                    // a part staged
  if (f.stale_apply || f.peer != peer || !peers_.count(peer)) {  // we moved on
    f.stale_apply = false;
    if (!peers_.count(f.peer)) {
      following_.erase(it);
      // Left while this ran (interest narrowed): its delete waited for it.
      if (local_.count(device) && !WantedLocal(device)) ForgetUnwanted();
      return Replan();
    }
    return ApplyNext(device);
  }
  if (status.code() == Status::Code::kFork) {
    if (std::string source = SourcePeer(device); !source.empty()) {
      Action a;  // fork proofs travel back to the source
      a.kind = Action::Kind::kNotifyFork;
      a.peer = source;
      a.device = device;
      actions_.push_back(std::move(a));
    }
    forked_.insert({device, peer});  // keep ours, stop following theirs
    following_.erase(it);
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    Send(peer, std::move(un));
    return Replan();
  }
  if (status.code() == Status::Code::kDiverged && !probed_.count({device, peer})) {
    return Probe(device, peer);
  }
  if (status.code() == Status::Code::kGap) {
    // Its snapshot is beyond our head and cannot be checked against what we hold
    // (the journal kept ours): follow through a peer that still has the events,
    // or wait for the operator (`cairn resync`). Not the peer's fault.
    gapped_.insert({device, peer});
    following_.erase(it);
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    Send(peer, std::move(un));
    return Replan();
  }
  if (IsLocalFailure(status)) {
    // Our own disk or journal failed, not the peer: keep the connection, leave
    // the subscription and follow the device again on the next RetryPaused.
    following_.erase(it);
    Paused& p = paused_[device];
    p.wait = 1 << std::min(p.failures++, 6);
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    return Send(peer, std::move(un));
  }
  if (!status.ok()) {
    return Close(peer, "refused '" + device + "' from this peer: " + status.ToString());
  }
  paused_.erase(device);  // applies work again
  OweCredit(device, f, credit);
  ApplyNext(device);
  if (guarded_.count(device)) CheckGuard();
}

}  // namespace cairn::sync
