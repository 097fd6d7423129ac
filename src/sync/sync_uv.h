// SyncNode: the libuv host of one node's sync Driver (driver.h). It is the
// SessionListener of the node's peer sessions (session.h: discovery's mesh) and
// hands what they say to the driver; it runs the journal work the engine asks
// for (cursor reads, Apply, InstallSnapshot) on libuv's thread pool, so the loop
// never waits for the disk; journal commits (from any thread) reach the loop
// through one uv_async_t; timers tick the driver every second, flush catalogue
// deltas, run retention and remind of the restore guard.
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

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "sync/driver.h"
#include "sync/engine.h"
#include "sync/session.h"

namespace cairn::sync {

class SyncNode final : public SessionListener, private DriverHost {
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

  const Engine& engine() const { return driver_.engine(); }
  // What this node follows (Engine::SetInterest): streams it no longer covers
  // are deleted in the background.
  void SetInterest(Interest interest) { driver_.SetInterest(std::move(interest)); }
  // The operator's release of the restore guard of `device` (`cairn guard
  // release`): NotFound when it is not held. Loop thread.
  Status ReleaseGuard(const std::string& device) { return driver_.ReleaseGuard(device); }
  // The operator accepts a gap in `device` (`cairn resync`): the next snapshot
  // beyond our head is installed though it cannot be checked. Loop thread.
  Status Resync(const std::string& device) { return driver_.Resync(device); }
  // Test seam: every outgoing message passes through `filter` first, so a test can
  // play a peer that forges what it relays. Never set outside tests.
  void set_outbound_filter_for_test(
      std::function<void(const std::string& peer, wire::Envelope&)> filter) {
    driver_.set_outbound_filter(std::move(filter));
  }
  // Told of every device committed to (loop thread), after the engine.
  void set_change_listener(std::function<void(const std::string& device)> f) {
    driver_.set_change_listener(std::move(f));
  }
  // Reports failures (a read that failed, a peer refused): default stderr.
  void set_log(std::function<void(const std::string&)> log) {
    driver_.set_log(std::move(log));
  }

 private:
  struct Work;
  // DriverHost
  void QueueJob(std::unique_ptr<Job> job) override;
  void Wake() override;
  void ArmFlush(int ms) override;
  void GuardsReleased() override;

  static void OnAsync(uv_async_t* handle);
  static void RunWork(uv_work_t* req);
  static void AfterWork(uv_work_t* req, int status);
  void MaybeStopped();

  uv_loop_t* loop_;
  journal::Journal* journal_;
  SyncOptions options_;
  Driver driver_;
  uv_async_t async_;
  uv_timer_t guard_timer_;   // reminds the log of what the restore guard waits for
  uv_timer_t flush_timer_;   // catalogue deltas, see SyncOptions::catalogue_flush_ms
  uv_timer_t retry_timer_;   // every second: Driver::Tick
  uv_timer_t retain_timer_;  // every retain_every_ms: Driver::Retain
  bool started_ = false;
  std::atomic<bool> stopping_{false};  // read by Wake on journal threads
  bool async_closed_ = false;
  int handles_open_ = 0;
  int in_flight_ = 0;
  std::function<void()> stopped_;
};

}  // namespace cairn::sync
