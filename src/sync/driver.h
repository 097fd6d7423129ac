// Driver: runs one node's sync Engine against its journal, on any host. The
// engine decides (sans-I/O); the driver performs what it decides: messages go to
// the peer sessions, journal work (cursor reads, applies, snapshot parts,
// retention, forgets) is packed into Jobs, and journal commits become catalogue
// deltas and wake-ups of the subscriptions served from this node. The host says
// where and when: SyncNode (sync_uv.h) runs jobs on libuv's thread pool and the
// rest on the loop; the simulator (tests/sim) runs everything on one thread in
// simulated time. Both run this code, so what the simulator checks is what a
// node does.
//
//   Driver d(&host, &journal, &sessions, options);
//   d.Start();                 // takes the journal's commit listener and tap
//   ... host calls: the SessionListener methods, Tick() every second,
//       Retain() every retain_every_ms, Flush() when ArmFlush's time is up,
//       Wake() after DriverHost::Wake, Complete(job) after RunJob(job) ...
//   d.Stop();                  // gives the listener back; completions are dropped
//
// Thread-safety: the host's thread only, except RunJob (any thread; touches only
// the journal) and the commit listener it installs (journal threads; only queues
// and calls DriverHost::Wake).
// Ownership: host, journal and sessions must outlive the Driver.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "sync/engine.h"
#include "sync/session.h"

namespace cairn::sync {

// One piece of journal work and what it gave.
struct Job {
  Action action;
  std::string cert_der;        // kRead, kReadSnapshot
  journal::Delivery delivery;  // kRead, kReadSnapshot
  Status status;               // kApply, kStage, kInstall, kOwnFork, kForget, kRetain
  uint64_t fork_seq = 0;       // kNotifyFork: ours; kOwnFork: where ours forked
  uint64_t deleted = 0;        // kRetain
};

class DriverHost {
 public:
  virtual ~DriverHost() = default;
  // Runs Driver::RunJob(journal, *job) (on any thread), then Driver::Complete
  // on the host's thread.
  virtual void QueueJob(std::unique_ptr<Job> job) = 0;
  // From any thread: call Driver::Wake soon, on the host's thread.
  virtual void Wake() = 0;
  // Call Driver::Flush in `ms` milliseconds (asked at most once until it runs).
  virtual void ArmFlush(int ms) = 0;
  // No device is held by the restore guard any more: its reminder may stop.
  virtual void GuardsReleased() {}
};

class Driver final : public SessionListener {
 public:
  Driver(DriverHost* host, journal::Journal* journal, PeerSessions* sessions,
         SyncOptions options);
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Takes the journal's commit listener and tap, tells the engine what is
  // stored, starts the restore guard. Returns whether any device is guarded
  // (the host reminds with RemindGuard every guard_remind_ms while so).
  bool Start();
  // Gives the listener and tap back; no work is queued or completed after it.
  void Stop();
  bool stopping() const { return stopping_; }

  void OnPeerActive(const std::string& node_id) override;
  void OnSubscriberActive(const std::string& name,
                          const std::vector<std::string>& read_scope) override;
  void OnPeerMessage(const std::string& node_id, wire::Envelope&& message) override;
  void OnPeerDrained(const std::string& node_id) override;
  void OnPeerRtt(const std::string& node_id, int64_t rtt_us) override;
  void OnPeerGone(const std::string& node_id, const std::string& reason) override;

  // Every second: paused follows, stalled peers, holdings.
  void Tick();
  // Every retain_every_ms: a retention pass unless one runs or nothing moved.
  void Retain();
  // ArmFlush's time is up: the catalogue deltas go.
  void Flush();
  // DriverHost::Wake's answer: commits become deltas, queued actions run.
  void Wake();
  // Logs what the restore guard waits for; false when nothing is guarded.
  bool RemindGuard();
  // On any thread: the journal side of `job`.
  static void RunJob(journal::Journal* journal, Job& job);
  // On the host's thread, after RunJob.
  void Complete(Job& job);

  const Engine& engine() const { return engine_; }
  void SetInterest(Interest interest);
  Status ReleaseGuard(const std::string& device);
  Status Resync(const std::string& device);
  void set_outbound_filter(std::function<void(const std::string&, wire::Envelope&)> f) {
    outbound_filter_ = std::move(f);
  }
  void set_change_listener(std::function<void(const std::string& device)> f) {
    change_listener_ = std::move(f);
  }
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

 private:
  void Perform();
  void Queue(Action&& action);
  void StartGuard();
  void UpdateHoldings();
  void StartRetainPass(bool note_only);
  static void ReadOwnSideOfFork(journal::Journal* j, Job& w);
  void AfterFork(Job& w);

  DriverHost* host_;
  journal::Journal* journal_;
  PeerSessions* sessions_;
  SyncOptions options_;
  Engine engine_;
  bool stopping_ = false;
  bool retaining_ = false;
  bool flush_armed_ = false;
  std::function<void(const std::string&)> log_;
  std::function<void(const std::string&)> change_listener_;
  std::function<void(const std::string&, wire::Envelope&)> outbound_filter_;

  // Encoded records tapped from commits, per device, until Wake; at most
  // kMaxTappedBytes each (beyond, the oldest go and Pump reads them instead).
  struct Tapped {
    std::vector<std::string> values;
    size_t bytes = 0;
  };
  static constexpr size_t kMaxTappedBytes = 1u << 20;

  std::mutex mu_;                  // guards changed_, tapped_, tap_devices_
  std::set<std::string> changed_;  // devices committed since the last Wake
  std::map<std::string, Tapped> tapped_;
  std::set<std::string> tap_devices_;       // devices a peer subscribed to (only grows)
  uint64_t holdings_version_ = UINT64_MAX;  // Engine::stored_version() last sent
  static constexpr int kIdleRetainEvery = 12;  // retain passes, when nothing moved
  uint64_t retained_activity_ = UINT64_MAX;    // Engine::activity() at the last pass
  int idle_retain_skips_ = 0;
  size_t retain_calls_ = 0;    // Retain calls since the last pass
  bool note_pending_ = false;  // new followers to store once the pass running ends
  static constexpr int kNoteEveryTicks = 2;
  int ticks_since_note_ = kNoteEveryTicks;
  std::vector<std::string> wanted_;  // Engine::Unheld() last sent
};

}  // namespace cairn::sync
