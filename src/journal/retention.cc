// Retention: which events below a stream's snapshot this node still keeps, and
// deleting the rest (RetentionOptions in journal.h; README, "What is kept").
#include <algorithm>
#include <future>
#include <tuple>

#include "base/bytes.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::Op;

namespace {

// Events deleted per writer op, so that appends wait for at most one batch.
constexpr uint64_t kTrimBatchEvents = 10000;

std::string Seq(uint64_t s) { return std::to_string(s); }

}  // namespace

Status Journal::NoteFollowers(
    const std::map<std::string, std::map<std::string, uint64_t>>& heads) {
  leveldb::WriteBatch batch;
  std::vector<std::tuple<std::string, std::string, uint64_t>> changes;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [device, peers] : heads) {
      auto s = streams_.find(device);
      if (s == streams_.end()) continue;
      const auto known = followers_.find(device);
      for (const auto& [node, reported] : peers) {
        // Nobody holds more than we do: a claim beyond our head counts as our head.
        const uint64_t last = std::min(reported, s->second->meta.last());
        if (known != followers_.end()) {
          auto it = known->second.find(node);
          if (it != known->second.end() && it->second == last) continue;
        }
        // Lower too: a wiped follower no longer holds it.
        std::string v;
        PutU64BE(&v, last);
        batch.Put(layout::FollowerKey(device, node), v);
        changes.emplace_back(device, node, last);
      }
    }
  }
  if (changes.empty()) return Status::Ok();
  // Durable before any deletion it allows (a follower forgotten in a crash would
  // let its events go), and only then believed.
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, /*sync=*/true));
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [device, node, last] : changes) followers_[device][node] = last;
  return Status::Ok();
}

Result<uint64_t> Journal::Trim(std::string_view device, uint64_t to) {
  uint64_t first = 0;
  for (;;) {
    std::promise<Result<uint64_t>> done;
    auto f = done.get_future();
    auto op = std::make_unique<Op>();
    op->kind = Op::Kind::kTrim;
    op->device = std::string(device);
    op->trim_to = to;
    op->on_seq = [&done](Result<uint64_t> r) { done.set_value(std::move(r)); };
    Submit(std::move(op), /*may_write_here=*/true);
    CAIRN_ASSIGN_OR_RETURN(uint64_t next, f.get());
    if (next == first || next > to) return next;  // done, or nothing more may go
    first = next;
  }
}

Result<uint64_t> Journal::DoTrim(const std::string& device, uint64_t to) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  wire::StreamMeta meta;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = streams_.find(device);
    if (it == streams_.end()) return Status::NotFound("no stream '" + device + "'");
    meta = it->second->meta;
  }
  // Only what the snapshot stands for may go: the view stays rebuildable.
  to = std::min({to, meta.snapshot(), meta.first() + kTrimBatchEvents - 1});
  if (to < meta.first()) return meta.first();
  leveldb::WriteBatch batch;
  uint64_t bytes = 0;
  std::string last_hash;  // of the event at `to`: what the new first chains from
  const std::string end = layout::EventKey(device, to);
  auto it = store_->NewIterator();
  for (it->Seek(layout::EventKey(device, meta.first()));
       it->Valid() && it->key().compare(end) <= 0; it->Next()) {
    bytes += it->key().size() + it->value().size();
    if (it->key().compare(end) == 0) {
      wire::Record r;
      if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return Status::Corruption(store_->path() + ": event " + Seq(to) + " of '" +
                                  device + "' does not decode");
      }
      last_hash = r.hash();
    }
    batch.Delete(it->key());
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading events to delete"));
  if (last_hash.empty()) {
    return Status::Corruption(store_->path() + ": event " + Seq(to) + " of '" + device +
                              "' is missing");
  }
  wire::StreamMeta next = meta;
  next.set_first(to + 1);
  if (to == meta.snapshot()) {
    next.clear_first_prev_hash();  // the snapshot hash is what it follows
  } else {
    next.set_first_prev_hash(last_hash);
  }
  next.set_event_bytes(meta.event_bytes() - std::min(meta.event_bytes(), bytes));
  batch.Put(layout::MetaKey(device), next.SerializeAsString());
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
  FinishCommit({{device, next}});
  return next.first();
}

bool Journal::AckedBy(const std::string& device, wire::StreamMeta* meta,
                      std::optional<std::pair<uint64_t, std::string>>* bound) const {
  std::vector<std::pair<uint64_t, std::string>> held;  // (last, node)
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = streams_.find(device);
    if (it == streams_.end()) return false;
    *meta = it->second->meta;
    if (auto f = followers_.find(device); f != followers_.end()) {
      for (const auto& [node, last] : f->second) held.emplace_back(last, node);
    }
  }
  bound->reset();
  if (held.empty()) return true;
  // The required follower that holds least: the acks-th from the top (0: all).
  const size_t acks = options_.retention.acks;
  const size_t need = acks == 0 ? held.size() : std::min(acks, held.size());
  std::nth_element(held.begin(), held.begin() + static_cast<long>(need - 1), held.end(),
                   std::greater<>());
  *bound = held[need - 1];
  return true;
}

Result<uint64_t> Journal::RetainTo(const std::string& device, std::string* why) {
  const RetentionOptions& o = options_.retention;
  wire::StreamMeta meta;
  std::optional<std::pair<uint64_t, std::string>> acked;
  if (!AckedBy(device, &meta, &acked) || meta.last() == 0) return uint64_t{0};
  // By acknowledgement: the seq every required follower holds.
  uint64_t to = 0;
  if (!acked) {
    *why = "no follower has reported holding it";
  } else {
    to = acked->first;
    *why = "follower " + acked->second + " holds up to " + Seq(to);
  }
  // A local reader (an open cursor: `cairn tail`, a subscription) has yet to
  // read from its next seq on.
  if (const uint64_t floor = ReaderFloor(device); floor != UINT64_MAX && floor - 1 < to) {
    to = floor - 1;
    *why = "a local reader is at " + Seq(floor);
  }
  // By age: the newest event older than the limit (times rise along a stream;
  // a clock that went back only keeps a little more).
  uint64_t limit_to = 0;
  if (o.max_age_us > 0 && meta.first() <= meta.last()) {
    const int64_t cutoff = options_.clock->NowMicros() - o.max_age_us;
    auto time_at = [&](uint64_t seq) -> Result<int64_t> {
      CAIRN_ASSIGN_OR_RETURN(
          auto r, store_->GetProto<wire::Record>(layout::EventKey(device, seq)));
      if (!r) return Status::Unavailable("event " + Seq(seq) + " was just deleted");
      return r->time_us();
    };
    uint64_t lo = meta.first(), hi = meta.last();
    CAIRN_ASSIGN_OR_RETURN(int64_t t, time_at(lo));
    if (t < cutoff) {
      while (lo < hi) {  // invariant: time(lo) < cutoff
        const uint64_t mid = lo + (hi - lo + 1) / 2;
        CAIRN_ASSIGN_OR_RETURN(int64_t tm, time_at(mid));
        if (tm < cutoff) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      limit_to = lo;
    }
  }
  // By size: the oldest events beyond max_bytes.
  if (o.max_bytes > 0 && meta.event_bytes() > o.max_bytes) {
    const uint64_t excess = meta.event_bytes() - o.max_bytes;
    uint64_t bytes = 0, seq = meta.first() - 1;
    const std::string prefix = layout::EventPrefix(device);
    auto it = store_->NewIterator();
    for (it->Seek(layout::EventKey(device, meta.first()));
         it->Valid() && it->key().starts_with(prefix) && bytes < excess; it->Next()) {
      bytes += it->key().size() + it->value().size();
      ++seq;
    }
    CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "measuring events"));
    limit_to = std::max(limit_to, seq);
  }
  if (limit_to > to) {
    to = limit_to;
    *why = "";
  }
  return to;
}

Result<uint64_t> Journal::Retain(const std::map<std::string, uint64_t>& floors) {
  std::vector<std::string> devices;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [device, s] : streams_) devices.push_back(device);
  }
  uint64_t deleted = 0;
  for (const auto& device : devices) {
    std::string why;
    CAIRN_ASSIGN_OR_RETURN(uint64_t to, RetainTo(device, &why));
    if (auto f = floors.find(device);
        f != floors.end() && f->second - 1 < to && why != "") {
      to = f->second - 1;  // a subscriber is still being served from there
    }
    CAIRN_ASSIGN_OR_RETURN(StreamInfo info, Stream(device));
    if (to < info.first) continue;
    if (to > info.snapshot && info.source && why.empty()) {
      // A limit wants more than the snapshot covers: at the source, take one.
      auto snapped = Snapshot(device);
      if (!snapped.ok() && !snapped.status().IsNotFound()) return snapped.status();
      CAIRN_ASSIGN_OR_RETURN(info, Stream(device));
    }
    to = std::min(to, info.snapshot);
    if (to < info.first) continue;
    CAIRN_ASSIGN_OR_RETURN(uint64_t first, Trim(device, to));
    deleted += first - info.first;
  }
  return deleted;
}

std::string Journal::RetentionState(const std::string& device) const {
  wire::StreamMeta meta;
  std::optional<std::pair<uint64_t, std::string>> acked;
  if (!AckedBy(device, &meta, &acked)) return "";
  if (meta.first() > meta.snapshot() || meta.first() > meta.last()) return "";
  std::string s = "events " + Seq(meta.first()) + ".." + Seq(meta.snapshot()) +
                  " kept below the snapshot: ";
  if (!acked) return s + "no follower has reported holding them";
  const auto& [last, node] = *acked;
  if (last < meta.snapshot()) return s + "follower " + node + " holds up to " + Seq(last);
  if (const uint64_t floor = ReaderFloor(device); floor <= meta.snapshot()) {
    return s + "a local reader is at " + Seq(floor);
  }
  return s + "deleted at the next retention pass";
}

}  // namespace cairn::journal
