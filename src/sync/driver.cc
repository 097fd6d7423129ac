#include "sync/driver.h"

#include <algorithm>
#include <cstdio>

namespace cairn::sync {

Driver::Driver(DriverHost* host, journal::Journal* journal, PeerSessions* sessions,
               SyncOptions options)
    : host_(host),
      journal_(journal),
      sessions_(sessions),
      options_(options),
      engine_(options) {
  log_ = [](const std::string& line) {
    std::fprintf(stderr, "sync: %s\n", line.c_str());
  };
}

bool Driver::Start() {
  engine_.set_high_water(
      [this](const std::string& peer) { return sessions_->AboveHighWater(peer); });
  // One signature check per snapshot received, on the host's thread: before its chunks.
  engine_.set_snapshot_header_check(
      [this](const std::string& cert_der, const wire::SnapshotHeader& h) {
        return journal_->CheckSnapshotHeader(cert_der, h);
      });
  journal_->SetCommitListener([this](const std::string& device, uint64_t) {
    {
      std::lock_guard<std::mutex> l(mu_);
      changed_.insert(device);
    }
    host_->Wake();
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
  return !engine_.guarded().empty();
}

void Driver::Stop() {
  stopping_ = true;
  journal_->SetCommitListener(nullptr);
  journal_->SetCommitTap(nullptr);
}

// Refuses appends to our own devices until peers told us their heads (see
// SyncOptions::restore_guard) or the operator releases them; RemindGuard says
// so in the log.
void Driver::StartGuard() {
  std::set<std::string> own;
  for (const auto& info : journal_->Catalogue()) {
    if (info.source) own.insert(info.device);
  }
  if (own.empty()) return;
  for (const auto& device : own) journal_->HoldAppends(device);
  engine_.Guard(own, options_.guard_expected_peers);
  RemindGuard();
  Perform();
}

bool Driver::RemindGuard() {
  for (const auto& device : engine_.guarded()) {
    log_("restore guard: appends to '" + device + "' refused, " +
         engine_.GuardState(device) + "; `cairn guard release " + device +
         "` starts it without them");
  }
  return !engine_.guarded().empty();
}

Status Driver::Resync(const std::string& device) {
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

Status Driver::ReleaseGuard(const std::string& device) {
  if (!engine_.ReleaseGuard(device, "released by the operator")) {
    return Status::NotFound("appends to '" + device + "' are not held");
  }
  log_("restore guard: '" + device +
       "' released by the operator; its next seq follows what this node holds");
  Perform();
  return Status::Ok();
}

void Driver::Tick() {
  if (stopping_) return;
  engine_.RetryPaused();
  engine_.CheckProgress();
  Perform();
  UpdateHoldings();
  // A new follower is stored within a second, not at the next pass: it holds
  // events back from then on, also across a crash of this node.
  // At most once per kNoteEveryTicks (a peer that reconnects over and over
  // costs one note per interval), and only the noting: no deletion walk.
  note_pending_ = engine_.TakeNewFollowers() || note_pending_;
  ++ticks_since_note_;
  if (note_pending_ && !retaining_ && options_.retain_every_ms > 0 &&
      ticks_since_note_ >= kNoteEveryTicks) {
    note_pending_ = false;
    ticks_since_note_ = 0;
    StartRetainPass(/*note_only=*/true);
  }
}

void Driver::Retain() {
  if (retaining_ || stopping_) return;
  // Nothing happened since the last pass: only every kIdleRetainEvery-th runs
  // (for age limits), so an idle node does not rebuild and store every
  // follower's heads every few seconds.
  const uint64_t activity = engine_.activity();
  if (activity == retained_activity_ && ++idle_retain_skips_ < kIdleRetainEvery) return;
  // A pass costs an entry per stored device and peer (FollowerHeads, the
  // journal's follower heads and its retention walk): past 2,000 devices it runs
  // on every n-th call only, n growing with them, so that its share of the
  // loop does not (at 10,000 devices, every 5th: 25 s apart by default).
  if (++retain_calls_ < std::max<size_t>(1, engine_.stored_count() / 2000)) return;
  retain_calls_ = 0;
  StartRetainPass(/*note_only=*/false);
}

void Driver::StartRetainPass(bool note_only) {
  if (!note_only) {
    retained_activity_ = engine_.activity();
    idle_retain_skips_ = 0;
  }
  retaining_ = true;
  Action a;
  a.kind = Action::Kind::kRetain;
  a.note_only = note_only;
  a.heads = engine_.FollowerHeads();
  a.floors = engine_.ServeFloors();
  Queue(std::move(a));
}

void Driver::Flush() {
  flush_armed_ = false;
  if (stopping_) return;
  engine_.Flush();
  Perform();
}

void Driver::Wake() {
  if (stopping_) return;
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
  if (options_.catalogue_flush_ms <= 0) {
    engine_.Flush();
  } else if (!changed.empty() && !flush_armed_) {
    flush_armed_ = true;
    host_->ArmFlush(options_.catalogue_flush_ms);
  }
  Perform();
}

void Driver::SetInterest(Interest interest) {
  engine_.SetInterest(std::move(interest));
  Perform();
  UpdateHoldings();
}

// Tells the transport what we store (when that changed) and what we follow that
// no peer offers, so that it can find a holder.
void Driver::UpdateHoldings() {
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

void Driver::OnPeerActive(const std::string& node_id) {
  engine_.OnPeerActive(node_id);
  Perform();
}

void Driver::OnSubscriberActive(const std::string& name,
                                const std::vector<std::string>& read_scope) {
  engine_.OnSubscriberActive(name, read_scope);
  Perform();
}

void Driver::OnPeerMessage(const std::string& node_id, wire::Envelope&& message) {
  std::string subscribed;
  if (message.has_subscribe()) subscribed = message.subscribe().device();
  engine_.OnMessage(node_id, std::move(message));
  if (!subscribed.empty() && engine_.Serves(subscribed)) {
    std::lock_guard<std::mutex> l(mu_);
    tap_devices_.insert(subscribed);
  }
  Perform();
}

void Driver::OnPeerDrained(const std::string& node_id) {
  engine_.OnDrained(node_id);
  Perform();
}

void Driver::OnPeerRtt(const std::string& node_id, int64_t rtt_us) {
  engine_.OnPeerRtt(node_id, rtt_us);
  Perform();
}

void Driver::OnPeerGone(const std::string& node_id, const std::string& /*reason*/) {
  engine_.OnPeerGone(node_id);
  Perform();
}

void Driver::Perform() {
  if (stopping_) return;
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
          if (engine_.guarded().empty()) host_->GuardsReleased();
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
  // Work is left after the bound: finish it when the host wakes us again.
  host_->Wake();
}

void Driver::Queue(Action&& action) {
  if (stopping_) return;
  auto job = std::make_unique<Job>();
  job->action = std::move(action);
  host_->QueueJob(std::move(job));
}

// Our records of `device` from its newest fork proof's seq up to a signed one:
// what the source needs to see that its own device forked.
void Driver::ReadOwnSideOfFork(journal::Journal* j, Job& w) {
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

void Driver::AfterFork(Job& w) {
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

// Only the journal is touched here.
void Driver::RunJob(journal::Journal* j, Job& w) {
  Action& a = w.action;
  switch (a.kind) {
    case Action::Kind::kRead: {
      auto cursor = j->OpenCursor(a.device, a.from);
      if (!cursor.ok()) {
        w.delivery.status = cursor.status();
        return;
      }
      w.delivery = (*cursor)->Next(a.max_bytes);
      auto cert = j->DeviceCert(a.device);
      if (cert.ok()) w.cert_der = std::move(*cert);
      return;
    }
    case Action::Kind::kReadSnapshot: {
      auto snap = j->ReadSnapshotChunks(a.device, a.snapshot_seq, a.chunk, a.max_bytes);
      if (snap.ok()) {
        w.delivery.snapshot = std::move(*snap);
      } else {
        w.delivery.status = snap.status();
      }
      auto cert = j->DeviceCert(a.device);
      if (cert.ok()) w.cert_der = std::move(*cert);
      return;
    }
    case Action::Kind::kApply:
      w.status = j->Apply(a.device, a.cert_der, std::move(a.records)).status();
      return;
    case Action::Kind::kStage:
      w.status = j->StageSnapshot(a.stage_id, std::move(a.snapshot));
      return;
    case Action::Kind::kInstall:
      w.status =
          j->InstallSnapshot(a.cert_der, std::move(a.snapshot), a.stage_id).status();
      return;
    case Action::Kind::kDropStage:
      j->DropStaged(a.device, a.stage_id);
      return;
    case Action::Kind::kNotifyFork:
      return ReadOwnSideOfFork(j, w);
    case Action::Kind::kForget:
      w.status = j->Forget(a.device);
      return;
    case Action::Kind::kRetain: {
      w.status = j->NoteFollowers(a.heads);
      if (!w.status.ok() || a.note_only) return;
      auto deleted = j->Retain(a.floors);
      w.status = deleted.status();
      if (deleted.ok()) w.deleted = *deleted;
      return;
    }
    case Action::Kind::kOwnFork: {
      auto seq = j->RecordOwnFork(a.device, a.records);
      w.status = seq.status();
      if (seq.ok()) w.fork_seq = *seq;
      return;
    }
    default:
      return;
  }
}

void Driver::Complete(Job& w) {
  if (stopping_) return;
  const Action& a = w.action;
  if (a.kind == Action::Kind::kRetain) {
    retaining_ = false;
    if (!w.status.ok()) log_("retention pass failed: " + w.status.ToString());
    // Stored before the pass deleted anything (NoteFollowers ran first).
    if (w.status.ok()) engine_.OnFollowersNoted(a.heads);
    if (w.deleted > 0) {
      log_("retention: deleted " + std::to_string(w.deleted) +
           " events that every required follower holds (or past a limit)");
    }
  } else if (a.kind == Action::Kind::kDropStage) {
    // Nothing waits on it.
  } else if (a.kind == Action::Kind::kForget) {
    if (w.status.ok()) log_("deleted " + a.device + ": no longer followed");
    engine_.OnForgotten(a.device, w.status);
  } else if (a.kind == Action::Kind::kNotifyFork || a.kind == Action::Kind::kOwnFork) {
    AfterFork(w);
  } else if (a.kind == Action::Kind::kRead || a.kind == Action::Kind::kReadSnapshot) {
    if (!w.delivery.status.ok())
      log_("read of " + a.device + " failed: " + w.delivery.status.ToString());
    engine_.OnReadDone(a.peer, a.device, w.cert_der, std::move(w.delivery), a.generation);
  } else {
    if (Engine::IsLocalFailure(w.status)) {
      log_("could not store " + a.device + " from " + a.peer + " (our error, " +
           "the peer is kept; retried in a second): " + w.status.ToString());
    }
    engine_.OnApplyDone(a.peer, a.device, w.status, a.credit);
  }
  Wake();
}

}  // namespace cairn::sync
