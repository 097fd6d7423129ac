#include "node/tail_uv.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "node/control_server_uv.h"
#include "node/log.h"

namespace cairn::node {
namespace {

size_t BytesOf(const journal::Delivery& d) {
  size_t n = 0;
  for (const auto& r : d.records) n += r.ByteSizeLong();
  if (d.snapshot) {
    for (const auto& c : d.snapshot->chunks) n += c.ByteSizeLong();
  }
  return n;
}

}  // namespace

Tail::Tail(ControlServer* server, uint64_t client, uint64_t request, std::string device,
           uint64_t from, bool follow)
    : server_(server),
      client_(client),
      request_(request),
      device_(std::move(device)),
      next_(from),
      follow_(follow) {}

Tail::~Tail() { sub_.reset(); }  // before mu_ and the queue its callback uses

void Tail::Start() {
  if (!follow_) {  // a followed device may still arrive; a plain tail names the miss
    auto known = server_->journal()->Stream(device_);
    if (!known.ok()) return End(known.status());
  }
  auto cursor = server_->journal()->OpenCursor(device_, next_);
  if (!cursor.ok()) return End(cursor.status());
  cursor_ = std::move(cursor).value();
  Pull();
}

void Tail::Pull() {
  if (cancelled_ || working_ || paused_ || live_) return;
  working_ = true;
  auto self = shared_from_this();
  auto out = std::make_shared<journal::Delivery>();
  server_->Offload([self, out] { *out = self->cursor_->Next(kPieceBytes); },
                   [self, out] {
                     self->working_ = false;
                     if (!self->cancelled_) self->OnPiece(std::move(*out));
                   });
}

void Tail::OnPiece(journal::Delivery d) {
  if (!d.status.ok()) return End(d.status);
  if (d.empty()) {
    if (!follow_) return End(Status::Ok());
    journal::Delivery mark;  // tell the client it has caught up
    if (!Forward(mark, true)) return;
    return GoLive();
  }
  if (Forward(d, false)) Pull();
}

bool Tail::Forward(const journal::Delivery& d, bool caught_up) {
  std::vector<wire::ControlReply> replies;
  auto base = [&] {
    wire::ControlReply r;
    r.set_id(request_);
    r.mutable_tail()->set_device(device_);
    return r;
  };
  if (d.snapshot) {
    size_t chunks = std::max<size_t>(d.snapshot->chunks.size(), 1);  // empty view: one
    for (size_t i = 0; i < chunks; ++i) {
      wire::ControlReply r = base();
      auto* snap = r.mutable_tail()->mutable_snapshot();
      *snap->mutable_header() = d.snapshot->header;
      snap->set_index(static_cast<uint32_t>(i));
      if (i < d.snapshot->chunks.size()) *snap->mutable_chunk() = d.snapshot->chunks[i];
      r.mutable_tail()->set_restored_from(d.restored_from);
      if (i == 0) r.mutable_tail()->set_truncated(d.truncated);
      replies.push_back(std::move(r));
    }
    next_ = std::max(next_, d.snapshot->header.seq() + 1);
  }
  if (!d.records.empty() || caught_up) {
    wire::ControlReply r = base();
    for (const auto& rec : d.records) *r.mutable_tail()->add_records() = rec;
    r.mutable_tail()->set_caught_up(caught_up);
    replies.push_back(std::move(r));
  }
  if (!d.records.empty()) next_ = d.records.back().seq() + 1;
  for (const auto& r : replies) {
    auto sent = server_->Send(client_, r);
    if (sent == ControlServer::SendResult::kGone) {
      Cancel();
      return false;
    }
    if (sent == ControlServer::SendResult::kCongested) paused_ = true;
  }
  return true;
}

void Tail::Resume() {
  if (!paused_ || cancelled_) return;
  paused_ = false;
  if (live_) {
    OnLive();
  } else {
    Pull();
  }
}

void Tail::GoLive() {
  auto self = shared_from_this();
  std::weak_ptr<Tail> weak = self;
  LoopPost* post = server_->post();
  auto sub = server_->journal()->Subscribe(
      device_, next_, [this, weak, post](const journal::Delivery& d) {
        std::lock_guard<std::mutex> l(mu_);
        if (overflow_) return;
        size_t bytes = BytesOf(d);
        if (live_bytes_ + bytes > kMaxLiveBytes) {
          overflow_ = true;  // the loop pulls from next_ instead
        } else {
          live_queue_.push_back(d);
          live_bytes_ += bytes;
        }
        if (posted_) return;
        posted_ = true;
        post->Post([weak] {
          if (auto t = weak.lock()) t->OnLive();
        });
      });
  if (!sub.ok()) return End(sub.status());
  sub_ = std::move(sub).value();
  cursor_.reset();  // an open cursor holds retention back at its seq
  live_ = true;
}

void Tail::OnLive() {
  if (cancelled_ || paused_) return;  // Resume comes back here
  std::deque<journal::Delivery> batch;
  bool overflow = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    posted_ = false;
    batch.swap(live_queue_);
    live_bytes_ = 0;
    overflow = overflow_;
  }
  for (const auto& d : batch) {
    if (!d.status.ok()) return End(d.status);
    if (!Forward(d, false)) return;
  }
  if (overflow) BackToPulling();
}

// The live queue overflowed: drop the subscription and read on from next_.
void Tail::BackToPulling() {
  CAIRN_LOG(kDebug) << "control: tail of " << device_ << " fell behind; pulling";
  sub_.reset();
  {
    std::lock_guard<std::mutex> l(mu_);
    live_queue_.clear();
    live_bytes_ = 0;
    overflow_ = false;
  }
  live_ = false;
  auto cursor = server_->journal()->OpenCursor(device_, next_);
  if (!cursor.ok()) return End(cursor.status());
  cursor_ = std::move(cursor).value();
  Pull();
}

void Tail::End(const Status& s) {
  if (cancelled_) return;
  wire::ControlReply r;
  if (s.ok()) {
    r.set_id(request_);
    r.set_done(true);
    r.mutable_tail()->set_device(device_);
    r.mutable_tail()->set_caught_up(true);
  } else {
    r = ErrorReply(request_, s);
  }
  server_->Send(client_, r);
  Cancel();
  server_->TailFinished(client_, request_);  // may destroy our owner's reference
}

void Tail::Cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  sub_.reset();  // waits for a callback in progress; none can start afterwards
}

}  // namespace cairn::node
