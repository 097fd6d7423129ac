// Node: one cairnd. It owns the libuv loop and wires the parts together: the
// journal (src/journal), the local control socket (control_server_uv.h), the
// peer layer (node_peers.h: src/discovery), and — later — the sync engine
// (src/sync), plus signals and an orderly shutdown.
//
//   auto node = Node::Open(config);   // every start-up error is one line
//   return (*node)->Run();            // until SIGINT/SIGTERM
//
// Shutdown (first SIGINT/SIGTERM): stop accepting control connections, let
// appends in flight commit and answer, end tails, stop sync and discovery
// (goodbye to peers), close every handle; then the Journal finishes its queued
// writes and closes LevelDB. A second signal exits at once (status 130).
//
// Where the layers above attach (all on the loop thread):
//   - StartPeers / StopPeers: discovery (done, node_peers.cc).
//   - StartSync / StopSync: the sync engine, see the "sync attaches here" marks in
//     node.cc: it gets loop(), journal(), peers()->discovery() and status rows.
//
// Thread-safety: Open and Run on the main thread; everything else on the loop
// thread (Run's thread). Ownership: everything above is owned here; members are
// destroyed control server first, journal next to last, the loop last.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "base/result.h"
#include "journal/journal.h"
#include "node/config.h"
#include "node/control_server_uv.h"
#include "node/fd_budget.h"
#include "node/interest_file.h"
#include "node/loop_post_uv.h"
#include "node/node_peers.h"
#include "sync/sync_uv.h"
#include "tls/context.h"

namespace cairn::node {

class Node {
 public:
  static Result<std::unique_ptr<Node>> Open(const DaemonConfig& config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Runs until shut down; returns the process exit status.
  int Run();
  // Starts an orderly shutdown (loop thread). Idempotent.
  void Shutdown(const std::string& why);
  // SIGHUP: reloads the revocation list (--crl) and drops revoked peers.
  void Reload();

  uv_loop_t* loop() { return &loop_; }
  journal::Journal& journal() { return *journal_; }
  PeerLayer* peers() { return peers_.get(); }
  const std::string& node_id() const { return context_->node_id(); }
  const std::string& control_path() const { return control_path_; }

  // Use Open; public for make_unique.
  explicit Node(DaemonConfig config);

 private:
  Status Init();
  Status LoadIdentity();
  Status OpenJournal();
  Status StartControl();
  Status StartPeers();
  Status StartSync();
  void StopSync(std::function<void()> done);
  Status StartSignals();
  static void OnSignal(uv_signal_t* handle, int signum);
  void Stopped();
  wire::ControlStatusReply BuildStatus();
  Result<wire::ControlInterest> ChangeInterest(const wire::ControlFollow& req);
  wire::ControlInterest InterestReply() const;

  DaemonConfig config_;
  FdBudget fds_;
  std::string control_path_;
  NodeInterest interest_;  // what it follows, and where that comes from
  uv_loop_t loop_{};
  bool loop_ready_ = false;
  std::shared_ptr<const journal::CertAuthority> ca_;
  std::shared_ptr<const tls::Context> context_;
  std::vector<std::shared_ptr<journal::DeviceSigner>> signers_;
  std::unique_ptr<LoopPost> post_;
  std::unique_ptr<journal::Journal> journal_;
  std::unique_ptr<PeerLayer> peers_;
  std::unique_ptr<sync::SyncNode> sync_;  // destroyed before peers_, after control_
  std::unique_ptr<ControlServer> control_;
  uv_signal_t signals_[3]{};
  int signals_open_ = 0;
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace cairn::node
