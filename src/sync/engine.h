// Engine: the sync protocol of one node, sans I/O. It takes events — peers coming
// and going, their messages, local commits, completions of disk work — and returns
// actions: messages to send, journal reads and writes to run off the loop, and
// connections to close. src/sync/sync_uv.h performs them on a libuv loop.
//
// Per peer it keeps the peer's catalogue (full on activation, deltas after) and
// the subscriptions the peer holds on us (served from our journal in chunks that
// end at signed records, within the credit the peer granted and below the
// connection's high-water mark). Per followed device it keeps the one peer it
// subscribes through (see planner.h) and applies what arrives strictly in order,
// one journal write at a time, granting credit back as writes complete.
//
// A subscriber (SessionListener::OnSubscriberActive: `cairn tail --peer`) is served
// like a peer and told our catalogue and its changes, but it is never a source:
// its catalogue is ignored, it is never planned for a device, and it does not
// count as a peer that reported its heads to the restore guard.
//
// Thread-safety: none; one owner thread (the loop thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "journal/journal.h"
#include "sync/interest.h"
#include "sync/planner.h"
#include "sync/summary.h"
#include "wire/schema.h"

namespace cairn::sync {

struct SyncOptions {
  uint64_t initial_credit_bytes = 8u << 20;  // granted with each Subscribe
  size_t read_chunk_bytes = 512u << 10;      // asked of the journal per read
  // Credit is granted back once this much is owed (at most half the initial
  // credit, so the source never waits on it): one Credit message per this many
  // bytes applied, not one per write, which at live rates is one per event.
  uint64_t credit_batch_bytes = 256u << 10;
  // What a server may send beyond twice the initial credit before the
  // subscriber closes it for ignoring credit: reads end at a signed record, so
  // a read may overshoot by up to a signing interval (sign_every_bytes) and a
  // message.
  uint64_t credit_slack_bytes = 4u << 20;
  // SyncNode sends catalogue deltas at most this often (0: every loop turn). A
  // peer following a stream learns of new records from the records; the delta
  // is for the others, and one per commit costs every peer a message per event.
  int64_t catalogue_flush_ms = 10;
  uint64_t switch_margin = 64;            // see planner.h
  int64_t rtt_switch_min_us = 1000;       // see planner.h
  size_t max_catalogue_entries = 250000;  // per peer
  // A peer offered at least this many devices is sent a summary of them first
  // (summary.h), and the entries of the buckets where it differs; a smaller
  // catalogue goes whole, which costs less than the round trip. Subscribers
  // always get the whole catalogue. 0: always a summary.
  size_t summary_min_entries = 256;
  // This node's name: the device named so is the one a summary names as ours.
  std::string self;
  // All peers' catalogues together (a kept entry costs a few hundred bytes):
  // past it the peer with the most entries is closed. 0: no limit.
  size_t max_catalogue_entries_total = 4'000'000;
  // A snapshot being received is staged on disk (Journal::StageSnapshot) in
  // parts of stage_part_bytes as its chunks come, and installed from there. A
  // header is checked (the device's certificate from the CA, its signature)
  // before any chunk is taken; a peer past a limit is closed with the reason.
  // In memory, only the parts in hand, counted as the memory they take: at most
  // max_snapshot_memory_per_peer for all those from one peer and
  // max_snapshot_memory_total for the node. On disk: at most max_snapshot_bytes
  // for one snapshot and max_staged_bytes_total for all those being staged.
  size_t stage_part_bytes = 4u << 20;
  size_t max_snapshot_memory_per_peer = 256u << 20;
  size_t max_snapshot_memory_total = 512u << 20;
  uint64_t max_snapshot_bytes = uint64_t{4} << 30;
  uint64_t max_staged_bytes_total = uint64_t{16} << 30;
  // Restore guard: refuse appends to our own devices until `guard_expected_peers`
  // peers have told us their heads (catching our streams up from them first).
  // There is no time limit: only those answers or an operator's release
  // (ReleaseGuard) let a stream that may be behind issue seqs again. SyncNode
  // logs what it still waits for every guard_remind_ms. Off with no configured or
  // remembered peers, and with --new-device (src/node/node.cc picks the quorum).
  bool restore_guard = false;
  size_t guard_expected_peers = 1;
  int64_t guard_remind_ms = 10'000;
  // SyncNode records what peers hold and runs the journal's retention this often
  // (0: never; then no event below a snapshot is ever deleted).
  int64_t retain_every_ms = 5'000;
  // A catalogue's `last` is a claim. A peer followed for a device it claims more
  // of than we hold, that delivers nothing for this many RetryPaused calls
  // (seconds), is passed over for that device for demote_for_ticks calls, and
  // its claims no longer count (planner, restore guard, status).
  int stall_demote_ticks = 10;
  int demote_for_ticks = 30;
  // A demotion that ended this many calls ago without a new one is forgotten
  // (strikes and all), so the table holds only recent offenders.
  int forget_demotion_ticks = 3600;
};

struct Action {
  enum class Kind {
    kSend,
    kRead,
    kReadSnapshot,
    kApply,
    kStage,      // `snapshot`: a part of one, to stage under `stage_id`
    kInstall,    // `snapshot`: its last part; then verify and install it
    kDropStage,  // the transfer under `stage_id` was given up: delete what it staged
    kClose,
    kRelease,
    kNotifyFork,  // read our side of `device`'s newest fork, tell `peer` (its source)
    kOwnFork,     // `peer` says our own `device` forked: check `records` with our key
    kRetain,      // note `heads` as follower reports, then run the journal's retention
    kLog,         // `reason`: a line for the node's log
    kForget,      // `device` is no longer followed: delete what we store of it
  };
  Kind kind = Kind::kSend;
  std::string peer;
  wire::Envelope message;             // kSend
  std::string device;                 // kRead, kApply
  uint64_t from = 0;                  // kRead
  size_t max_bytes = 0;               // kRead
  uint64_t generation = 0;            // kRead, kReadSnapshot: the subscription served
  uint64_t snapshot_seq = 0;          // kReadSnapshot: the one in transfer (0: newest)
  uint32_t chunk = 0;                 // kReadSnapshot: the first chunk to read
  std::string cert_der;               // kApply, kInstall (may be empty)
  std::vector<wire::Record> records;  // kApply, kOwnFork
  journal::SnapshotData snapshot;     // kStage, kInstall
  uint64_t stage_id = 0;              // kStage, kInstall, kDropStage
  uint64_t credit = 0;                // kApply, kStage, kInstall: bytes to grant back
  std::string reason;                 // kClose
  std::map<std::string, std::map<std::string, uint64_t>> heads;  // kRetain
  std::map<std::string, uint64_t> floors;                        // kRetain
  bool note_only = false;  // kRetain: store the heads, delete nothing
};

class Engine {
 public:
  // A catalogue message carries at most about this many bytes of entries: a
  // full catalogue of 100,000 devices goes in parts (see Catalogue in cairn.proto).
  static constexpr size_t kCatalogueBytes = 256u << 10;
  // Parts sent at once before waiting for the connection to drain.
  static constexpr size_t kCatalogueBurstBytes = 2u << 20;
  // Devices looked at per message while sending a catalogue cut to a peer's
  // interest (which may match none): the rest on the next drain or second.
  static constexpr size_t kCatalogueScan = 20'000;

  explicit Engine(SyncOptions options = {});

  // The loop's view of write back-pressure on a peer's connection.
  void set_high_water(std::function<bool(const std::string& peer)> f) {
    high_water_ = std::move(f);
  }
  // Checks a snapshot's header (cert_der: the stream header's device
  // certificate, may be empty) before any of its chunks is held; the peer is
  // closed when it fails. Unset: headers are checked only at the install.
  using HeaderCheck =
      std::function<Status(const std::string& cert_der, const wire::SnapshotHeader&)>;
  void set_snapshot_header_check(HeaderCheck f) { header_check_ = std::move(f); }
  // Snapshot chunks received and not yet installed: the memory of those in hand
  // (or on their way to disk), and the bytes staged on disk (see SyncOptions).
  uint64_t snapshot_memory_held() const { return ledger_.memory; }
  uint64_t snapshot_bytes_staged() const { return ledger_.staged; }

  // ---- local state
  void SetLocal(const std::vector<journal::StreamInfo>& catalogue);
  // A stream changed here (append, apply, snapshot): wakes its subscribers and
  // queues a catalogue delta for the next Flush().
  void OnLocalChange(const journal::StreamInfo& info);
  // The records a local commit just added to `device` (journal::Journal's commit
  // tap; contiguous, the last signed). A subscription waiting for exactly these
  // gets them at once, without a journal read; the others are pumped as usual by
  // the OnLocalChange that must follow. Cheap to ask first: Serves(device).
  void OnLocalRecords(const std::string& device, std::vector<wire::Record> records);
  bool Serves(const std::string& device) const;
  // Sends the queued catalogue deltas, one message per peer. Call once per loop turn.
  void Flush();

  // ---- interest (interest.h)
  // What this node follows. Peers are told, and send catalogue entries of those
  // devices alone; streams stored here that it no longer covers are unfollowed
  // and deleted (kForget; OnForgotten when done). Devices this node is the
  // source of are always kept. The default: every device.
  void SetInterest(Interest interest);
  const Interest& interest() const { return interest_; }
  // The kForget of `device` ran (`status`: how it went).
  void OnForgotten(const std::string& device, const Status& status);
  // Devices this node follows that no active peer offers (an empty catalogue
  // entry counts as none): for the transport to find a holder (session.h).
  std::vector<std::string> Unheld() const;
  // The devices stored here, and a number that changes when that set does.
  std::vector<std::string> StoredDevices() const;
  uint64_t stored_version() const { return stored_version_; }
  size_t stored_count() const { return local_.size(); }

  // ---- restore guard
  // Holds `devices` (ours) until `expected_peers` peers have sent their catalogue
  // and none holds more of them than we do; meanwhile they are followed like
  // any other device. Each release is a kRelease action.
  void Guard(const std::set<std::string>& devices, size_t expected_peers);
  // The operator's release of one device; false when it was not guarded.
  bool ReleaseGuard(const std::string& device, const std::string& reason);
  const std::set<std::string>& guarded() const { return guarded_; }
  // What the guard of `device` waits for, for status and the log ("" when the
  // device is not guarded).
  std::string GuardState(const std::string& device) const;

  // ---- peers
  void OnPeerActive(const std::string& peer);
  // `read_scope`: the device globs (fnmatch) it may read, from its certificate;
  // empty: all. Our catalogue shows it only those, and a Subscribe for another
  // device closes it.
  void OnSubscriberActive(const std::string& name,
                          std::vector<std::string> read_scope = {});
  void OnPeerGone(const std::string& peer);
  // A peer's smoothed round-trip time: ranks otherwise equal peers (planner.h).
  void OnPeerRtt(const std::string& peer, int64_t rtt_us);
  // Takes the message by value: the stream messages it queues are moved, not copied.
  void OnMessage(const std::string& peer, wire::Envelope message);
  void OnDrained(const std::string& peer);

  // ---- completions of actions
  // `generation`: the read action's. A read for an earlier subscription of the
  // same device (re-subscribed, or unsubscribed and subscribed again, while it
  // ran) is dropped.
  void OnReadDone(const std::string& peer, const std::string& device,
                  const std::string& cert_der, journal::Delivery delivery,
                  uint64_t generation);
  void OnApplyDone(const std::string& peer, const std::string& device,
                   const Status& status, uint64_t credit);

  std::vector<Action> TakeActions();

  // Devices whose last apply failed here (our disk, our journal: IOError,
  // Unavailable, UnknownOutcome) are not followed for a while; the peer that
  // sent them is not blamed. SyncNode calls this every second: a device is
  // followed again after 1 call, then 2, 4 … 64 while its applies keep failing.
  void RetryPaused();
  // Also every second: demotes followed peers that claim more than they deliver
  // (SyncOptions::stall_demote_ticks) and lets demoted ones back.
  void CheckProgress();
  // True for a failure of this node's own journal or disk, not of the peer's data.
  static bool IsLocalFailure(const Status& s);

  // The peer `device` is followed through, empty when none (or at its source).
  std::string Via(const std::string& device) const;
  uint64_t PeerLast(const std::string& device) const;  // best `last` any peer reports
  // The kOwnFork check of `peer`'s notice about `device` is done: the next notice
  // is taken; a notice that does not hold (it does not chain, or its signature is
  // not our device's) closes the peer.
  void OnOwnForkChecked(const std::string& peer, const std::string& device,
                        const Status& status);
  // The peer that is `device`'s source (its catalogue says so), empty when none.
  std::string SourcePeer(const std::string& device) const;
  // What each peer reports holding of the devices we store (their catalogues):
  // device -> peer -> last. Subscribers are not followers. For retention.
  std::map<std::string, std::map<std::string, uint64_t>> FollowerHeads() const;
  // A retention pass stored `noted` (FollowerHeads' answer): the heads of peers
  // that left before it are now the journal's to keep.
  void OnFollowersNoted(
      const std::map<std::string, std::map<std::string, uint64_t>>& noted);
  // True once after a peer's first whole catalogue: a follower the journal may
  // not know yet, to be noted soon (until then only this memory knows it holds
  // events back, and a crash would forget it).
  bool TakeNewFollowers() { return std::exchange(new_followers_, false); }
  // device -> the lowest seq a subscription served here reads next (peers and
  // subscribers): retention keeps what they have yet to be sent.
  std::map<std::string, uint64_t> ServeFloors() const;
  // Why `device` cannot be followed though peers hold more of it: every such peer
  // would send a snapshot beyond our head that cannot be checked against our
  // events (see journal::Journal::InstallSnapshot). "" when it is not stuck.
  std::string Stalled(const std::string& device) const;
  // The operator accepts a gap in `device` (`cairn resync`; the journal was told
  // too): peers with only a snapshot beyond our head may be followed again.
  void AcceptGap(const std::string& device);
  uint64_t records_served() const { return records_served_; }
  // What catalogues cost this node (status): summaries and their buckets, and
  // the entries that went whole or in answers.
  struct CatalogueStats {
    uint64_t summaries_sent = 0;
    uint64_t summaries_received = 0;
    uint64_t buckets_agreed = 0;  // of the summaries received
    uint64_t buckets_asked = 0;   // ... that differed: asked for in a CatalogueWant
    uint64_t entries_sent = 0;    // in full catalogues and answers (not deltas)
    uint64_t entries_received = 0;
    // Those messages (whole catalogues, summaries, wants, answers) on the wire.
    uint64_t bytes_sent = 0;
    uint64_t bytes_received = 0;
  };
  const CatalogueStats& catalogue_stats() const { return catalogue_stats_; }
  // Changes with every event that may move FollowerHeads or ServeFloors (a peer
  // message, a local change, a peer come or gone): unchanged, a retention pass
  // has nothing new to note.
  uint64_t activity() const { return activity_; }

 private:
  struct Serve {
    uint64_t generation = 0;  // tells its reads from those of a replaced subscription
    uint64_t sub = 0;         // the subscriber's id of it (Subscribe.sub), echoed
    uint64_t next = 1;
    uint64_t snapshot_sent = 0;  // newest snapshot seq sent on this subscription
    // A snapshot in transfer (snap_next != 0): its seq and the next chunk to send.
    uint64_t snap_seq = 0;
    uint32_t snap_next = 0;
    // Bytes we may still send; below zero after a read that overshot it (a chunk
    // ends at a signed record), until the subscriber's grants pay the debt back.
    int64_t credit = 0;
    bool reading = false;
    bool header_sent = false;
  };
  // What snapshot assemblies hold: in memory (parts not yet staged), per peer
  // and in all, and on disk (staged, or on the way there). An Assembly gives its
  // bytes back when it ends, however it ends (installed, replaced, its follow
  // erased), so the sums cannot drift; one whose staging was not handed to an
  // install leaves its id in `dropped`, for the journal to delete.
  struct AssemblyLedger {
    uint64_t memory = 0;
    std::map<std::string, uint64_t> memory_by_peer;
    uint64_t staged = 0;
    std::map<std::string, uint64_t> staged_by_peer;
    std::vector<std::pair<std::string, uint64_t>> dropped;  // device, stage id
  };
  class Assembly {
   public:
    Assembly(AssemblyLedger* ledger, std::string peer, const wire::SnapshotHeader& header,
             uint64_t stage_id);
    ~Assembly();
    Assembly(const Assembly&) = delete;
    Assembly& operator=(const Assembly&) = delete;
    const wire::SnapshotHeader& header() const { return part_.header; }
    uint64_t stage_id() const { return stage_id_; }
    // Chunks received (staged, on the way, in hand).
    uint32_t chunks() const {
      return part_.first_chunk - 1 + static_cast<uint32_t>(part_.encoded_chunks.size());
    }
    uint64_t staged() const { return staged_; }  // every chunk's bytes, for the disk
    uint64_t in_hand() const { return hand_; }   // memory of the part not yet taken
    void Add(std::string chunk);
    // The chunks in hand, moved out to be staged; `last`: with the install, which
    // uses the staging up whatever its outcome (nothing is left to drop).
    journal::SnapshotData TakePart(bool last);
    // The part taken last is on disk (or failed): its memory is free.
    void PartDone();

   private:
    void GiveBackMemory(uint64_t n);
    AssemblyLedger* ledger_;
    std::string peer_;
    uint64_t stage_id_;
    journal::SnapshotData part_;  // header, the chunks in hand from first_chunk
    uint64_t hand_ = 0;           // memory of part_'s chunks
    uint64_t flight_ = 0;         // memory of the part being staged
    uint64_t staged_ = 0;
    bool begun_ = false;        // a part was taken: the journal holds a staging
    bool handed_over_ = false;  // to the install, which uses it up
  };
  enum class Took { kClosed, kHeld, kStage, kComplete };
  // A stream message waiting for the apply before it; a snapshot chunk travels
  // as its bytes (`chunk`, the message's own chunk cleared).
  struct Queued {
    wire::Envelope m;
    std::string chunk;
    uint64_t bytes = 0;  // on the wire, for credit
  };
  struct Follow {
    std::string peer;  // empty: the peer went away while an apply was running
    // Our id of the subscription (Subscribe.sub): what arrives stamped with another
    // was sent for one we replaced, and is dropped.
    uint64_t sub = 0;
    bool applying = false;
    // The apply in flight belongs to an earlier subscription (the peer went away,
    // or we moved to another): its completion grants no credit on this one.
    bool stale_apply = false;
    std::deque<Queued> queue;  // Events and Snapshot messages, in order
    uint64_t queued_bytes = 0;
    uint64_t credit_owed = 0;  // applied on this subscription, not yet granted back
    std::string cert_der;
    std::unique_ptr<Assembly> assembling;
    std::unique_ptr<Assembly>
        installing;  // its last part taken; until the install is done
    // The snapshot headers last checked on this follow (seq and signature), so a
    // header is checked once per snapshot, not once per chunk: a few, so that a
    // peer alternating headers cannot make every message cost a signature check.
    std::deque<std::pair<uint64_t, std::string>> checked;
    // After a probe (see OnApplyDone), messages still in flight from before it are
    // dropped until one starts at this seq (or is a snapshot).
    uint64_t resync_from = 0;
    // CheckProgress calls in a row in which the peer claimed more than we hold
    // and nothing arrived or was being applied.
    int idle_ticks = 0;
    bool heard = false;  // a stream message arrived since the last CheckProgress
  };
  // What the next parts of our catalogue to a peer are: entries (all it is
  // offered, or the buckets of an answer), or a scan toward a summary.
  enum class Telling { kEntries, kScan, kAnswer };
  // A summary being made by a scan of what a peer is offered (its interest is
  // neither every device nor ours), paced like a catalogue. Devices that change
  // behind the scan are sent as entries with the summary.
  struct SummaryScan {
    BucketSums sums;  // all offered but the two named devices (SendSummary)
    size_t offered = 0;
    std::set<std::string> changed;
    // The first kFewMax offered: sent whole if the scan finds no more.
    std::vector<std::string> few;
  };
  // Changes behind a scan past which the catalogue goes whole instead (each
  // would be an entry beside the summary).
  static constexpr size_t kScanChangedMax = 4096;
  static constexpr size_t kFewMax = 256;
  // Summaries cut to our interest a peer may send per RetryPaused call (second):
  // an honest one sends one when it becomes active and one per change of our
  // interest, at most one a second; each costs us a pass over our catalogue.
  static constexpr int kMaxSummariesPerTick = 4;
  struct Peer {
    bool subscriber = false;              // serve it; never follow through it
    Interest interest;                    // what it follows (its Interest message)
    int64_t restarted_at = -1;            // RetryPaused tick of the last restart for it
    bool restart_pending = false;         // its interest changed again since: RetryPaused
    std::vector<std::string> read_scope;  // a subscriber's: see OnSubscriberActive
    PeerCatalogue catalogue;
    int64_t planned_rtt_us = 0;       // the round-trip time the last replan saw
    bool catalogue_whole = false;     // its full catalogue has arrived, every part
    bool catalogue_in_parts = false;  // receiving the parts of its full catalogue
    // Sending ours in parts: the last device sent (nullopt when not sending).
    std::optional<std::string> sending_after;
    bool sent_first_part = false;
    bool part_first = false;  // the next part starts a catalogue (full, or an answer)
    Telling telling = Telling::kEntries;
    std::optional<SummaryScan> scan;  // kScan, when the sums are not kept already
    uint64_t summary_id = 0;          // the summary last sent, until it is answered
    int summary_bits = 0;             // ... and its buckets, and those of an answer
    std::string answer_buckets;       // kAnswer: the bitmap of a CatalogueWant
    // Receiving theirs: the summary whose buckets we asked for (0: none).
    uint64_t awaiting_answer = 0;
    int64_t summary_tick = -1;  // RetryPaused tick of the summaries counted
    int summaries_in_tick = 0;
    std::map<std::string, Serve> serving;  // by device
  };

  // A peer's grant, bounded so that sums cannot overflow.
  static constexpr int64_t kMaxCreditBytes = int64_t{1} << 40;
  static int64_t ClampCredit(uint64_t bytes);

  // engine.cc
  void OnCatalogue(const std::string& peer, const wire::Catalogue& c);
  bool OverCatalogueLimit(const std::string& peer);
  void PumpCatalogue(const std::string& peer);
  void RestartCatalogue(const std::string& peer, Peer& p);
  // Starts telling `p` our catalogue from the first device.
  void BeginCatalogue(Peer& p, Telling telling);
  // A kScan step; true when what is left is entries (a small catalogue).
  bool PumpSummary(const std::string& peer, Peer& p);
  // `live`: `sums` are kept current (all_sums_, mine_sums_), not a scan's.
  void SendSummary(const std::string& peer, Peer& p, const BucketSums& sums, bool live);
  // A peer's summary: false when it was ignored or the peer closed.
  bool TakeSummary(const std::string& peer, Peer& p, const wire::Catalogue& c);
  void OnCatalogueWant(const std::string& peer, const wire::CatalogueWant& w);
  // Whether `p` is offered every device we store.
  static bool OffersAll(const Peer& p) {
    return p.read_scope.empty() && p.interest.all();
  }
  static bool MayRead(const Peer& p, const std::string& device);
  // What of ours `p` is told of: what it may read and follows.
  bool Offers(const Peer& p, const std::string& device) const;
  // Whether this node keeps `device` (groups: its certificate's when stored
  // here, else a peer's claim): its own, guarded, or in the interest.
  template <typename Groups>
  bool Wanted(const std::string& device, const Groups& groups) const {
    if (auto l = local_.find(device); l != local_.end() && l->second.source) return true;
    if (guarded_.count(device)) return true;
    return !unwanted_.count(device) && interest_.Matches(device, groups);
  }
  bool WantedLocal(const std::string& device) const;
  // Drops the follow of `device` (an apply in flight stays, as when its peer goes).
  void Unfollow(const std::string& device);
  // Emits kForget for each stored stream that is not Wanted.
  void ForgetUnwanted();
  void Replan(const std::set<std::string>* only = nullptr);
  void FollowThrough(const std::string& device, const std::string& peer);
  void Send(const std::string& peer, wire::Envelope message);
  void Close(std::string peer, const std::string& reason);
  wire::CatalogueEntry LocalEntry(const std::string& device) const;
  uint64_t LocalSnapshot(const std::string& device) const;
  void HeadsOf(const std::string& peer, const Peer& p,
               std::map<std::string, std::map<std::string, uint64_t>>* out) const;
  uint64_t LocalLast(const std::string& device) const;  // 0: not stored

  // engine_stream.cc
  void OnSubscribe(const std::string& peer, const wire::Subscribe& s);
  void Pump(const std::string& peer, const std::string& device);
  void SendStreamHeader(const std::string& peer, const std::string& device, Serve& s,
                        const std::string& cert_der, uint64_t restored_from,
                        uint64_t truncated);
  uint64_t SendSnapshotPart(const std::string& peer, const std::string& device, Serve& s,
                            const std::string& cert_der,
                            const journal::SnapshotData& part);
  void OnStreamMessage(const std::string& peer, const std::string& device,
                       wire::Envelope&& message, uint64_t bytes);
  void ApplyNext(const std::string& device);
  void OweCredit(const std::string& device, Follow& f, uint64_t bytes);
  static void TakeRecords(wire::Envelope& m, std::vector<wire::Record>* out);
  uint64_t TakeQueuedEvents(Follow& f, uint64_t batch,
                            std::vector<wire::Record>* records);
  void CheckGuard();
  uint64_t GuardTarget(const std::string& device) const;
  void Release(const std::string& device, const std::string& reason);
  void Probe(const std::string& device, const std::string& peer);
  enum class Header { kOk, kHeld, kClosed };
  // kHeld: genuine, and not beyond the snapshot we hold (it came through another
  // peer while this one was in flight, or was installed while this waited).
  Header CheckSnapshotHeader(const std::string& device, Follow& f,
                             const wire::Snapshot& s);
  // Drops a snapshot message we hold already, with what was assembled of it.
  void DropHeldSnapshot(const std::string& device, Follow& f, uint64_t seq,
                        uint64_t bytes);
  // Collects a snapshot chunk: held, a part to stage, the last one, or the peer
  // was closed (a limit).
  Took TakeSnapshotChunk(const std::string& device, Follow& f, const wire::Snapshot& s,
                         std::string chunk);
  // Over a limit of `held` (a snapshot, a peer, the node): closes `peer` with the
  // reason; true when it did.
  bool OverLimit(const std::string& peer, const std::string& device, uint64_t held,
                 uint64_t max, const std::string& of);
  // Closes the peer holding the most in `by_peer`; true when that is `peer`.
  bool CloseLargest(const std::map<std::string, uint64_t>& by_peer, uint64_t total,
                    uint64_t max, const std::string& what, const std::string& peer);

  SyncOptions options_;
  Interest interest_;
  // Devices followed on a peer's claim of a group that their certificate, once
  // it came, did not name: not followed again until the interest changes.
  std::set<std::string> unwanted_;
  std::set<std::string> forgetting_;    // kForget emitted, OnForgotten not yet
  std::set<std::string> never_forget_;  // the journal refused (its own device)
  bool forget_failed_ = false;          // a delete failed: RetryPaused tries again
  int64_t interest_clock_ = 0;          // RetryPaused calls so far
  // A round-trip time that moved by half or more since the last plan: replanned
  // from RetryPaused, at most once per kRttReplanTicks calls (see OnPeerRtt).
  static constexpr int64_t kRttReplanTicks = 10;
  // ... and, as a full replan costs an entry per device and peer, once per
  // kRttReplanTicks per 1,000 devices followed (every 100 s at 10,000): round-trip
  // times only break ties, so a late one costs little.
  int64_t RttReplanTicks() const {
    return std::max<int64_t>(
        kRttReplanTicks,
        kRttReplanTicks * static_cast<int64_t>(following_.size() / 1000));
  }
  bool rtt_replan_pending_ = false;
  int64_t rtt_replanned_at_ = -kRttReplanTicks;
  uint64_t stored_version_ = 0;
  std::function<bool(const std::string&)> high_water_;
  HeaderCheck header_check_;
  AssemblyLedger ledger_;  // before following_: outlives every Assembly
  // A stored stream with its place in the catalogue summaries (summary.h).
  struct Stored : journal::StreamInfo {
    Stored() = default;
    Stored(const journal::StreamInfo& info)  // NOLINT(google-explicit-constructor)
        : journal::StreamInfo(info) {}
    SummaryKey key;
    bool mine = false;  // the interest matches it: in mine_sums_
  };
  // Puts `s` into the sums (Sum) or takes it out (Unsum). `fine`: its bucket
  // when known already (it depends on the id alone), else computed.
  void Sum(Stored& s, std::optional<uint32_t> fine = std::nullopt);
  void Unsum(const Stored& s);
  std::map<std::string, Stored> local_;
  // What peers that left reported holding (device -> peer -> last), until a
  // retention pass has stored it (OnFollowersNoted).
  std::map<std::string, std::map<std::string, uint64_t>> departed_heads_;
  bool new_followers_ = false;
  BucketSums all_sums_;   // every stored stream
  BucketSums mine_sums_;  // those the interest matches
  uint64_t interest_digest_ = InterestDigest(Interest());
  uint64_t next_summary_ = 0;
  CatalogueStats catalogue_stats_;
  std::set<std::string> dirty_;
  std::map<std::string, Peer> peers_;  // active peers
  std::map<std::string, Follow> following_;
  std::set<std::pair<std::string, std::string>> forked_;  // (device, peer) refused
  std::set<std::pair<std::string, std::string>> probed_;  // (device, peer) re-read once
  // (device, peer) whose snapshot beyond our head could not be checked (Gap);
  // forgotten when the peer goes or its entry for the device changes.
  std::set<std::pair<std::string, std::string>> gapped_;
  // AcceptGap: device -> our head then, until a snapshot beyond it is installed.
  std::map<std::string, uint64_t> accept_gap_;
  // Whether following `device` through a peer that holds `e` would bring a
  // snapshot beyond our head that we could not check (see Stalled).
  bool WouldGap(const std::string& device, const std::string& peer,
                const wire::CatalogueEntry& e) const;
  // A local failure applying it: followed again after `wait` more RetryPaused
  // calls (1, 2, 4 … 64 s after failures in a row; see RetryPaused).
  struct Paused {
    int failures = 0;
    int wait = 0;
  };
  std::map<std::string, Paused> paused_;
  std::set<std::pair<std::string, std::string>> own_fork_checks_;  // (peer, device)
  // (device, peer) that claimed more than it delivered: passed over for `left`
  // more CheckProgress calls (0: back on trial), for demote_for_ticks doubled per
  // earlier demotion (at most 32 times), so a peer that keeps lying is tried
  // ever more rarely.
  struct Demotion {
    int left = 0;
    int strikes = 0;
    int quiet =
        0;  // CheckProgress calls since it ended (forgotten at forget_demotion_ticks)
  };
  std::map<std::pair<std::string, std::string>, Demotion> demoted_;
  bool Demoted(const std::string& device, const std::string& peer) const;

  std::vector<Action> actions_;
  uint64_t records_served_ = 0;
  uint64_t activity_ = 0;
  uint64_t serve_generation_ = 0;
  uint64_t next_sub_ = 0;    // ids of our subscriptions (Follow::sub)
  uint64_t next_stage_ = 0;  // ids of snapshot stagings (Assembly::stage_id)
  // Peers to close once the current message is handled (see CloseLargest).
  std::vector<std::pair<std::string, std::string>> deferred_closes_;
  std::set<std::string> guarded_;
  std::set<std::string> heard_;  // peers whose catalogue we have
  size_t guard_expected_peers_ = 0;
  std::map<std::string, uint64_t>
      guard_target_;  // highest head reported per guarded device
};

}  // namespace cairn::sync
