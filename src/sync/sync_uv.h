// SyncNode: runs the sync Engine of one node on a libuv loop. It is the
// SessionListener of the node's peer sessions (session.h: discovery's mesh),
// sends through them, and runs the journal
// work the engine asks for (cursor reads, Apply, InstallSnapshot) on libuv's
// thread pool, so the loop never waits for the disk. Journal commits (from any
// thread) reach the loop through one uv_async_t and become catalogue deltas and
// wake-ups of the subscriptions served from this node; the records a commit
// added to a served device come along (the journal's commit tap), so a live
// subscriber gets them without a thread-pool read.
//
//   SyncNode sync(loop, &journal, &discovery);  // any PeerSessions
//   discovery.set_listener(&sync);
//   sync.Start();
//   ...
//   sync.Stop([&] { /* no work in flight; sync may be destroyed */ });
//
// Thread-safety: the loop thread only, except that the journal's commit listener
// it installs runs on journal threads (it only queues and wakes the loop).
// Ownership: loop, journal and sessions must outlive the SyncNode.
// REQUIRES before destruction: Start was never called, or Stop's `done` has run.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "journal/journal.h"
#include "sync/engine.h"
#include "sync/session.h"

namespace cairn::sync {

class SyncNode final : public SessionListener {
 public:
  SyncNode(uv_loop_t* loop, journal::Journal* journal, PeerSessions* sessions,
           SyncOptions options = {});
  ~SyncNode() override;
  SyncNode(const SyncNode&) = delete;
  SyncNode& operator=(const SyncNode&) = delete;

  // REQUIRES: called once, on the loop thread.
  void Start();
  // Stops taking work, waits for journal work in flight, closes the async handle.
  void Stop(std::function<void()> done);

  void OnPeerActive(const std::string& node_id) override;
  void OnSubscriberActive(const std::string& name,
                          const std::vector<std::string>& read_scope) override;
  void OnPeerMessage(const std::string& node_id, wire::Envelope&& message) override;
  void OnPeerDrained(const std::string& node_id) override;
  void OnPeerRtt(const std::string& node_id, int64_t rtt_us) override;
  void OnPeerGone(const std::string& node_id, const std::string& reason) override;

  const Engine& engine() const { return engine_; }
  // What this node follows (Engine::SetInterest): streams it no longer covers
  // are deleted in the background.
  void SetInterest(Interest interest);
  // The operator's release of the restore guard of `device` (`cairn guard
  // release`): NotFound when it is not held. Loop thread.
  Status ReleaseGuard(const std::string& device);
  // The operator accepts a gap in `device` (`cairn resync`): the next snapshot
  // beyond our head is installed though it cannot be checked. Loop thread.
  Status Resync(const std::string& device);
  // Test seam: every outgoing message passes through `filter` first, so a test can
  // play a peer that forges what it relays. Never set outside tests.
  void set_outbound_filter_for_test(
      std::function<void(const std::string& peer, wire::Envelope&)> filter) {
    outbound_filter_ = std::move(filter);
  }
  // Told of every device committed to (loop thread), after the engine.
  void set_change_listener(std::function<void(const std::string& device)> f) {
    change_listener_ = std::move(f);
  }
  // Reports failures (a read that failed, a peer refused): default stderr.
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

 private:
  struct Work;
  void Perform();
  void Queue(Action&& action);
  void Drain();  // local commits queued by the listener
  static void OnAsync(uv_async_t* handle);
  static void RunWork(uv_work_t* req);
  static void AfterWork(uv_work_t* req, int status);
  static void ReadOwnSideOfFork(journal::Journal* j, Work& w);
  void AfterFork(Work& w);
  void MaybeStopped();
  void StartGuard();
  void UpdateHoldings();

  uv_loop_t* loop_;
  journal::Journal* journal_;
  PeerSessions* sessions_;
  SyncOptions options_;
  Engine engine_;
  uv_async_t async_;
  uv_timer_t guard_timer_;   // reminds the log of what the restore guard waits for
  uv_timer_t flush_timer_;   // catalogue deltas, see SyncOptions::catalogue_flush_ms
  uv_timer_t retry_timer_;   // every second: Engine::RetryPaused
  uv_timer_t retain_timer_;  // every retain_every_ms: a kRetain unless one runs
  bool retaining_ = false;
  bool flush_armed_ = false;
  bool started_ = false;
  bool stopping_ = false;
  bool async_closed_ = false;
  int handles_open_ = 0;
  int in_flight_ = 0;
  std::function<void()> stopped_;
  std::function<void(const std::string&)> log_;
  std::function<void(const std::string&)> change_listener_;
  std::function<void(const std::string&, wire::Envelope&)> outbound_filter_;

  // Encoded records tapped from commits, per device, until Drain; at most
  // kMaxTappedBytes each (beyond, the oldest go and Pump reads them instead).
  struct Tapped {
    std::vector<std::string> values;
    size_t bytes = 0;
  };
  static constexpr size_t kMaxTappedBytes = 1u << 20;

  std::mutex mu_;                  // guards changed_, tapped_, tap_devices_
  std::set<std::string> changed_;  // devices committed since the last Drain
  std::map<std::string, Tapped> tapped_;
  uint64_t holdings_version_ = UINT64_MAX;     // Engine::stored_version() last sent
  static constexpr int kIdleRetainEvery = 12;  // retain passes, when nothing moved
  uint64_t retained_activity_ = UINT64_MAX;    // Engine::activity() at the last pass
  int idle_retain_skips_ = 0;
  std::vector<std::string> wanted_;    // Engine::Unheld() last sent
  std::set<std::string> tap_devices_;  // devices a peer subscribed to (only grows)
};

}  // namespace cairn::sync
