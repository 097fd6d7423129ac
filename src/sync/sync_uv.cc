#include "sync/sync_uv.h"

#include <memory>

namespace cairn::sync {

// One journal job on the thread pool; owns its uv_work_t and is freed in AfterWork.
struct SyncNode::Work {
  uv_work_t req;
  SyncNode* node = nullptr;
  std::unique_ptr<Job> job;
};

SyncNode::SyncNode(uv_loop_t* loop, journal::Journal* journal, PeerSessions* sessions,
                   SyncOptions options)
    : loop_(loop),
      journal_(journal),
      options_(options),
      driver_(this, journal, sessions, options) {}

SyncNode::~SyncNode() = default;

void SyncNode::Start() {
  started_ = true;
  uv_async_init(loop_, &async_, &SyncNode::OnAsync);
  async_.data = this;
  uv_timer_init(loop_, &guard_timer_);
  guard_timer_.data = this;
  uv_timer_init(loop_, &flush_timer_);
  flush_timer_.data = this;
  uv_timer_init(loop_, &retry_timer_);
  retry_timer_.data = this;
  uv_timer_start(
      &retry_timer_,
      [](uv_timer_t* t) { static_cast<SyncNode*>(t->data)->driver_.Tick(); }, 1000, 1000);
  uv_timer_init(loop_, &retain_timer_);
  retain_timer_.data = this;
  if (options_.retain_every_ms > 0) {
    const auto every = static_cast<uint64_t>(options_.retain_every_ms);
    uv_timer_start(
        &retain_timer_,
        [](uv_timer_t* t) { static_cast<SyncNode*>(t->data)->driver_.Retain(); }, every,
        every);
  }
  handles_open_ = 5;
  if (driver_.Start()) {
    const auto every = static_cast<uint64_t>(options_.guard_remind_ms);
    uv_timer_start(
        &guard_timer_,
        [](uv_timer_t* t) {
          if (!static_cast<SyncNode*>(t->data)->driver_.RemindGuard()) uv_timer_stop(t);
        },
        every, every);
  }
}

void SyncNode::Stop(std::function<void()> done) {
  stopping_ = true;
  stopped_ = std::move(done);
  if (!started_) {
    async_closed_ = true;
    return MaybeStopped();
  }
  driver_.Stop();
  auto closed = [](uv_handle_t* h) {
    auto* self = static_cast<SyncNode*>(h->data);
    if (--self->handles_open_ == 0) self->async_closed_ = true;
    self->MaybeStopped();
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&guard_timer_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_timer_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&retain_timer_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), closed);
}

void SyncNode::MaybeStopped() {
  if (stopping_ && async_closed_ && in_flight_ == 0 && stopped_) {
    auto done = std::move(stopped_);
    stopped_ = nullptr;
    done();
  }
}

void SyncNode::OnPeerActive(const std::string& node_id) { driver_.OnPeerActive(node_id); }

void SyncNode::OnSubscriberActive(const std::string& name,
                                  const std::vector<std::string>& read_scope) {
  driver_.OnSubscriberActive(name, read_scope);
}

void SyncNode::OnPeerMessage(const std::string& node_id, wire::Envelope&& message) {
  driver_.OnPeerMessage(node_id, std::move(message));
}

void SyncNode::OnPeerDrained(const std::string& node_id) {
  driver_.OnPeerDrained(node_id);
}

void SyncNode::OnPeerRtt(const std::string& node_id, int64_t rtt_us) {
  driver_.OnPeerRtt(node_id, rtt_us);
}

void SyncNode::OnPeerGone(const std::string& node_id, const std::string& reason) {
  driver_.OnPeerGone(node_id, reason);
}

// From any thread (the journal's commit listener) or the loop.
void SyncNode::Wake() {
  if (!stopping_) uv_async_send(&async_);
}

void SyncNode::OnAsync(uv_async_t* handle) {
  static_cast<SyncNode*>(handle->data)->driver_.Wake();
}

void SyncNode::ArmFlush(int ms) {
  if (stopping_) return;
  uv_timer_start(
      &flush_timer_,
      [](uv_timer_t* t) { static_cast<SyncNode*>(t->data)->driver_.Flush(); },
      static_cast<uint64_t>(ms), 0);
}

void SyncNode::GuardsReleased() {
  if (started_ && !stopping_) uv_timer_stop(&guard_timer_);
}

void SyncNode::QueueJob(std::unique_ptr<Job> job) {
  if (stopping_) return;
  auto work = std::make_unique<Work>();
  work->node = this;
  work->job = std::move(job);
  work->req.data = work.get();
  ++in_flight_;
  uv_queue_work(loop_, &work.release()->req, &SyncNode::RunWork, &SyncNode::AfterWork);
}

// On a thread-pool thread: only the journal is touched here.
void SyncNode::RunWork(uv_work_t* req) {
  auto* w = static_cast<Work*>(req->data);
  Driver::RunJob(w->node->journal_, *w->job);
}

void SyncNode::AfterWork(uv_work_t* req, int /*status*/) {
  std::unique_ptr<Work> w(static_cast<Work*>(req->data));
  SyncNode* self = w->node;
  --self->in_flight_;
  if (!self->stopping_) self->driver_.Complete(*w->job);
  self->MaybeStopped();
}

}  // namespace cairn::sync
