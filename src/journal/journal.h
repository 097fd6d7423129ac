// Journal: every device stream a node stores, in one LevelDB.
//
// A stream is a gap-free sequence of records 1, 2, 3 … chained by SHA-256 and
// signed by its device (see chain.h). Local appends are accepted only for devices
// whose key this node holds (the node is their *source*); records of other devices
// arrive through Apply() and are verified before anything is stored. Every change —
// events, stream meta, KV view changes, snapshot swaps — goes into one LevelDB
// WriteBatch, so a crash never leaves them disagreeing.
//
// Threads: mutations run one group at a time, in order, on the journal's writer
// thread or on a blocking caller's own thread when no one else is writing; a group
// commits concurrent appends together (one WriteBatch, one fsync and one signature
// per device). Public methods are safe to call from any thread; the blocking
// ones wait for the writer. Appends are validated, digested and encoded on the
// caller's thread; only the chain link, the signature and the write happen on
// the writer. Callbacks of the *Async methods and commit listeners run on the
// thread that writes their group (the writer thread, or a caller blocked in
// Append/Apply/Snapshot), or inline for an append refused before it was queued;
// they must not block and must not call blocking Journal methods. Subscription callbacks
// run on the journal's delivery thread.
//
// Lifetime: cursors and subscriptions must be destroyed before the Journal.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "journal/identity.h"
#include "journal/store.h"
#include "wire/schema.h"

namespace cairn::journal {

inline constexpr size_t kMaxTypeBytes = 64;
inline constexpr size_t kMaxPayloadBytes = 1u << 20;
inline constexpr size_t kMaxEventsPerAppend = 10000;
inline constexpr size_t kMaxSnapshotChunkBytes = 1u << 20;
// A chunk's encoding may exceed kMaxSnapshotChunkBytes by its framing, no more.
inline constexpr size_t kMaxChunkWireBytes = kMaxSnapshotChunkBytes + (64u << 10);
// Chunks of one snapshot (1 TiB of them): a header claiming more is refused.
inline constexpr uint32_t kMaxSnapshotChunks = 1u << 20;

// What this node keeps of each stream it stores (README, "What is kept"). A
// snapshot never deletes events by itself: an event goes only once it is at or
// below the stream's snapshot and either every known follower of the stream (or
// `acks` of them) has reported holding it, or it is older than max_age_us, or the
// stream's events exceed max_bytes. A follower is a peer whose catalogue listed
// the stream; it stays known across restarts. With no known follower, only the
// limits let events go. At the source a limit that needs more than the snapshot
// covers takes a snapshot first.
struct RetentionOptions {
  size_t acks = 0;         // followers that must hold an event; 0 = all known ones
  int64_t max_age_us = 0;  // 0 = no age limit
  uint64_t max_bytes = 0;  // per stream; 0 = no size limit
};

struct JournalOptions {
  StoreOptions store;
  std::shared_ptr<const CertAuthority> ca;             // required
  std::vector<std::shared_ptr<DeviceSigner>> sources;  // devices we hold keys for
  Clock* clock = SystemClock();                        // not owned
  bool sync_writes = true;                             // fsync before acknowledging
  // Snapshot policy at the source: after this many events since the last
  // snapshot, or this long since it (checked on append), 0 = off.
  uint64_t snapshot_every_events = 0;
  int64_t snapshot_every_us = 0;
  // Group commit bounds: at most this many appends or payload bytes per group.
  size_t max_group_appends = 1024;
  size_t max_group_bytes = 4u << 20;
  // A source signs a record at least every this many payload bytes, so that a
  // chunk ending at a signed record stays small.
  size_t sign_every_bytes = 256u << 10;
  // A KV event whose payload ParseKvOp refuses is refused at append. Only tests
  // set this false, to sign what a hostile or older device could have signed
  // (such an event is then opaque, as it is on every replica).
  bool refuse_bad_kv = true;
  RetentionOptions retention;
};

// The refusal of an append while the restore guard holds `device`.
Status GuardRefusal(const std::string& device);

struct NewEvent {
  std::string type;
  std::string payload;
};

struct SeqRange {
  uint64_t first = 0;
  uint64_t last = 0;
};

struct StreamInfo {
  std::string device;
  uint64_t first = 0;     // lowest stored event; last + 1 when none are stored
  uint64_t last = 0;      // head seq, 0 when empty
  uint64_t snapshot = 0;  // newest snapshot seq, 0 if none
  bool source = false;
  std::string head_hash;
  uint64_t event_bytes = 0;         // stored events, keys and values
  std::vector<std::string> groups;  // its certificate's (DeviceGroups)
};

struct ApplyOutcome {
  uint64_t last = 0;        // the stream's head after the call
  uint64_t applied = 0;     // new records committed
  uint64_t duplicates = 0;  // records we already held, identical
  uint64_t pending = 0;     // trailing records not covered by a signature; resend
};

struct KvItem {
  std::string store;
  std::string key;
  std::string value;  // JSON
  uint64_t rev = 0;
  int64_t expiry_us = 0;
  bool operator==(const KvItem&) const = default;
};

struct SnapshotData {
  size_t chunk_count() const {
    return encoded_chunks.empty() ? chunks.size() : encoded_chunks.size();
  }

  wire::SnapshotHeader header;
  // Chunks first_chunk, first_chunk + 1, …: all of them (1..header.chunks()) but
  // for ReadSnapshotChunks.
  std::vector<wire::SnapshotChunk> chunks;
  // A snapshot received from a peer: its chunks as they arrived, serialized, in
  // place of `chunks` (held as bytes, parsed one at a time at the install: a
  // parsed chunk of many small entries takes many times its bytes).
  std::vector<std::string> encoded_chunks;
  uint32_t first_chunk = 1;
  // ReadSnapshotChunks: the stream's first stored event when it was read (what
  // below it is gone, not merely covered by the snapshot).
  uint64_t first_stored = 0;
};

// What a cursor or subscription hands over next: a snapshot (when the requested
// events are at or below the stored snapshot), then records in order.
struct Delivery {
  Status status;  // non-ok: the subscription has failed
  std::optional<SnapshotData> snapshot;
  uint64_t restored_from = 0;  // set with snapshot: events up to here come as it
  // Set with snapshot: the events from the cursor's position up to here are gone
  // (deleted by retention), not merely covered by the snapshot.
  uint64_t truncated = 0;
  std::vector<wire::Record> records;
  bool empty() const { return status.ok() && !snapshot && records.empty(); }
};

class Cursor;
class Subscription;
namespace internal {
struct Op;
struct StreamState;
struct Group;
struct SubState;
}  // namespace internal

class Journal {
 public:
  using AppendCallback = std::function<void(Result<SeqRange>)>;
  // Called on the writer thread after each commit that moved `device`'s head.
  using CommitListener = std::function<void(const std::string& device, uint64_t last)>;
  // Called on the same thread just before the commit listener, with the stored
  // encoding of every record the commit added to `device` (each a serialized
  // wire::Record, in seq order, the last one signed): what a cursor would read
  // back, without reading it back. The views die with the call.
  using CommitTap = std::function<void(const std::string& device,
                                       const std::vector<std::string_view>& records)>;

  static Result<std::unique_ptr<Journal>> Open(JournalOptions options);
  // Finishes queued writes, stops the threads, closes LevelDB.
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // ---- writes (all through the writer thread)
  // Appends events to a device this node is the source of; returns the seqs
  // assigned once the batch is durable. An error changes nothing, except
  // kUnknownOutcome (the write failed mid-way: treat as maybe written).
  Result<SeqRange> Append(std::string_view device, std::vector<NewEvent> events);
  void AppendAsync(std::string device, std::vector<NewEvent> events, AppendCallback done);
  // Accepts replicated records of a device we are not the source of. Verifies the
  // device certificate (`cert_der` may be empty once the stream is known), every
  // chain link and the signature of the last signed record, and commits exactly
  // what that signature covers.
  Result<ApplyOutcome> Apply(std::string_view device, std::string_view cert_der,
                             std::vector<wire::Record> records);
  // Snapshot at the head of a device we are the source of; returns its seq.
  Result<uint64_t> Snapshot(std::string_view device);
  // A snapshot from a peer is staged on disk as its chunks come, then verified
  // and installed from there: memory holds one part at a time, whatever its size.
  // StageSnapshot writes chunks part.first_chunk.. of part.header's snapshot
  // under `stage_id` (the caller's, unique per transfer). first_chunk 1 starts a
  // staging, replacing any other of the device; a later part must follow the
  // last one staged under the same id (else FailedPrecondition, or
  // InvalidArgument for a part out of order or past the header's chunk count).
  // Nothing but the shape is checked here: InstallSnapshot checks the rest.
  Status StageSnapshot(uint64_t stage_id, SnapshotData part);
  // Forgets staging `stage_id` of `device` (a transfer given up) and deletes its
  // chunks; a part of it staged later is refused. Nothing when it was replaced.
  void DropStaged(const std::string& device, uint64_t stage_id);
  // Stages `last_part` (with stage_id 0: a whole snapshot, chunks 1..n), then
  // verifies the whole staged snapshot and stores it; the staging is used up
  // either way. At or below our head it must match the event we hold at its seq
  // (else Fork, proof stored); events stay (retention deletes them). Beyond our
  // head it replaces our events and view — but when we hold events, nothing
  // shows that they lead to it (the events between are not offered): Gap,
  // nothing changed, unless AcceptGap(device). That replacement takes as many
  // batches as the view needs; meanwhile the view's reads answer Unavailable,
  // and one cut short by a crash is finished when the journal opens.
  Result<uint64_t> InstallSnapshot(std::string_view cert_der, SnapshotData last_part,
                                   uint64_t stage_id = 0);
  // The check a snapshot's header passes before any of its chunks is taken: a
  // device we may receive (not one we are the source of), its certificate (or the
  // one we hold) from the CA, the header signed with that device key. Runs on the
  // caller's thread, without the writer.
  Status CheckSnapshotHeader(std::string_view cert_der, const wire::SnapshotHeader& h);
  // The operator's decision (`cairn resync`): the next snapshot of `device` beyond
  // our head is installed although it cannot be checked, deleting our events.
  void AcceptGap(const std::string& device);
  bool GapAccepted(const std::string& device) const;

  // Deletes what is stored of `device`, a stream this node stores but is not the
  // source of (it is no longer followed: `cairn unfollow`): events, snapshots,
  // staging, view and follower reports; fork proofs stay, as evidence. The meta
  // is marked `forgetting` first and the rest goes in bounded batches, so a
  // deletion cut short by a crash is finished when the journal opens. From the
  // mark on the stream is unknown here (NotFound; KV reads find nothing), and an
  // open subscription of it waits, as for a device not known yet. OK when
  // nothing is stored; FailedPrecondition for this node's own device. Blocking.
  Status Forget(const std::string& device);

  // ---- reads (any thread)
  Result<std::vector<wire::Record>> Read(std::string_view device, uint64_t from,
                                         size_t limit, size_t max_bytes = 4u << 20) const;
  std::vector<StreamInfo> Catalogue() const;
  Result<StreamInfo> Stream(std::string_view device) const;
  Result<std::string> DeviceCert(std::string_view device) const;
  Result<std::optional<KvItem>> KvGet(std::string_view device, std::string_view store,
                                      std::string_view key) const;
  // Live entries of `store` with key > start_after, in key order, at most limit.
  Result<std::vector<KvItem>> KvList(std::string_view device, std::string_view store,
                                     std::string_view start_after, size_t limit) const;
  Result<SnapshotData> ReadSnapshot(std::string_view device) const;
  // Part of the newest snapshot, for serving it paced by credit: its header and
  // chunks from `first` on, at least one and then while they total under
  // `max_bytes`, read at one point in time. When the newest snapshot is not at
  // `expect_seq` (0: any) it has been replaced: the read starts at its chunk 1.
  Result<SnapshotData> ReadSnapshotChunks(std::string_view device, uint64_t expect_seq,
                                          uint32_t first, size_t max_bytes) const;
  // The whole view (expired entries too) as kept, and as rebuilt from the
  // snapshot plus the events after it. The two must be equal.
  Result<std::vector<KvItem>> KeptView(std::string_view device) const;
  Result<std::vector<KvItem>> RebuildView(std::string_view device) const;
  // Re-checks a stream end to end: chain, signatures, snapshot, rebuilt view.
  Status Verify(std::string_view device) const;
  std::vector<wire::ForkProof> Forks() const;
  // A peer holds `theirs` for a device this node is the source of: records from
  // some seq on, chained and closed by a signature of the device's key. When they
  // chain from our history and differ from what we hold at a seq, our own device
  // has forked there (a restored source that re-issued seqs): the proof is
  // stored, counted and returned as that seq. 0 when nothing we hold disagrees or
  // we cannot check (their first seq's predecessor is gone). Corruption when the
  // records do not chain or their signature fails. Blocking; any thread.
  Result<uint64_t> RecordOwnFork(const std::string& device,
                                 const std::vector<wire::Record>& theirs);
  // How many fork proofs are stored (cheap: kept in memory).
  size_t ForkCount() const;

  // ---- retention (RetentionOptions)
  // What peers report holding (their catalogues): device -> node id -> last seq.
  // Changes are stored, so a follower that is away stays known. Devices this node
  // does not store are ignored. Blocking; any thread but the callbacks'.
  Status NoteFollowers(
      const std::map<std::string, std::map<std::string, uint64_t>>& heads);
  // Deletes what the policy lets go, in bounded batches; returns the events
  // deleted. `floors`: device -> the lowest seq a subscriber served from this
  // node reads next (peers and `cairn tail --peer`, which are no followers):
  // like an open cursor, it keeps what it has yet to read from acknowledgement.
  // Blocking; run it off the event loop.
  Result<uint64_t> Retain(const std::map<std::string, uint64_t>& floors = {});
  // Deletes the events of `device` from its first up to min(to, snapshot);
  // returns the new first stored seq. Blocking.
  Result<uint64_t> Trim(std::string_view device, uint64_t to);
  // What keeps the oldest events of `device` below its snapshot, for status:
  // "" when none are kept there.
  std::string RetentionState(const std::string& device) const;

  // ---- subscriptions
  // A pull cursor from seq `from` (>= 1): stored events; the snapshot first (with
  // Delivery::truncated) only when events from `from` were deleted.
  Result<std::unique_ptr<Cursor>> OpenCursor(std::string_view device,
                                             uint64_t from) const;
  // Push: `callback` gets the snapshot (if any), stored events, then live ones,
  // on the delivery thread, with no gap and no duplicate.
  Result<std::unique_ptr<Subscription>> Subscribe(
      std::string_view device, uint64_t from,
      std::function<void(const Delivery&)> callback);
  // Both return once no call of the one they replace is still running, so its
  // captures may be destroyed then. REQUIRES: not called from either callback.
  void SetCommitListener(CommitListener listener);
  void SetCommitTap(CommitTap tap);

  // ---- restore guard (DESIGN.md, trust)
  // While appends to a device this node is the source of are held, they are
  // refused at once with GuardRefusal (Unavailable) and Apply/InstallSnapshot
  // accept the device's own stream from peers, verified with this node's key, so
  // a reinstalled or restored source catches up before it issues another seq.
  void HoldAppends(const std::string& device);
  // Accepts appends again; the next seq follows what the stream holds then.
  void ReleaseAppends(const std::string& device);
  bool AppendsHeld(const std::string& device) const;

  Store* store() { return store_.get(); }
  Clock* clock() const { return options_.clock; }

 private:
  friend class Cursor;
  friend class Subscription;
  using Op = internal::Op;
  using Group = internal::Group;
  using SubState = internal::SubState;

  explicit Journal(JournalOptions options);
  Status Load();
  Status LoadStream(const std::string& device, const wire::StreamMeta& meta);

  // writer thread (writer.cc)
  void StartAppend(std::string device, std::vector<NewEvent> events, AppendCallback done,
                   bool may_write_here);
  void Submit(std::unique_ptr<Op> op, bool may_write_here);
  void WriterLoop();
  void WriteNextGroup(std::unique_lock<std::mutex>& l);
  void RunAppendGroup(std::vector<std::unique_ptr<Op>>& ops);
  Status BuildAppend(Op& op, Group& group);
  void SignGroup(Group& group);
  // `group`: the records committed, for the tap (none for snapshot commits).
  void FinishCommit(const std::map<std::string, wire::StreamMeta>& metas,
                    const internal::Group* group = nullptr);
  void MaybeSnapshot(const std::string& device);
  Status Poisoned() const;

  // replication input (replica.cc)
  struct ReplicaStream {
    std::shared_ptr<const DevicePublicKey> key;
    wire::StreamMeta meta;
  };
  Result<ReplicaStream> BeginReplicaOp(const std::string& device,
                                       std::string_view cert_der);
  Result<ApplyOutcome> DoApply(Op& op);
  Result<std::shared_ptr<const DevicePublicKey>> KeyFor(const std::string& device,
                                                        std::string_view cert_der);
  Status RecordFork(const std::string& device, const DevicePublicKey& key,
                    const wire::StreamMeta& meta,
                    const std::vector<wire::Record>& records, size_t i,
                    const std::string& our_hash);
  Result<uint64_t> DoInstall(Op& op);

  // snapshots (snapshot.cc)
  Result<uint64_t> DoSnapshot(const std::string& device);
  Status CheckSnapshotAgainstEvents(const wire::SnapshotHeader& h,
                                    const wire::StreamMeta& meta);
  // Stores a fork proof in its own batch and counts it.
  Status StoreForkProof(const wire::ForkProof& proof);
  Result<uint64_t> DoTrim(const std::string& device, uint64_t to);
  // The highest seq the policy lets go now (0: none), and what keeps the rest.
  Result<uint64_t> RetainTo(const std::string& device, std::string* why);
  // The stream's meta, and the (last, node) of the required follower that holds
  // least (RetentionOptions::acks), nullopt with no known follower. False when
  // the stream does not exist.
  bool AckedBy(const std::string& device, wire::StreamMeta* meta,
               std::optional<std::pair<uint64_t, std::string>>* bound) const;
  Status DropExpired(leveldb::WriteBatch* batch, const std::string& device,
                     uint64_t max_rev, int64_t at_us);
  Result<SnapshotData> ReadSnapshotAt(std::string_view device,
                                      const leveldb::Snapshot* snap) const;
  struct CurrentSnap {
    wire::SnapshotHeader header;
    uint32_t slot = 0;
    uint64_t first_stored = 0;
  };
  // The current snapshot's header and slot (NotFound: none), as of `at`.
  Result<CurrentSnap> CurrentSnapshot(std::string_view device,
                                      const leveldb::Snapshot* at) const;
  // Snapshot slots and staging (snapshot.cc; see layout.h). Writer side.
  Status ClearSlot(leveldb::WriteBatch* batch, const std::string& device,
                   uint32_t slot) const;
  Status ClearSlotNow(const std::string& device, uint32_t slot,
                      std::optional<uint32_t> chunks = std::nullopt);
  Status ForEachChunkIn(const std::string& device, uint32_t slot, uint32_t count,
                        const std::function<Status(const wire::SnapshotChunk&)>& fn,
                        const leveldb::Snapshot* at = nullptr) const;
  Status CheckStagedDigest(const wire::SnapshotHeader& h, uint32_t slot) const;
  Status DoStage(const Op& op);
  void DoDropStage(const Op& op);
  Result<uint64_t> InstallStaged(const std::string& device, std::string_view cert_der,
                                 uint64_t stage_id);
  Status DeleteKeysUnder(const std::string& prefix);
  // forget.cc
  Status DoForget(const std::string& device);
  Status FinishForget(const std::string& device);
  Result<wire::StreamMeta> FinishInstall(const std::string& device,
                                         wire::StreamMeta meta);
  // At open (Load): nullopt when the stream was dropped.
  Result<std::optional<wire::StreamMeta>> ResumeInstall(const std::string& device,
                                                        wire::StreamMeta meta);
  Status ClearStaleSlots();
  // A failed write whose outcome is unknown stops the journal (restart it).
  Status Poison(const Status& cause);

  // Open cursors (and so subscriptions) by device, as the seqs they read next:
  // retention by acknowledgement keeps what an open cursor has yet to read, so a
  // connected `cairn tail` never meets a gap (only the operator's limits cut it).
  // MoveReader(d, 0, s) adds one, (d, s, 0) removes it. Any thread.
  void MoveReader(const std::string& device, uint64_t from, uint64_t to) const;
  uint64_t ReaderFloor(const std::string& device) const;  // UINT64_MAX: none

  // reads (reader.cc)
  Result<std::vector<wire::Record>> ReadAt(std::string_view device, uint64_t from,
                                           uint64_t to, size_t max_bytes,
                                           bool end_at_signed,
                                           const leveldb::Snapshot* snap) const;
  Result<std::optional<wire::StreamMeta>> MetaAt(std::string_view device,
                                                 const leveldb::Snapshot* snap) const;

  // subscriptions (subscription.cc)
  void DeliveryLoop();
  void NotifySubscribers(const std::string& device);
  void Unsubscribe(const std::shared_ptr<SubState>& sub);

  JournalOptions options_;
  std::unique_ptr<Store> store_;
  std::map<std::string, std::shared_ptr<DeviceSigner>> signers_;

  // Guards streams_, queue_, stopping_, writing_, poisoned_, listener_, tap_,
  // followers_, accept_gap_.
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<internal::StreamState>> streams_;
  std::deque<std::unique_ptr<Op>> queue_;
  std::condition_variable queue_cv_;
  bool stopping_ = false;
  bool writing_ = false;  // a thread is writing a group (the writer or a caller)
  Status poisoned_;
  CommitListener listener_;
  CommitTap tap_;
  int callbacks_running_ = 0;  // FinishCommit calls of listener_/tap_ copies
  std::condition_variable callbacks_done_;
  std::set<std::string> held_;  // restore guard: devices whose appends are refused
  // Writer: appends in a row that LevelDB could not open a file for (each one
  // failed alone); past kMaxOpenFileFailures the journal is poisoned.
  int open_file_failures_ = 0;
  static constexpr int kMaxOpenFileFailures = 3;
  std::set<std::string> fork_keys_;  // stored proofs
  // Followers of each stream: node id -> last seq it reported holding (stored).
  std::map<std::string, std::map<std::string, uint64_t>> followers_;
  std::set<std::string> accept_gap_;  // AcceptGap, until the install
  // Snapshots being staged, by device (writer side: whoever holds writing_).
  struct Staging {
    uint64_t id = 0;
    wire::SnapshotHeader header;
    uint32_t slot = 1;
    uint32_t chunks = 0;  // staged so far
  };
  std::map<std::string, Staging> staging_;
  std::deque<uint64_t> dropped_stages_;          // recent DropStaged ids
  uint64_t next_own_stage_ = uint64_t{1} << 63;  // InstallSnapshot of a whole one
  mutable std::mutex readers_mu_;                // guards readers_
  mutable std::map<std::string, std::multiset<uint64_t>> readers_;
  std::thread writer_;

  std::mutex sub_mu_;  // guards subs_, ready_, delivering_, sub_stopping_
  std::condition_variable sub_cv_;
  std::map<std::string, std::set<std::shared_ptr<SubState>>> subs_;
  std::deque<std::shared_ptr<SubState>> ready_;
  SubState* delivering_ = nullptr;
  bool sub_stopping_ = false;
  std::thread delivery_;
};

// A pull cursor over one stream: each Next() returns the next piece (a snapshot,
// or records ending at a signed record), or an empty Delivery when caught up.
// Thread-safety: one thread at a time; the Journal must outlive it.
class Cursor {
 public:
  Cursor(const Journal* journal, std::string device, uint64_t from);
  ~Cursor();
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  Delivery Next(size_t max_bytes = 1u << 20);
  uint64_t next_seq() const { return next_; }
  const std::string& device() const { return device_; }

 private:
  const Journal* journal_;
  std::string device_;
  uint64_t next_;
};

// Keeps a push subscription alive; destroying it stops deliveries (waiting for a
// callback in progress unless called from inside that callback).
class Subscription {
 public:
  Subscription(Journal* journal, std::shared_ptr<internal::SubState> state);
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  Journal* journal_;
  std::shared_ptr<internal::SubState> state_;
};

}  // namespace cairn::journal
