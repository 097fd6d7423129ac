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
  Status status;               // kApply, kStage, kInstall, kOwnFork
  uint64_t fork_seq = 0;       // kNotifyFork: ours; kOwnFork: where ours forked
  uint64_t deleted = 0;        // kRetain
};

SyncNode::SyncNode(uv_loop_t* loop, journal::Journal* journal, PeerSessions* sessions,
                   SyncOptions options)
    : loop_(loop),
      journal_(journal),
      sessions_(sessions),
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
  uv_timer_init(loop_, &retry_timer_);
  retry_timer_.data = this;
  uv_timer_start(
      &retry_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<SyncNode*>(t->data);
        self->engine_.RetryPaused();
        self->engine_.CheckProgress();
        self->Perform();
        self->UpdateHoldings();
      },
      1000, 1000);
  uv_timer_init(loop_, &retain_timer_);
  retain_timer_.data = this;
  if (options_.retain_every_ms > 0) {
    const auto every = static_cast<uint64_t>(options_.retain_every_ms);
    uv_timer_start(
        &retain_timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<SyncNode*>(t->data);
          if (self->retaining_ || self->stopping_) return;
          // Nothing happened since the last pass: only every kIdleRetainEvery-th
          // runs (for age limits), so an idle node does not rebuild and store
          // every follower's heads every few seconds.
          const uint64_t activity = self->engine_.activity();
          if (activity == self->retained_activity_ &&
              ++self->idle_retain_skips_ < kIdleRetainEvery) {
            return;
          }
          self->retained_activity_ = activity;
          self->idle_retain_skips_ = 0;
          self->retaining_ = true;
          Action a;
          a.kind = Action::Kind::kRetain;
          a.heads = self->engine_.FollowerHeads();
          a.floors = self->engine_.ServeFloors();
          self->Queue(std::move(a));
        },
        every, every);
  }
  handles_open_ = 5;
  engine_.set_high_water(
      [this](const std::string& peer) { return sessions_->AboveHighWater(peer); });
  // One signature check per snapshot received, on the loop: before its chunks.
  engine_.set_snapshot_header_check(
      [this](const std::string& cert_der, const wire::SnapshotHeader& h) {
        return journal_->CheckSnapshotHeader(cert_der, h);
      });
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

// Refuses appends to our own devices until peers told us their heads (see
// SyncOptions::restore_guard) or the operator releases them; says so in the log
// now and every guard_remind_ms while any is held.
void SyncNode::StartGuard() {
  std::set<std::string> own;
  for (const auto& info : journal_->Catalogue()) {
    if (info.source) own.insert(info.device);
  }
  if (own.empty()) return;
  for (const auto& device : own) journal_->HoldAppends(device);
  engine_.Guard(own, options_.guard_expected_peers);
  auto remind = [](uv_timer_t* t) {
    auto* self = static_cast<SyncNode*>(t->data);
    for (const auto& device : self->engine_.guarded()) {
      self->log_("restore guard: appends to '" + device + "' refused, " +
                 self->engine_.GuardState(device) + "; `cairn guard release " + device +
                 "` starts it without them");
    }
    if (self->engine_.guarded().empty()) uv_timer_stop(t);
  };
  remind(&guard_timer_);
  const auto every = static_cast<uint64_t>(options_.guard_remind_ms);
  uv_timer_start(&guard_timer_, remind, every, every);
  Perform();
}

Status SyncNode::Resync(const std::string& device) {
  auto info = journal_->Stream(device);
  if (!info.ok()) return info.status();
  if (info->source && !journal_->AppendsHeld(device)) {
    return Status::FailedPrecondition(
        "this node is the source of '" + device +
        "' and appends to it; only a replica, or a source its restore guard holds, "
        "resyncs");
  }
  journal_->AcceptGap(device);
  engine_.AcceptGap(device);
  log_("resync: the next snapshot of '" + device + "' beyond our head " +
       std::to_string(info->last) +
       " is accepted unchecked (the operator's decision); our events below it go");
  Perform();
  return Status::Ok();
}

Status SyncNode::ReleaseGuard(const std::string& device) {
  if (!engine_.ReleaseGuard(device, "released by the operator")) {
    return Status::NotFound("appends to '" + device + "' are not held");
  }
  log_("restore guard: '" + device +
       "' released by the operator; its next seq follows what this node holds");
  Perform();
  return Status::Ok();
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

void SyncNode::SetInterest(Interest interest) {
  engine_.SetInterest(std::move(interest));
  Perform();
  UpdateHoldings();
}

// Tells the transport what we store (when that changed) and what we follow that
// no peer offers, so that it can find a holder.
void SyncNode::UpdateHoldings() {
  if (stopping_) return;
  if (engine_.stored_version() != holdings_version_) {
    holdings_version_ = engine_.stored_version();
    sessions_->SetStored(engine_.StoredDevices());
  }
  std::vector<std::string> unheld = engine_.Unheld();
  if (!unheld.empty() || !wanted_.empty()) {
    wanted_ = unheld;
    sessions_->SetWanted(std::move(unheld));
  }
}

void SyncNode::OnPeerActive(const std::string& node_id) {
  engine_.OnPeerActive(node_id);
  Perform();
}

void SyncNode::OnSubscriberActive(const std::string& name,
                                  const std::vector<std::string>& read_scope) {
  engine_.OnSubscriberActive(name, read_scope);
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
          Status s = sessions_->Send(a.peer, a.message);
          if (!s.ok() && s.code() != Status::Code::kFailedPrecondition) {
            log_("send to " + a.peer + " failed: " + s.ToString());
            const auto& m = a.message;
            if (m.has_events() || m.has_snapshot() || m.has_stream_header() ||
                m.has_catalogue()) {
              // What follows would leave a gap (in a stream, in a catalogue):
              // start over (the subscriber resubscribes after what it holds, the
              // catalogue is sent again) rather than skip.
              sessions_->Disconnect(a.peer, "could not queue stream data (" +
                                                s.message() + "); starting over");
            }
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
          sessions_->Disconnect(a.peer, a.reason);
          break;
        case Action::Kind::kLog:
          log_(a.reason);
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

// Our records of `device` from its newest fork proof's seq up to a signed one:
// what the source needs to see that its own device forked.
void SyncNode::ReadOwnSideOfFork(journal::Journal* j, Work& w) {
  const std::string& device = w.action.device;
  uint64_t seq = 0;
  int64_t newest = -1;
  for (const auto& p : j->Forks()) {
    if (p.device() == device && p.detected_us() > newest) {
      newest = p.detected_us();
      seq = p.seq();
    }
  }
  if (seq == 0) return;
  auto cursor = j->OpenCursor(device, seq);
  if (!cursor.ok()) return;
  w.delivery = (*cursor)->Next(1u << 20);
  w.fork_seq = seq;
}

void SyncNode::AfterFork(Work& w) {
  const Action& a = w.action;
  if (a.kind == Action::Kind::kNotifyFork) {
    if (w.delivery.records.empty() || w.delivery.records.front().seq() != w.fork_seq)
      return;
    wire::Envelope m;
    m.mutable_fork_notice()->set_device(a.device);
    for (auto& r : w.delivery.records)
      *m.mutable_fork_notice()->add_records() = std::move(r);
    if (sessions_->Send(a.peer, m).ok()) {
      log_("told " + a.peer + ", the source of " + a.device +
           ", that its device forked at seq " + std::to_string(w.fork_seq));
    }
    return;
  }
  engine_.OnOwnForkChecked(a.peer, a.device, w.status);
  if (!w.status.ok()) {
    log_("fork notice from " + a.peer + " about " + a.device +
         " refused: " + w.status.ToString());
  } else if (w.fork_seq > 0) {
    log_("OUR OWN DEVICE " + a.device + " HAS FORKED at seq " +
         std::to_string(w.fork_seq) + ": " + a.peer +
         " holds another history signed with this node's key (a " +
         "restored or duplicated source); kept ours, proof stored (cairn status)");
  }
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
      auto snap = j->ReadSnapshotChunks(a.device, a.snapshot_seq, a.chunk, a.max_bytes);
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
    case Action::Kind::kStage:
      w->status = j->StageSnapshot(a.stage_id, std::move(a.snapshot));
      return;
    case Action::Kind::kInstall:
      w->status =
          j->InstallSnapshot(a.cert_der, std::move(a.snapshot), a.stage_id).status();
      return;
    case Action::Kind::kDropStage:
      j->DropStaged(a.device, a.stage_id);
      return;
    case Action::Kind::kNotifyFork:
      return ReadOwnSideOfFork(j, *w);
    case Action::Kind::kForget:
      w->status = j->Forget(a.device);
      return;
    case Action::Kind::kRetain: {
      w->status = j->NoteFollowers(a.heads);
      if (!w->status.ok()) return;
      auto deleted = j->Retain(a.floors);
      w->status = deleted.status();
      if (deleted.ok()) w->deleted = *deleted;
      return;
    }
    case Action::Kind::kOwnFork: {
      auto seq = j->RecordOwnFork(a.device, a.records);
      w->status = seq.status();
      if (seq.ok()) w->fork_seq = *seq;
      return;
    }
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
    if (a.kind == Action::Kind::kRetain) {
      self->retaining_ = false;
      if (!w->status.ok()) self->log_("retention pass failed: " + w->status.ToString());
      if (w->deleted > 0) {
        self->log_("retention: deleted " + std::to_string(w->deleted) +
                   " events that every required follower holds (or past a limit)");
      }
    } else if (a.kind == Action::Kind::kDropStage) {
      // Nothing waits on it.
    } else if (a.kind == Action::Kind::kForget) {
      if (w->status.ok()) self->log_("deleted " + a.device + ": no longer followed");
      self->engine_.OnForgotten(a.device, w->status);
    } else if (a.kind == Action::Kind::kNotifyFork || a.kind == Action::Kind::kOwnFork) {
      self->AfterFork(*w);
    } else if (a.kind == Action::Kind::kRead || a.kind == Action::Kind::kReadSnapshot) {
      if (!w->delivery.status.ok())
        self->log_("read of " + a.device + " failed: " + w->delivery.status.ToString());
      self->engine_.OnReadDone(a.peer, a.device, w->cert_der, std::move(w->delivery),
                               a.generation);
    } else {
      if (Engine::IsLocalFailure(w->status)) {
        self->log_("could not store " + a.device + " from " + a.peer + " (our error, " +
                   "the peer is kept; retried in a second): " + w->status.ToString());
      }
      self->engine_.OnApplyDone(a.peer, a.device, w->status, a.credit);
    }
    self->Drain();
    self->Perform();
  }
  self->MaybeStopped();
}

}  // namespace cairn::sync
