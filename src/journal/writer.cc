// The writer thread: every mutation of the journal, in order. Consecutive appends
// are group-committed: one WriteBatch, one fsync, one signature per device.
#include <cstring>
#include <future>

#include "base/bytes.h"
#include "base/plant.h"
#include "journal/chain.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::Group;
using internal::kTailRoom;
using internal::Op;
using internal::PendingRecord;
using internal::PreparedEvent;

namespace internal {

// Records are encoded by hand, field by field, exactly as protobuf would encode
// wire::Record: this runs once per event on the hot path, and protobuf's setters
// would copy every payload into a message first.
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytesField(std::string* out, uint32_t field, std::string_view bytes) {
  if (bytes.empty()) return;  // proto3 leaves empty fields out
  PutVarint(out, (field << 3) | 2);
  PutVarint(out, bytes.size());
  out->append(bytes);
}

void EncodeBody(int64_t time_us, std::string_view type, std::string_view payload,
                std::string* out) {
  if (time_us != 0) {
    PutVarint(out, (wire::Record::kTimeUsFieldNumber << 3) | 0);
    PutVarint(out, static_cast<uint64_t>(time_us));
  }
  PutBytesField(out, wire::Record::kTypeFieldNumber, type);
  PutBytesField(out, wire::Record::kPayloadFieldNumber, payload);
}

PendingRecord ToPending(wire::Record&& r, Group& group) {
  PendingRecord p;
  p.seq = r.seq();
  p.time_us = r.time_us();
  CHECK(r.hash().size() == p.hash.size());
  std::copy(r.hash().begin(), r.hash().end(), p.hash.begin());
  p.sig = std::move(*r.mutable_sig());
  std::string& body = group.owned_bodies.emplace_back();
  EncodeBody(r.time_us(), r.type(), r.payload(), &body);
  p.body_size = body.size();
  body.resize(body.size() + kTailRoom);
  p.body = body.data();
  return p;
}

void EncodeGroup(Group& group) {
  std::string tail, key;
  for (auto& [device, records] : group.records) {
    const std::string prefix = layout::EventPrefix(device);
    uint64_t bytes = 0;
    for (auto& r : records) {
      tail.clear();
      PutVarint(&tail, (wire::Record::kSeqFieldNumber << 3) | 0);
      PutVarint(&tail, r.seq);
      PutBytesField(&tail, wire::Record::kHashFieldNumber,
                    std::string_view(r.hash.data(), r.hash.size()));
      PutBytesField(&tail, wire::Record::kSigFieldNumber, r.sig);
      CHECK(tail.size() <= kTailRoom);
      std::memcpy(r.body + r.body_size, tail.data(), tail.size());
      key = prefix;
      PutU64BE(&key, r.seq);
      r.value_size = r.body_size + tail.size();
      group.batch.Put(key, leveldb::Slice(r.body, r.value_size));
      bytes += key.size() + r.value_size;
    }
    if (auto m = group.metas.find(device); m != group.metas.end()) {
      m->second.set_event_bytes(m->second.event_bytes() + bytes);
    }
  }
  for (const auto& [device, meta] : group.metas) {
    group.batch.Put(layout::MetaKey(device), meta.SerializeAsString());
  }
  group.kv.Flush(&group.batch);
}

}  // namespace internal

namespace {

Status ValidateEvent(const NewEvent& e) {
  if (e.type.empty() || e.type.size() > kMaxTypeBytes) {
    return Status::InvalidArgument("type must be 1 to 64 bytes");
  }
  if (e.payload.size() > kMaxPayloadBytes) {
    return Status::InvalidArgument("payload of " + std::to_string(e.payload.size()) +
                                   " bytes exceeds the limit of 1 MiB");
  }
  return Status::Ok();
}

// Validates, digests and encodes events on the caller's thread, into one buffer.
Status Prepare(const std::string& device, const std::vector<NewEvent>& events,
               int64_t time_us, bool refuse_bad_kv, internal::Op* op) {
  if (events.empty()) return Status::InvalidArgument("append of no events");
  if (events.size() > kMaxEventsPerAppend) {
    return Status::InvalidArgument("append of " + std::to_string(events.size()) +
                                   " events exceeds the limit of " +
                                   std::to_string(kMaxEventsPerAppend));
  }
  size_t total = 0;
  for (const NewEvent& e : events)
    total += e.type.size() + e.payload.size() + 24 + kTailRoom;
  op->bodies.reserve(total);
  op->events.resize(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const NewEvent& e = events[i];
    auto where = [&] { return "event " + std::to_string(i) + " for '" + device + "'"; };
    Status valid = ValidateEvent(e);
    if (!valid.ok()) return valid.WithContext(where());
    PreparedEvent& p = op->events[i];
    if (IsKvType(e.type)) {
      Result<KvOp> kv = ParseKvOp(e.type, e.payload);
      if (kv.ok()) {
        p.kv = std::move(*kv);
      } else if (refuse_bad_kv) {
        return kv.status().WithContext(where());
      }
    }
    p.time_us = time_us;
    ContentDigest(device, time_us, e.type, e.payload, p.content.data());
    p.body_offset = op->bodies.size();
    internal::EncodeBody(time_us, e.type, e.payload, &op->bodies);
    p.body_size = op->bodies.size() - p.body_offset;
    op->bodies.append(kTailRoom, '\0');
  }
  op->bytes = op->bodies.size();
  return Status::Ok();
}

// LevelDB opens files (a new log, a table) before it appends a batch to its log;
// running out of descriptors there means this batch was not written at all, so
// the group fails and the journal goes on. Any other failure may have left the
// batch in the log (it would come back on reopen): its outcome is unknown and
// the journal stops taking appends (poisoned_) until a restart.
bool FailedBeforeWriting(const Status& s) {
  const std::string& m = s.message();
  return m.find("Too many open files") != std::string::npos;
}

}  // namespace

Result<SeqRange> Journal::Append(std::string_view device, std::vector<NewEvent> events) {
  std::promise<Result<SeqRange>> done;
  auto f = done.get_future();
  StartAppend(
      std::string(device), std::move(events),
      [&done](Result<SeqRange> r) { done.set_value(std::move(r)); }, true);
  return f.get();
}

void Journal::AppendAsync(std::string device, std::vector<NewEvent> events,
                          AppendCallback done) {
  StartAppend(std::move(device), std::move(events), std::move(done), false);
}

void Journal::StartAppend(std::string device, std::vector<NewEvent> events,
                          AppendCallback done, bool may_write_here) {
  if (!signers_.count(device)) {
    done(Status::PermissionDenied("this node does not hold the key of device '" + device +
                                  "'"));
    return;
  }
  const int64_t now_us = options_.clock->NowMicros();
  if (Status valid = signers_.at(device)->public_key()->ValidAt(now_us); !valid.ok()) {
    done(Status::FailedPrecondition(
        "cannot sign events of '" + device + "': " + valid.message() +
        "; renew it with certs/renew.sh (the key stays) and restart cairnd"));
    return;
  }
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kAppend;
  Status prepared = Prepare(device, events, now_us, options_.refuse_bad_kv, op.get());
  if (!prepared.ok()) {
    done(prepared);
    return;
  }
  op->device = std::move(device);
  op->on_append = std::move(done);
  Submit(std::move(op), may_write_here);
}

// A caller that blocks for its result anyway writes the group itself when no
// one else is writing (as LevelDB's own writers do): waking the writer thread
// and being woken again costs more than a small append on these machines.
void Journal::Submit(std::unique_ptr<Op> op, bool may_write_here) {
  std::unique_lock<std::mutex> l(mu_);
  if (stopping_) {
    l.unlock();
    const Status closing = Status::Unavailable("journal is shutting down");
    if (op->on_append) op->on_append(closing);
    if (op->on_apply) op->on_apply(closing);
    if (op->on_seq) op->on_seq(closing);
    return;
  }
  if (op->kind == Op::Kind::kAppend && held_.count(op->device)) {
    l.unlock();
    op->on_append(GuardRefusal(op->device));
    return;
  }
  queue_.push_back(std::move(op));
  if (may_write_here && !writing_) {
    WriteNextGroup(l);
  } else {
    queue_cv_.notify_one();
  }
}

void Journal::HoldAppends(const std::string& device) {
  std::lock_guard<std::mutex> l(mu_);
  if (signers_.count(device)) held_.insert(device);
}

void Journal::ReleaseAppends(const std::string& device) {
  std::lock_guard<std::mutex> l(mu_);
  held_.erase(device);
}

bool Journal::AppendsHeld(const std::string& device) const {
  std::lock_guard<std::mutex> l(mu_);
  return held_.count(device) > 0;
}

Status GuardRefusal(const std::string& device) {
  return Status::Unavailable(
      "unavailable: waiting for peers to report the head of '" + device +
      "' (restore guard: this node may have lost part of its stream); `cairn status` "
      "says what it waits for, `cairn guard release " +
      device + "` starts the stream without them");
}

Status Journal::Poisoned() const {
  std::lock_guard<std::mutex> l(mu_);
  return poisoned_;
}

void Journal::WriterLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    queue_cv_.wait(l, [&] { return !writing_ && (stopping_ || !queue_.empty()); });
    if (queue_.empty()) return;  // stopping, and every queued op is done
    WriteNextGroup(l);
  }
}

// REQUIRES: l holds mu_, !writing_, !queue_.empty(). Returns with l held.
void Journal::WriteNextGroup(std::unique_lock<std::mutex>& l) {
  writing_ = true;
  std::vector<std::unique_ptr<Op>> ops;
  size_t bytes = 0;
  // Consecutive appends form one group, within the group bounds.
  do {
    bytes += queue_.front()->bytes;
    ops.push_back(std::move(queue_.front()));
    queue_.pop_front();
  } while (ops.front()->kind == Op::Kind::kAppend && !queue_.empty() &&
           queue_.front()->kind == Op::Kind::kAppend &&
           ops.size() < options_.max_group_appends && bytes < options_.max_group_bytes);
  l.unlock();
  Op& first = *ops.front();
  switch (first.kind) {
    case Op::Kind::kAppend:
      RunAppendGroup(ops);
      break;
    case Op::Kind::kApply:
      first.on_apply(DoApply(first));
      break;
    case Op::Kind::kSnapshot:
      first.on_seq(DoSnapshot(first.device));
      break;
    case Op::Kind::kStage: {
      Status s = DoStage(first);
      first.on_seq(s.ok() ? Result<uint64_t>(uint64_t{0}) : Result<uint64_t>(s));
      break;
    }
    case Op::Kind::kDropStage:
      DoDropStage(first);
      first.on_seq(uint64_t{0});
      break;
    case Op::Kind::kInstall:
      first.on_seq(DoInstall(first));
      break;
    case Op::Kind::kTrim:
      first.on_seq(DoTrim(first.device, first.trim_to));
      break;
    case Op::Kind::kForget: {
      Status s = DoForget(first.device);
      first.on_seq(s.ok() ? Result<uint64_t>(uint64_t{0}) : Result<uint64_t>(s));
      break;
    }
  }
  l.lock();
  writing_ = false;
  if (!queue_.empty() || stopping_) queue_cv_.notify_one();
}

Status Journal::BuildAppend(Op& op, Group& group) {
  auto [mit, fresh] = group.metas.try_emplace(op.device);
  if (fresh) {
    std::lock_guard<std::mutex> l(mu_);
    mit->second = streams_.at(op.device)->meta;
  }
  wire::StreamMeta& meta = mit->second;
  auto& out = group.records[op.device];
  op.range.first = meta.last() + 1;
  uint64_t last = meta.last();
  std::array<char, 32> head;
  CHECK(meta.head_hash().size() == head.size());
  std::copy(meta.head_hash().begin(), meta.head_hash().end(), head.begin());
  for (PreparedEvent& e : op.events) {
    PendingRecord& r = out.emplace_back();
    r.seq = ++last;
    r.time_us = e.time_us;
    LinkHash(std::string_view(head.data(), head.size()), r.seq,
             std::string_view(e.content.data(), e.content.size()), r.hash.data());
    head = r.hash;
    r.body = op.bodies.data() + e.body_offset;
    r.body_size = e.body_size;
    if (e.kv) CAIRN_RETURN_IF_ERROR(group.kv.ApplyOp(op.device, *e.kv, r.seq, r.time_us));
  }
  meta.set_last(last);
  meta.set_head_hash(head.data(), head.size());
  meta.set_last_time_us(out.back().time_us);
  op.range.last = meta.last();
  return Status::Ok();
}

// One signature per device per group, plus one every sign_every_bytes so that a
// chunk ending at a signed record stays bounded.
void Journal::SignGroup(Group& group) {
  for (auto& [device, records] : group.records) {
    if (records.empty()) continue;
    const DeviceSigner& signer = *signers_.at(device);
    size_t unsigned_bytes = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      PendingRecord& r = records[i];
      unsigned_bytes += r.body_size + 48;
      if (i + 1 == records.size() || unsigned_bytes >= options_.sign_every_bytes) {
        r.sig = signer.Sign(EventSigMessage(
            device, r.seq, std::string_view(r.hash.data(), r.hash.size())));
        unsigned_bytes = 0;
      }
    }
    group.metas.at(device).set_last_sig(records.back().sig);
  }
}

void Journal::RunAppendGroup(std::vector<std::unique_ptr<Op>>& ops) {
  Status status = Poisoned();
  Group group(store_.get());
  for (auto& op : ops) {
    if (!status.ok()) break;
    // Appends were validated on their callers' threads; what can still fail here
    // is reading the store (a KV entry to update), after the op has put records
    // and view changes into the group. Writing the rest would commit those too
    // (signed, tapped, yet not counted in the stream's head), so the whole group
    // fails and nothing is written.
    op->status = BuildAppend(*op, group);
    if (!op->status.ok()) status = op->status;
  }
  if (status.ok() && !group.metas.empty()) {
    SignGroup(group);
    internal::EncodeGroup(group);
    status = store_->Write(&group.batch,
                           options_.sync_writes && !plant::On("ack-before-durable"));
    // LevelDB keeps a failure of its background compaction for every later write:
    // after a few in a row the journal stops, as for any other failed write.
    open_file_failures_ =
        !status.ok() && FailedBeforeWriting(status) ? open_file_failures_ + 1 : 0;
    if (open_file_failures_ > 0 && open_file_failures_ <= kMaxOpenFileFailures) {
      status = Status::Unavailable("append not written, try again: " + status.message());
    } else if (!status.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      poisoned_ = Status::UnknownOutcome("journal stopped after a failed write (" +
                                         status.message() + "); restart the node");
      status = poisoned_;
    }
  }
  if (status.ok()) FinishCommit(group.metas, &group);
  for (auto& op : ops) {
    if (!status.ok()) {
      op->on_append(status);
    } else if (!op->status.ok()) {
      op->on_append(op->status);
    } else {
      op->on_append(op->range);
    }
  }
  if (status.ok()) {
    for (const auto& [device, meta] : group.metas) MaybeSnapshot(device);
  }
}

void Journal::FinishCommit(const std::map<std::string, wire::StreamMeta>& metas,
                           const internal::Group* group) {
  CommitListener listener;
  CommitTap tap;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [device, meta] : metas) {
      auto& s = streams_[device];
      if (!s) s = std::make_unique<internal::StreamState>();
      s->meta = meta;
      if (!group) continue;
      // Only for a stream without one (the apply created it): a key set since
      // by KeyFor may be a renewal, which must not be undone.
      if (auto k = group->keys.find(device);
          !s->key && k != group->keys.end() &&
          k->second->cert_der() == meta.device_cert()) {
        s->key = k->second;
      }
    }
    listener = listener_;
    tap = tap_;
    ++callbacks_running_;  // the copies run outside the lock; see SetCommitTap
  }
  if (tap && group) {
    std::vector<std::string_view> values;
    for (const auto& [device, records] : group->records) {
      if (records.empty()) continue;
      values.clear();
      for (const auto& r : records) values.emplace_back(r.body, r.value_size);
      tap(device, values);
    }
  }
  for (const auto& [device, meta] : metas) {
    if (listener) listener(device, meta.last());
    NotifySubscribers(device);
  }
  std::lock_guard<std::mutex> l(mu_);
  if (--callbacks_running_ == 0) callbacks_done_.notify_all();
}

void Journal::MaybeSnapshot(const std::string& device) {
  uint64_t since_events;
  int64_t since_us;
  {
    std::lock_guard<std::mutex> l(mu_);
    const auto& s = streams_.at(device);
    since_events = s->meta.last() - s->meta.snapshot();
    since_us = options_.clock->MonotonicMicros() - s->last_snapshot_mono_us;
  }
  const bool by_count = options_.snapshot_every_events > 0 &&
                        since_events >= options_.snapshot_every_events;
  const bool by_time = options_.snapshot_every_us > 0 && since_events > 0 &&
                       since_us >= options_.snapshot_every_us;
  if (by_count || by_time) (void)DoSnapshot(device);
}

}  // namespace cairn::journal
