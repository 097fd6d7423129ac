#include "node/node.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

#include "discovery/discovery_uv.h"
#include "node/dev_certs.h"
#include "node/log.h"

namespace cairn::node {
namespace {

namespace fs = std::filesystem;

// Makes the data directory private (0700, and 0600 for what an older cairnd left
// readable in it): the journal and the control socket are the node's alone. New
// files are born private through cairnd's umask (daemon.cc). What this user does
// not own, or cannot change, is left as it is with a warning.
void PrivatizeDataDir(const std::string& dir) {
  auto tighten = [](const fs::path& p, bool is_dir) {
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0 || st.st_uid != geteuid()) return;
    const mode_t want = is_dir ? 0700 : 0600;
    if ((st.st_mode & 0777) == want) return;
    if (chmod(p.c_str(), want) != 0) {
      CAIRN_LOG(kWarn) << "cannot make " << p.string() << " private: " << strerror(errno);
    }
  };
  tighten(dir, true);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto type = it->symlink_status(ec).type();
    if (type == fs::file_type::directory || type == fs::file_type::regular) {
      tighten(it->path(), type == fs::file_type::directory);
    }
  }
}

Status PrepareDataDir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("data directory " + dir + " is not a directory");
  }
  fs::create_directories(dir, ec);
  if (ec)
    return Status::IOError("cannot create data directory " + dir + ": " + ec.message());
  PrivatizeDataDir(dir);
  if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Status::PermissionDenied("data directory " + dir +
                                    " is not readable and writable: " + strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

Node::Node(DaemonConfig config) : config_(std::move(config)) {}

Result<std::unique_ptr<Node>> Node::Open(const DaemonConfig& config) {
  auto node = std::make_unique<Node>(config);
  CAIRN_RETURN_IF_ERROR(node->Init());
  return node;
}

Status Node::Init() {
  CAIRN_ASSIGN_OR_RETURN(fds_, RaiseAndShareFds());
  CAIRN_LOG(kInfo) << fds_.Describe();
  CAIRN_RETURN_IF_ERROR(PrepareDataDir(config_.data_dir));
  control_path_ = config_.data_dir + "/cairn.sock";
  CAIRN_ASSIGN_OR_RETURN(interest_, LoadInterest(config_.data_dir, config_.follow));
  CAIRN_LOG(kInfo) << "following " << sync::Describe(interest_.interest) << " ("
                   << interest_.origin << ")";
  if (!config_.follow.empty() && interest_.origin != "--follow / config") {
    CAIRN_LOG(kWarn) << "--follow is not used: " << interest_.origin
                     << " wins (`cairn follow --reset` returns to --follow)";
  }
  CAIRN_RETURN_IF_ERROR(LoadIdentity());
  CHECK(uv_loop_init(&loop_) == 0);
  loop_ready_ = true;
  post_ = std::make_unique<LoopPost>(&loop_);
  CAIRN_RETURN_IF_ERROR(post_->Init());
  CAIRN_RETURN_IF_ERROR(OpenJournal());
  CAIRN_RETURN_IF_ERROR(StartPeers());
  CAIRN_RETURN_IF_ERROR(StartSync());
  CAIRN_RETURN_IF_ERROR(StartControl());
  CAIRN_RETURN_IF_ERROR(StartSignals());
  return Status::Ok();
}

// The CA, this node's TLS identity, and the devices it is the source of: its own
// (the node certificate doubles as its device certificate) and --device-cert ones.
Status Node::LoadIdentity() {
  if (config_.ca_file.empty()) {
    CAIRN_ASSIGN_OR_RETURN(CertFiles files, EnsureDevCerts(config_.data_dir));
    config_.ca_file = files.ca;
    config_.cert_file = files.cert;
    config_.key_file = files.key;
  }
  CAIRN_ASSIGN_OR_RETURN(ca_, journal::CertAuthority::FromFile(config_.ca_file));
  CAIRN_ASSIGN_OR_RETURN(
      context_,
      tls::Context::FromFiles({config_.ca_file, config_.cert_file, config_.key_file}));
  if (!config_.crl_file.empty()) {
    Result<std::string> crl = context_->LoadCrl(config_.crl_file);
    if (!crl.ok()) return crl.status().WithContext("--crl");
    CAIRN_LOG(kInfo) << "revocation list " << config_.crl_file << ": " << *crl;
  }
  CAIRN_ASSIGN_OR_RETURN(auto own, journal::DeviceSigner::FromFiles(
                                       config_.cert_file, config_.key_file, *ca_));
  signers_.push_back(std::move(own));
  for (const auto& d : config_.devices) {
    CAIRN_ASSIGN_OR_RETURN(auto s, journal::DeviceSigner::FromFiles(d.cert, d.key, *ca_));
    signers_.push_back(std::move(s));
  }
  if (!config_.devices.empty()) {
    CAIRN_LOG(kInfo) << "source of " << signers_.size() << " devices (this node's and "
                     << config_.devices.size() << " more)";
  }
  return Status::Ok();
}

Status Node::OpenJournal() {
  journal::JournalOptions o;
  o.store.path = config_.data_dir + "/journal";
  o.store.max_open_files = static_cast<int>(fds_.leveldb);
  o.ca = ca_;
  o.sources = signers_;
  o.sync_writes = config_.sync_writes;
  o.snapshot_every_events = config_.snapshot_every;
  o.snapshot_every_us = static_cast<int64_t>(config_.snapshot_every_seconds) * 1'000'000;
  o.retention.acks = static_cast<size_t>(config_.retain_acks);
  o.retention.max_age_us =
      static_cast<int64_t>(config_.retain_max_age_seconds) * 1'000'000;
  o.retention.max_bytes = config_.retain_max_bytes;
  auto j = journal::Journal::Open(std::move(o));
  if (!j.ok()) {
    const std::string& m = j.status().message();
    if (m.find("in use by another process") != std::string::npos) {
      return Status::Unavailable("data directory " + config_.data_dir +
                                 " is already used by a running cairnd");
    }
    return j.status().WithContext("cannot open the journal");
  }
  journal_ = std::move(j).value();
  if (!config_.sync_writes) {
    CAIRN_LOG(kWarn) << "--sync-writes off: the last few ms of appends may be lost on "
                        "power loss";
  }
  return Status::Ok();
}

Status Node::StartPeers() {
  peers_ = std::make_unique<PeerLayer>(&loop_, context_, config_, fds_.connections,
                                       journal_->store()->db());
  Status s = peers_->Start();
  if (!s.ok()) {
    return s.WithContext("cannot listen for peers");
  }
  CAIRN_LOG(kInfo) << "node " << node_id() << " listening for peers on "
                   << peers_->listen_address();
  return Status::Ok();
}

Status Node::StartSync() {
  // After StartPeers and before the control socket opens, on the loop thread
  // before the loop runs. SyncNode takes the journal's commit listener; the
  // control socket's tails use Journal::Subscribe and do not compete for it.
  if (auto* d = peers_->discovery()) {
    sync::SyncOptions options;
    // The restore guard: a source with configured or remembered peers must not
    // issue a seq it may already have issued before (a reinstall, a restored
    // backup). It waits for a majority of those peers (every one of one or two)
    // to report its heads, or for the operator (README, "Restore guard").
    // Remembered peers count up to kGuardMaxPeers: with peer exchange a node
    // remembers the whole mesh, and a majority of it need not answer soon.
    constexpr size_t kGuardMaxPeers = 5;
    const size_t known =
        std::max(config_.peers.size(), std::min(d->remembered_peers(), kGuardMaxPeers));
    const size_t expected = known > 0 ? known : (config_.dns_seeds.empty() ? 0 : 1);
    options.restore_guard = !config_.new_device && expected > 0;
    options.guard_expected_peers = expected / 2 + 1;
    options.retain_every_ms = config_.retain_every_ms;
    options.max_snapshot_bytes = config_.max_snapshot_bytes;
    options.max_staged_bytes_total = config_.max_staged_bytes;
    options.self = node_id();
    options.summary_min_entries = static_cast<size_t>(config_.summary_min_devices);
    sync_ = std::make_unique<sync::SyncNode>(&loop_, journal_.get(), d, options);
    sync_->set_log([](const std::string& line) { CAIRN_LOG(kWarn) << "sync: " << line; });
    d->set_listener(sync_.get());
    sync_->set_change_listener([this](const std::string& device) {
      if (control_) control_->OnStreamChanged(device);  // new devices to watches
    });
    sync_->Start();
    sync_->SetInterest(interest_.interest);
  }
  return Status::Ok();
}

wire::ControlInterest Node::InterestReply() const {
  wire::ControlInterest r;
  for (const auto& p : interest_.interest.patterns()) r.add_follow(p);
  r.set_origin(interest_.origin);
  return r;
}

// `cairn follow` / `cairn unfollow` (loop thread): the new interest is stored
// before it is used, so what the node acts on survives a restart.
Result<wire::ControlInterest> Node::ChangeInterest(const wire::ControlFollow& req) {
  if (!sync_) return Status::NotFound("this node syncs with no peer");
  std::vector<std::string> patterns(req.patterns().begin(), req.patterns().end());
  for (const auto& p : patterns) CAIRN_RETURN_IF_ERROR(sync::Interest::CheckPattern(p));
  NodeInterest next;
  if (req.reset()) {
    CAIRN_RETURN_IF_ERROR(RemoveInterest(config_.data_dir));
    CAIRN_ASSIGN_OR_RETURN(next, LoadInterest(config_.data_dir, config_.follow));
  } else if (patterns.empty() && !req.only()) {
    return InterestReply();  // only asked
  } else {
    Result<sync::Interest> changed =
        req.only() ? sync::Interest::Parse(patterns)
                   : (req.unfollow() ? interest_.interest.Without(patterns)
                                     : interest_.interest.With(patterns));
    if (!changed.ok()) return changed.status();
    if (*changed == interest_.interest) {
      std::string why = "nothing changes: this node follows " +
                        sync::Describe(interest_.interest) + " already";
      if (interest_.interest.all()) {
        why += " (`cairn follow --only PATTERN...` follows those alone)";
      }
      return Status::FailedPrecondition(why);
    }
    CAIRN_RETURN_IF_ERROR(SaveInterest(config_.data_dir, *changed));
    next = {std::move(*changed), "cairn follow (" + InterestPath(config_.data_dir) + ")"};
  }
  const bool same = next.interest == interest_.interest;
  interest_ = std::move(next);
  CAIRN_LOG(kInfo) << "following " << sync::Describe(interest_.interest) << " ("
                   << interest_.origin << ")";
  if (!same) sync_->SetInterest(interest_.interest);
  return InterestReply();
}

void Node::StopSync(std::function<void()> done) {
  // After the control socket closed and before discovery stops.
  if (sync_) {
    peers_->discovery()->set_listener(nullptr);
    return sync_->Stop(std::move(done));
  }
  done();
}

Status Node::StartControl() {
  control_ = std::make_unique<ControlServer>(&loop_, journal_.get(), post_.get(),
                                             [this] { return BuildStatus(); });
  control_->set_max_clients(fds_.control_clients);
  control_->set_guard_releaser([this](const std::string& device) {
    if (!sync_) return Status::NotFound("this node runs no restore guard");
    return sync_->ReleaseGuard(device);
  });
  control_->set_follower(
      [this](const wire::ControlFollow& req) { return ChangeInterest(req); });
  control_->set_resyncer([this](const std::string& device) {
    if (!sync_) return Status::NotFound("this node syncs with no peer");
    return sync_->Resync(device);
  });
  return control_->Listen(control_path_);
}

wire::ControlStatusReply Node::BuildStatus() {
  wire::ControlStatusReply r;
  r.set_node(node_id());
  if (peers_) {
    r.set_listen(peers_->listen_address());
    for (auto& p : peers_->Peers()) *r.add_peers() = std::move(p);
  }
  r.set_forks(static_cast<uint32_t>(journal_->ForkCount()));
  if (context_) r.set_crl(context_->CrlSummary());
  *r.mutable_interest() = InterestReply();
  if (peers_ && peers_->discovery()) {
    r.set_revoked_disconnects(
        static_cast<uint32_t>(peers_->discovery()->revoked_disconnects()));
    const auto& t = peers_->discovery()->traffic();
    r.set_messages_sent(t.messages_sent);
    r.set_bytes_sent(t.bytes_sent);
    r.set_messages_received(t.messages_received);
    r.set_bytes_received(t.bytes_received);
  }
  if (sync_) {
    const auto& c = sync_->engine().catalogue_stats();
    auto* out = r.mutable_catalogue();
    out->set_summaries_sent(c.summaries_sent);
    out->set_summaries_received(c.summaries_received);
    out->set_buckets_agreed(c.buckets_agreed);
    out->set_buckets_asked(c.buckets_asked);
    out->set_entries_sent(c.entries_sent);
    out->set_entries_received(c.entries_received);
    out->set_bytes_sent(c.bytes_sent);
    out->set_bytes_received(c.bytes_received);
  }
  std::map<std::string, std::vector<uint64_t>> forked_at;
  if (r.forks() > 0) {
    for (const auto& p : journal_->Forks()) forked_at[p.device()].push_back(p.seq());
  }
  for (const auto& s : journal_->Catalogue()) {
    auto* d = r.add_devices();
    for (uint64_t seq : forked_at[s.device]) d->add_forked_at(seq);
    d->set_device(s.device);
    d->set_first(s.first);
    d->set_last(s.last);
    d->set_snapshot(s.snapshot);
    d->set_source(s.source);
    d->set_retention(journal_->RetentionState(s.device));
    if (sync_ && s.source) {
      d->set_guard(sync_->engine().GuardState(s.device));
      d->set_stalled(sync_->engine().Stalled(s.device));  // a restored source
    }
    if (sync_ && !s.source) {
      d->set_via(sync_->engine().Via(s.device));
      const uint64_t peer_last = sync_->engine().PeerLast(s.device);
      d->set_behind(peer_last > s.last ? peer_last - s.last : 0);
      d->set_stalled(sync_->engine().Stalled(s.device));
    }
  }
  return r;
}

Status Node::StartSignals() {
  const int signums[3] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; ++i) {
    CHECK(uv_signal_init(&loop_, &signals_[i]) == 0);
    signals_[i].data = this;
    ++signals_open_;
    int rc = uv_signal_start(&signals_[i], &Node::OnSignal, signums[i]);
    if (rc != 0)
      return Status::IOError(std::string("uv_signal_start: ") + uv_strerror(rc));
  }
  return Status::Ok();
}

void Node::OnSignal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Node*>(handle->data);
  if (signum == SIGHUP) return self->Reload();
  if (self->stopping_) {
    static const char kMsg[] = "cairnd: second signal, exiting now\n";
    (void)!write(2, kMsg, sizeof kMsg - 1);
    _exit(130);
  }
  self->Shutdown(std::string("signal ") + strsignal(signum));
}

// SIGHUP: the revocation list is read again; peers whose certificate it now
// revokes are disconnected at once. A list that does not load leaves the one in
// force, and the log says why.
void Node::Reload() {
  if (stopping_) return;
  if (config_.crl_file.empty()) {
    CAIRN_LOG(kInfo) << "SIGHUP: nothing to reload (no --crl)";
    return;
  }
  Result<std::string> crl = context_->LoadCrl(config_.crl_file);
  if (!crl.ok()) {
    CAIRN_LOG(kError)
        << "SIGHUP: revocation list not reloaded, the previous one stays in "
           "force: "
        << crl.status().message();
    return;
  }
  CAIRN_LOG(kInfo) << "SIGHUP: revocation list " << config_.crl_file
                   << " reloaded: " << *crl;
  if (peers_ && peers_->discovery()) {
    const size_t dropped = peers_->discovery()->DropRevoked();
    if (dropped > 0) CAIRN_LOG(kWarn) << "disconnected " << dropped << " revoked peer(s)";
  }
}

void Node::Shutdown(const std::string& why) {
  if (stopping_) return;
  stopping_ = true;
  if (!why.empty()) CAIRN_LOG(kInfo) << "shutting down (" << why << ")";
  auto after_peers = [this] {
    for (int i = 0; i < signals_open_; ++i) {
      uv_close(reinterpret_cast<uv_handle_t*>(&signals_[i]), nullptr);
    }
    post_->Close(nullptr);
  };
  auto after_sync = [this, after_peers] {
    if (peers_) return peers_->Stop(after_peers);
    after_peers();
  };
  auto after_control = [this, after_sync] { StopSync(after_sync); };
  if (control_) return control_->Close(after_control);
  after_control();
}

int Node::Run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  CAIRN_LOG(kInfo) << "stopped; closing the journal";
  return exit_code_;
}

Node::~Node() {
  if (loop_ready_) {
    Shutdown("");  // no-op after Run; after a failed Open, closes what opened
    uv_run(&loop_, UV_RUN_DEFAULT);
    control_.reset();
    sync_.reset();  // before the discovery it listens to
    peers_.reset();
    journal_.reset();  // finishes queued writes, closes LevelDB
    int rc = uv_loop_close(&loop_);
    if (rc != 0)
      CAIRN_LOG(kError) << "loop closed with handles open: " << uv_strerror(rc);
  }
}

}  // namespace cairn::node
