// ControlServer: the local control socket of a node, `DATA/cairn.sock` (mode
// 0600), on the node's libuv loop. Each connection carries frames (wire/frame.h)
// of ControlRequest; replies are ControlReply frames with the request's id.
//
// Nothing blocks the loop: appends go through Journal::AppendAsync and come back
// through the LoopPost; reads, snapshots and verification run on libuv's thread
// pool (QueueWork); tails pull bounded chunks there (tail_uv.h).
//
// Limits per connection: kMaxInFlight requests being served (reading pauses
// beyond), kWriteHighWaterBytes of queued replies (reading and tails pause).
//
// Thread-safety: the loop thread only.
// Ownership: owns the listening pipe and every client. The loop, the journal and
// the LoopPost must outlive it; the status provider is called on the loop.
// REQUIRES before destruction: Listen never succeeded, or Close's `done` has run.
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/status.h"
#include "journal/journal.h"
#include "node/loop_post_uv.h"
#include "wire/schema.h"

namespace cairn::node {

class Tail;

class ControlServer {
 public:
  static constexpr size_t kMaxInFlight = 64;
  static constexpr size_t kWriteHighWaterBytes = 8u << 20;
  static constexpr size_t kMaxClients = 256;
  static constexpr size_t kMaxTailsPerClient = 4096;
  static constexpr size_t kMaxWatchesPerClient = 16;
  static constexpr uint32_t kDefaultKvListLimit = 1000;

  using StatusProvider = std::function<wire::ControlStatusReply()>;
  // An operator's decision about one device (loop thread): the release of its
  // restore guard, or accepting a gap in it (resync).
  using DeviceCommand = std::function<Status(const std::string& device)>;

  ControlServer(uv_loop_t* loop, journal::Journal* journal, LoopPost* post,
                StatusProvider status);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds `path` (removing a stale socket file: the caller holds the data
  // directory's lock), sets mode 0600 and listens.
  Status Listen(const std::string& path);
  // Stops accepting and reading; lets appends in flight finish and reply, ends
  // tails, closes every connection; `done` runs once all is closed.
  void Close(std::function<void()> done);

  // A stream changed (any commit); a device not seen before is announced to
  // every ControlWatch. Loop thread.
  void OnStreamChanged(const std::string& device);
  void set_guard_releaser(DeviceCommand f) { guard_releaser_ = std::move(f); }
  void set_resyncer(DeviceCommand f) { resyncer_ = std::move(f); }
  // `cairn follow` / `unfollow`: changes (and stores) the node's interest.
  using FollowCommand =
      std::function<Result<wire::ControlInterest>(const wire::ControlFollow&)>;
  void set_follower(FollowCommand f) { follower_ = std::move(f); }
  // Devices per reply of a status (see HandleStatus).
  static constexpr int kStatusDevicesPerReply = 5'000;
  // Clients at once (at most kMaxClients); more are closed at accept.
  void set_max_clients(size_t n) { max_clients_ = std::min(n, kMaxClients); }

  // ---- for Tail (loop thread)
  enum class SendResult { kGone, kOk, kCongested };
  SendResult Send(uint64_t client, const wire::ControlReply& reply);
  // Runs `work` on the pool and `after` on the loop; counted so Close waits.
  void Offload(std::function<void()> work, std::function<void()> after);
  // A tail sent its last reply; drops it.
  void TailFinished(uint64_t client, uint64_t request);
  journal::Journal* journal() { return journal_; }
  LoopPost* post() { return post_; }

 private:
  struct Client;
  friend struct Client;

  static void OnConnection(uv_stream_t* server, int status);
  void Accept();
  void OnRead(Client& c, ssize_t n, const uv_buf_t* buf);
  void Dispatch(Client& c, wire::ControlRequest&& req);
  void Reply(uint64_t client, const wire::ControlReply& reply);
  void CloseClient(Client& c);
  void OnClientClosed(uint64_t id);
  void Settle(Client& c);
  void UpdateReading(Client& c);
  void MaybeDone();

  // control_requests.cc
  void HandleAppend(Client& c, uint64_t id, wire::ControlAppend&& req);
  void HandleStatus(Client& c, uint64_t id);
  void HandleRead(Client& c, uint64_t id, wire::ControlRequest&& req);
  void HandleTail(Client& c, uint64_t id, const wire::ControlTail& req);
  void HandleWatch(Client& c, uint64_t id);
  void HandleGuardRelease(Client& c, uint64_t id, const std::string& device);
  void HandleResync(Client& c, uint64_t id, const std::string& device);
  void HandleFollow(Client& c, uint64_t id, const wire::ControlFollow& req);
  void Finish(Client& c, uint64_t id, const wire::ControlReply& reply);

  uv_loop_t* loop_;
  journal::Journal* journal_;
  LoopPost* post_;
  StatusProvider status_;
  DeviceCommand guard_releaser_;
  DeviceCommand resyncer_;
  FollowCommand follower_;
  size_t max_clients_ = kMaxClients;
  uv_pipe_t listener_{};
  bool listening_ = false;
  bool closing_ = false;
  int pending_ = 0;  // listener close, work in flight
  std::function<void()> done_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Client>> clients_;
  std::set<std::string> known_devices_;  // what watches were told of, and before
};

// "NotFound" for Status::Code::kNotFound, and so on.
std::string CodeName(const Status& s);
wire::ControlReply ErrorReply(uint64_t id, const Status& s);

}  // namespace cairn::node
