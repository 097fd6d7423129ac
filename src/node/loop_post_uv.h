// LoopPost: how other threads hand work to the loop thread. Post() queues a
// closure and wakes the loop through one uv_async_t; the loop runs queued closures
// in order, at most kMaxPerWake per wake-up (then wakes itself again).
//
// QueueWork(): runs `work` on libuv's thread pool and `after` on the loop thread.
//
// Thread-safety: Post from any thread; everything else on the loop thread.
// Ownership: the LoopPost owns its uv_async_t. REQUIRES before destruction: Init
// was never called, or Close's `done` has run. Closures posted after Close are
// dropped (destroyed on the posting thread or with the LoopPost).
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <mutex>

#include "base/status.h"

namespace cairn::node {

class LoopPost {
 public:
  static constexpr size_t kMaxPerWake = 1024;

  explicit LoopPost(uv_loop_t* loop) : loop_(loop) {}
  LoopPost(const LoopPost&) = delete;
  LoopPost& operator=(const LoopPost&) = delete;

  Status Init();
  void Post(std::function<void()> fn);
  void Close(std::function<void()> done);

 private:
  static void OnAsync(uv_async_t* handle);
  void Drain(size_t max);

  uv_loop_t* loop_;
  uv_async_t async_{};
  std::function<void()> closed_;
  std::mutex mu_;  // guards queue_, open_
  std::deque<std::function<void()>> queue_;
  bool open_ = false;
};

// Runs `work` on the thread pool, then `after` on the loop thread (also when the
// loop is stopping: libuv runs every queued work before uv_run returns).
Status QueueWork(uv_loop_t* loop, std::function<void()> work,
                 std::function<void()> after);

}  // namespace cairn::node
