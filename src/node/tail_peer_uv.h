// PeerTail: `cairn tail --peer HOST:PORT`, reading from any node over TLS as a
// subscriber. On a libuv loop of its own it holds one connection (tls::Endpoint,
// our node certificate against the network CA), drives a sync::Subscriber — the
// peer protocol and the journal's verification — and prints what it hands out
// through TailPrinter, exactly as the local tail does. SIGINT and SIGTERM end it
// with a goodbye to the node.
//
// Every way it can fail ends in one line naming what was wrong: files that do not
// load, an address that does not resolve, a node that cannot be reached, a TLS
// handshake refused either way, a device the node does not store (without
// --follow), a stream that fails verification, a lost connection.
//
// Thread-safety: the main thread; Run owns the loop until it returns.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "journal/identity.h"
#include "node/cli_internal.h"
#include "node/tail_print.h"
#include "sync/subscriber.h"
#include "tls/endpoint_uv.h"

namespace cairn::node::cli {

class PeerTail {
 public:
  // `context`: our certificate (its CN is our id); `ca`: for device certificates.
  PeerTail(const Options& o, std::shared_ptr<const tls::Context> context,
           std::shared_ptr<const journal::CertAuthority> ca);
  ~PeerTail();
  PeerTail(const PeerTail&) = delete;
  PeerTail& operator=(const PeerTail&) = delete;

  // Connects to ip:port and runs until the tail ends; returns the exit status.
  int Run(const std::string& ip, int port);

 private:
  tls::ConnectionCallbacks Callbacks();
  std::string ClosedMessage(const tls::CloseReason& reason) const;
  void Perform();
  void Output(sync::SubscriberOutput& o);
  void Finish(const Status& status);
  void ArmTimer();
  static void OnSignal(uv_signal_t* handle, int signum);

  const Options& o_;
  uv_loop_t loop_{};
  std::unique_ptr<tls::Endpoint> endpoint_;
  sync::Subscriber core_;
  TailPrinter printer_;
  tls::Connection* conn_ = nullptr;
  bool opened_ = false;
  uv_timer_t timer_{};
  uv_signal_t signals_[2]{};
  bool finished_ = false;
  bool interrupted_ = false;
  int exit_code_ = 0;
};

}  // namespace cairn::node::cli
