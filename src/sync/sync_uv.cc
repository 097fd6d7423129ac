#include "sync/sync_uv.h"

#include <cstdio>
#include <memory>

namespace cairn::sync {

// One journal job on the thread pool; owns its uv_work_t and is freed in AfterWork.
struct SyncNode::Work {
  uv_work_t req;
  SyncNode* node = nullptr;
  Action action;
  std::string cert_der;        // kRead
  journal::Delivery delivery;  // kRead
  Status status;               // kApply, kInstall
};

SyncNode::SyncNode(uv_loop_t* loop, journal::Journal* journal,
                   discovery::Discovery* discovery, SyncOptions options)
    : loop_(loop),
      journal_(journal),
      discovery_(discovery),
      options_(options),
      engine_(options) {
  log_ = [](const std::string& line) {
    std::fprintf(stderr, "sync: %s\n", line.c_str());
  };
}

SyncNode::~SyncNode() = default;

void SyncNode::Start() {
  started_ = true;
  uv_async_init(loop_, &async_, &SyncNode::OnAsync);
  async_.data = this;
  uv_timer_init(loop_, &guard_timer_);
  guard_timer_.data = this;
  uv_timer_init(loop_, &flush_timer_);
  flush_timer_.data = this;
  handles_open_ = 3;
  engine_.set_high_water(
      [this](const std::string& peer) { return discovery_->AboveHighWater(peer); });
  journal_->SetCommitListener([this](const std::string& device, uint64_t) {
    {
      std::lock_guard<std::mutex> l(mu_);
      changed_.insert(device);
    }
    uv_async_send(&async_);
  });
  // Runs just before the listener above, for the same commit.
  journal_->SetCommitTap(
      [this](const std::string& device, const std::vector<std::string_view>& values) {
        size_t bytes = 0;
        for (auto v : values) bytes += v.size();
        std::lock_guard<std::mutex> l(mu_);
        if (!tap_devices_.count(device)) return;
        Tapped& t = tapped_[device];
        if (t.bytes + bytes > kMaxTappedBytes) {  // keep them contiguous: start over
          t.values.clear();
          t.bytes = 0;
          if (bytes > kMaxTappedBytes) return;
        }
        for (auto v : values) t.values.emplace_back(v);
        t.bytes += bytes;
      });
  engine_.SetLocal(journal_->Catalogue());
  if (options_.restore_guard) StartGuard();
}

// Holds appends to our own devices until peers told us their heads (see
// SyncOptions::restore_guard), or until the time limit.
void SyncNode::StartGuard() {
  std::set<std::string> own;
  for (const auto& info : journal_->Catalogue()) {
    if (info.source) own.insert(info.device);
  }
  if (own.empty()) return;
  for (const auto& device : own) journal_->HoldAppends(device);
  log_("restore guard: holding appends to " + std::to_string(own.size()) +
       " device(s) until peers report their heads (at most " +
       std::to_string(options_.guard_timeout_ms) + " ms)");
  engine_.Guard(own, options_.guard_expected_peers);
  uv_timer_start(
      &guard_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<SyncNode*>(t->data);
        self->engine_.ReleaseGuard("no answer from peers within the time limit");
        self->Perform();
      },
      static_cast<uint64_t>(options_.guard_timeout_ms), 0);
  Perform();
}

void SyncNode::Stop(std::function<void()> done) {
  stopping_ = true;
  stopped_ = std::move(done);
  if (!started_) {
    async_closed_ = true;
    return MaybeStopped();
  }
  journal_->SetCommitListener(nullptr);
  journal_->SetCommitTap(nullptr);
  auto closed = [](uv_handle_t* h) {
    auto* self = static_cast<SyncNode*>(h->data);
    if (--self->handles_open_ == 0) self->async_closed_ = true;
    self->MaybeStopped();
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&guard_timer_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_timer_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), closed);
}

void SyncNode::MaybeStopped() {
  if (stopping_ && async_closed_ && in_flight_ == 0 && stopped_) {
    auto done = std::move(stopped_);
    stopped_ = nullptr;
    done();
  }
}

void SyncNode::OnAsync(uv_async_t* handle) {
  auto* self = static_cast<SyncNode*>(handle->data);
  self->Drain();
  self->Perform();
}

void SyncNode::Drain() {
  std::set<std::string> changed;
  std::map<std::string, Tapped> tapped;
  {
    std::lock_guard<std::mutex> l(mu_);
    changed.swap(changed_);
    tapped.swap(tapped_);
  }
  // Records first: a subscriber they complete is then caught up when
  // OnLocalChange pumps, so no read is queued for them.
  for (auto& [device, t] : tapped) {
    if (!engine_.Serves(device)) continue;
    std::vector<wire::Record> records(t.values.size());
    bool parsed = true;
    for (size_t i = 0; i < records.size() && parsed; ++i) {
      parsed = records[i].ParseFromString(t.values[i]);
    }
    if (parsed) engine_.OnLocalRecords(device, std::move(records));
  }
  for (const auto& device : changed) {
    auto info = journal_->Stream(device);
    if (info.ok()) engine_.OnLocalChange(*info);
    if (change_listener_) change_listener_(device);
  }
  if (options_.catalogue_flush_ms <= 0) return engine_.Flush();
  if (changed.empty() || flush_armed_ || stopping_) return;
  flush_armed_ = true;
  uv_timer_start(
      &flush_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<SyncNode*>(t->data);
        self->flush_armed_ = false;
        self->engine_.Flush();
        self->Perform();
      },
      static_cast<uint64_t>(options_.catalogue_flush_ms), 0);
}

void SyncNode::OnPeerActive(const std::string& node_id) {
  engine_.OnPeerActive(node_id);
  Perform();
}

void SyncNode::OnSubscriberActive(const std::string& name) {
  engine_.OnSubscriberActive(name);
  Perform();
}

void SyncNode::OnPeerMessage(const std::string& node_id, wire::Envelope&& message) {
  std::string subscribed;
  if (message.has_subscribe()) subscribed = message.subscribe().device();
  engine_.OnMessage(node_id, std::move(message));
  if (!subscribed.empty() && engine_.Serves(subscribed)) {
    std::lock_guard<std::mutex> l(mu_);
    tap_devices_.insert(subscribed);
  }
  Perform();
}

void SyncNode::OnPeerDrained(const std::string& node_id) {
  engine_.OnDrained(node_id);
  Perform();
}

void SyncNode::OnPeerRtt(const std::string& node_id, int64_t rtt_us) {
  engine_.OnPeerRtt(node_id, rtt_us);
  Perform();
}

void SyncNode::OnPeerGone(const std::string& node_id, const std::string& /*reason*/) {
  engine_.OnPeerGone(node_id);
  Perform();
}

void SyncNode::Perform() {
  // Bounded: each round only performs what the previous events produced.
  for (int round = 0; round < 64; ++round) {
    std::vector<Action> actions = engine_.TakeActions();
    if (actions.empty()) return;
    for (auto& a : actions) {
      switch (a.kind) {
        case Action::Kind::kSend: {
          if (outbound_filter_) outbound_filter_(a.peer, a.message);
          Status s = discovery_->Send(a.peer, a.message);
          if (!s.ok() && s.code() != Status::Code::kFailedPrecondition) {
            log_("send to " + a.peer + " failed: " + s.ToString());
          }
          break;
        }
        case Action::Kind::kRelease:
          log_("restore guard: appends to " + a.device + " released: " + a.reason);
          journal_->ReleaseAppends(a.device);
          if (engine_.guarded().empty()) uv_timer_stop(&guard_timer_);
          break;
        case Action::Kind::kClose:
          log_("closing " + a.peer + ": " + a.reason);
          discovery_->Disconnect(a.peer, a.reason);
          break;
        default:
          Queue(std::move(a));
      }
    }
  }
  // Work is left after the bound: finish it on the next loop turn.
  if (!stopping_) uv_async_send(&async_);
}

void SyncNode::Queue(Action&& action) {
  if (stopping_) return;
  auto work = std::make_unique<Work>();
  work->node = this;
  work->action = std::move(action);
  work->req.data = work.get();
  ++in_flight_;
  uv_queue_work(loop_, &work.release()->req, &SyncNode::RunWork, &SyncNode::AfterWork);
}

// On a thread-pool thread: only the journal is touched here.
void SyncNode::RunWork(uv_work_t* req) {
  auto* w = static_cast<Work*>(req->data);
  journal::Journal* j = w->node->journal_;
  Action& a = w->action;
  switch (a.kind) {
    case Action::Kind::kRead: {
      auto cursor = j->OpenCursor(a.device, a.from);
      if (!cursor.ok()) {
        w->delivery.status = cursor.status();
        return;
      }
      w->delivery = (*cursor)->Next(a.max_bytes);
      auto cert = j->DeviceCert(a.device);
      if (cert.ok()) w->cert_der = std::move(*cert);
      return;
    }
    case Action::Kind::kReadSnapshot: {
      auto snap = j->ReadSnapshot(a.device);
      if (snap.ok()) {
        w->delivery.snapshot = std::move(*snap);
      } else {
        w->delivery.status = snap.status();
      }
      auto cert = j->DeviceCert(a.device);
      if (cert.ok()) w->cert_der = std::move(*cert);
      return;
    }
    case Action::Kind::kApply:
      w->status = j->Apply(a.device, a.cert_der, std::move(a.records)).status();
      return;
    case Action::Kind::kInstall:
      w->status = j->InstallSnapshot(a.cert_der, std::move(a.snapshot)).status();
      return;
    default:
      return;
  }
}

void SyncNode::AfterWork(uv_work_t* req, int /*status*/) {
  std::unique_ptr<Work> w(static_cast<Work*>(req->data));
  SyncNode* self = w->node;
  --self->in_flight_;
  if (!self->stopping_) {
    const Action& a = w->action;
    if (a.kind == Action::Kind::kRead || a.kind == Action::Kind::kReadSnapshot) {
      if (!w->delivery.status.ok())
        self->log_("read of " + a.device + " failed: " + w->delivery.status.ToString());
      self->engine_.OnReadDone(a.peer, a.device, w->cert_der, std::move(w->delivery),
                               a.generation);
    } else {
      self->engine_.OnApplyDone(a.peer, a.device, w->status, a.credit);
    }
    self->Drain();
    self->Perform();
  }
  self->MaybeStopped();
}

}  // namespace cairn::sync
