// Internals shared by the journal's .cc files. Not part of the public API.
#pragma once

#include <array>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "journal/journal.h"
#include "journal/kv.h"
#include "journal/layout.h"

namespace cairn::journal {

namespace internal {

struct StreamState {
  wire::StreamMeta meta;
  std::shared_ptr<const DevicePublicKey> key;  // set once the cert was verified
  int64_t last_snapshot_mono_us = 0;
  // The groups meta.device_cert names (DeviceGroups): the verified key's when it
  // is that certificate's, else parsed once per certificate.
  const std::vector<std::string>& Groups() const {
    if (key && key->cert_der() == meta.device_cert()) return key->groups();
    if (groups_of_ != meta.device_cert()) {
      groups_of_ = meta.device_cert();
      groups_ = DeviceGroups(groups_of_);
    }
    return groups_;
  }

 private:
  mutable std::string groups_of_;
  mutable std::vector<std::string> groups_;
};

// An event validated, digested and encoded on the appending caller's thread, so
// the writer only links it into the chain.
struct PreparedEvent {
  int64_t time_us = 0;
  std::array<char, 32> content;  // ContentDigest
  size_t body_offset = 0;        // in Op::bodies
  size_t body_size = 0;
  std::optional<KvOp> kv;
};

// A record on its way into a WriteBatch. Its stored value is its body
// (Record{time_us, type, payload}, serialized) followed by Record{seq, hash, sig},
// written in place into the kTailRoom bytes reserved after the body: protobuf
// fields may come in any order and concatenated messages merge, so the value is
// one valid Record and the payload is copied only once more, into the batch.
// `body` points into the Op (appends) or the Group (applied records).
inline constexpr size_t kTailRoom = 112;  // seq, hash and signature fields
struct PendingRecord {
  uint64_t seq = 0;
  int64_t time_us = 0;
  std::array<char, 32> hash;
  char* body = nullptr;  // body_size bytes, then kTailRoom writable bytes
  size_t body_size = 0;
  size_t value_size = 0;  // body and tail, once EncodeGroup wrote the tail
  std::string sig;
};

struct Op {
  enum class Kind {
    kAppend,
    kApply,
    kSnapshot,
    kStage,
    kDropStage,
    kInstall,
    kTrim,
    kForget
  };
  Kind kind = Kind::kAppend;
  std::string device;
  std::vector<PreparedEvent> events;  // kAppend
  std::string bodies;    // kAppend: every event's encoded body, then kTailRoom bytes
  std::string cert_der;  // kApply, kInstall
  std::vector<wire::Record> records;  // kApply
  SnapshotData snapshot;              // kStage, kInstall: a part (or all) of one
  uint64_t stage_id = 0;              // kStage, kDropStage, kInstall
  uint64_t trim_to = 0;               // kTrim
  size_t bytes = 0;
  std::function<void(Result<SeqRange>)> on_append;
  std::function<void(Result<ApplyOutcome>)> on_apply;
  std::function<void(Result<uint64_t>)> on_seq;  // the others
  // Filled while a group is built.
  Status status;
  SeqRange range;
};

// Holds a LevelDB snapshot (a consistent read view) for its lifetime.
class SnapshotHold {
 public:
  explicit SnapshotHold(leveldb::DB* db) : db_(db), snap_(db->GetSnapshot()) {}
  ~SnapshotHold() { db_->ReleaseSnapshot(snap_); }
  SnapshotHold(const SnapshotHold&) = delete;
  SnapshotHold& operator=(const SnapshotHold&) = delete;
  const leveldb::Snapshot* get() const { return snap_; }

 private:
  leveldb::DB* db_;
  const leveldb::Snapshot* snap_;
};

// KV view changes of one WriteBatch: reads see earlier changes of the same batch.
class KvOverlay {
 public:
  explicit KvOverlay(const Store* store) : store_(store) {}
  Result<std::optional<wire::KvEntry>> Get(const std::string& kv_key);
  void Set(const std::string& kv_key, std::optional<wire::KvEntry> entry);
  // Applies `record` if it is a well-formed KV event; other records are opaque.
  Status ApplyEvent(std::string_view device, const wire::Record& record);
  Status ApplyOp(std::string_view device, const KvOp& op, uint64_t seq, int64_t time_us);
  void Flush(leveldb::WriteBatch* batch) const;

 private:
  const Store* store_;
  std::map<std::string, std::optional<wire::KvEntry>> changes_;
};

struct Group {
  explicit Group(const Store* store) : kv(store) {}
  leveldb::WriteBatch batch;
  std::map<std::string, wire::StreamMeta> metas;  // working copies
  // The verified key of each applied stream: a new one is not verified again.
  std::map<std::string, std::shared_ptr<const DevicePublicKey>> keys;
  std::map<std::string, std::vector<PendingRecord>> records;  // new, per device
  KvOverlay kv;
  std::deque<std::string> owned_bodies;  // for applied records; never relocates
};

// Puts every record of `group.records` and every meta into the batch.
void EncodeGroup(Group& group);  // writer.cc
PendingRecord ToPending(wire::Record&& record, Group& group);
void EncodeBody(int64_t time_us, std::string_view type, std::string_view payload,
                std::string* out);

// A push subscription's state (subscription.cc).
struct SubState {
  std::string device;
  std::unique_ptr<Cursor> cursor;
  std::function<void(const Delivery&)> callback;
  bool queued = false;     // in ready_
  bool cancelled = false;  // the Subscription was destroyed
  bool failed = false;     // delivered a non-ok status; no more deliveries
};

}  // namespace internal

StreamInfo ToInfo(const std::string& device, const wire::StreamMeta& meta);
KvItem ToItem(const std::string& store, const std::string& key, const wire::KvEntry& e);

}  // namespace cairn::journal
