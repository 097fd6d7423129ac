#include "node/loop_post_uv.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace cairn::node {

Status LoopPost::Init() {
  int rc = uv_async_init(loop_, &async_, &LoopPost::OnAsync);
  if (rc != 0) return Status::IOError(std::string("uv_async_init: ") + uv_strerror(rc));
  async_.data = this;
  std::lock_guard<std::mutex> l(mu_);
  open_ = true;
  return Status::Ok();
}

void LoopPost::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!open_) return;
    queue_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
}

void LoopPost::OnAsync(uv_async_t* handle) {
  static_cast<LoopPost*>(handle->data)->Drain(kMaxPerWake);
}

// Runs at most `max` closures; wakes the loop again when more remain and the
// handle is still open.
void LoopPost::Drain(size_t max) {
  for (size_t i = 0; i < max; ++i) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (queue_.empty()) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
  std::lock_guard<std::mutex> l(mu_);
  if (open_) uv_async_send(&async_);  // more remain: come back after other handles
}

void LoopPost::Close(std::function<void()> done) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!open_) {
      if (done) done();
      return;
    }
    open_ = false;
  }
  closed_ = std::move(done);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), [](uv_handle_t* h) {
    auto* self = static_cast<LoopPost*>(h->data);
    self->Drain(SIZE_MAX);  // what was posted before Close still runs
    if (self->closed_) std::move(self->closed_)();
  });
}

namespace {

struct WorkReq {
  uv_work_t req{};
  std::function<void()> work;
  std::function<void()> after;
};

}  // namespace

Status QueueWork(uv_loop_t* loop, std::function<void()> work,
                 std::function<void()> after) {
  auto w = std::make_unique<WorkReq>();
  w->work = std::move(work);
  w->after = std::move(after);
  w->req.data = w.get();
  int rc = uv_queue_work(
      loop, &w->req, [](uv_work_t* r) { static_cast<WorkReq*>(r->data)->work(); },
      [](uv_work_t* r, int) {
        std::unique_ptr<WorkReq> owned(static_cast<WorkReq*>(r->data));
        owned->after();
      });
  if (rc != 0) return Status::IOError(std::string("uv_queue_work: ") + uv_strerror(rc));
  w.release();  // owned by libuv until the after-callback
  return Status::Ok();
}

}  // namespace cairn::node
