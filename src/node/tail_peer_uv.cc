#include "node/tail_peer_uv.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/check.h"
#include "discovery/address.h"
#include "tls/context.h"

namespace cairn::node::cli {
namespace {

sync::SubscriberOptions SubscriberOptionsOf(const Options& o, const std::string& self) {
  sync::SubscriberOptions s;
  s.self_id = self;
  s.device = o.device;
  s.all = o.all;
  s.from = o.from;
  s.follow = o.follow;
  return s;
}

// HOST to an IP literal, before the loop runs (a CLI may block here).
Result<std::string> Resolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return Status::Unavailable("cannot resolve " + host + ": " + gai_strerror(rc));
  }
  char ip[INET6_ADDRSTRLEN] = {0};
  const void* addr = res->ai_family == AF_INET6
                         ? static_cast<const void*>(
                               &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr)
                         : static_cast<const void*>(
                               &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr);
  inet_ntop(res->ai_family, addr, ip, sizeof ip);
  freeaddrinfo(res);
  return std::string(ip);
}

}  // namespace

PeerTail::PeerTail(const Options& o, std::shared_ptr<const tls::Context> context,
                   std::shared_ptr<const journal::CertAuthority> ca)
    : o_(o),
      core_(SubscriberOptionsOf(o, context->node_id()), std::move(ca), SystemClock()),
      printer_(o.json, isatty(2) != 0) {
  CHECK(uv_loop_init(&loop_) == 0);
  endpoint_ = std::make_unique<tls::Endpoint>(&loop_, std::move(context));
}

PeerTail::~PeerTail() {
  endpoint_.reset();
  int rc = uv_loop_close(&loop_);
  if (rc != 0) std::fprintf(stderr, "cairn: loop closed with handles open\n");
}

int PeerTail::Run(const std::string& ip, int port) {
  uv_timer_init(&loop_, &timer_);
  timer_.data = this;
  const int signums[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; ++i) {
    uv_signal_init(&loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(&signals_[i], &PeerTail::OnSignal, signums[i]);
  }
  auto c = endpoint_->Connect(ip, port, Callbacks());
  if (!c.ok()) {
    Finish(c.status().WithContext("cannot connect to " + o_.peer));
  } else {
    conn_ = *c;
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

tls::ConnectionCallbacks PeerTail::Callbacks() {
  tls::ConnectionCallbacks cb;
  cb.on_open = [this](tls::Connection& c) {
    opened_ = true;
    core_.OnOpen(c.peer_id());
    Perform();
  };
  cb.on_message = [this](tls::Connection&, wire::Envelope&& m) {
    core_.OnMessage(m);
    Perform();
  };
  cb.on_close = [this](tls::Connection&, const tls::CloseReason& reason) {
    conn_ = nullptr;
    core_.OnClosed(ClosedMessage(reason));
    Perform();
  };
  return cb;
}

std::string PeerTail::ClosedMessage(const tls::CloseReason& reason) const {
  using K = tls::CloseReason::Kind;
  const std::string& peer = o_.peer;
  if (!opened_) {
    if (reason.kind == K::kTls) {
      return "TLS handshake with " + peer +
             " failed (is --ca the network's CA?): " + reason.message;
    }
    return "cannot reach " + peer + ": " + reason.message;
  }
  if (!core_.hello_done()) {
    return "node at " + peer +
           " refused us (is --cert issued by its CA?): " + reason.ToString();
  }
  return "connection to node '" + core_.peer_id() + "' at " + peer +
         " lost: " + reason.ToString();
}

void PeerTail::Perform() {
  for (auto& o : core_.TakeOutputs()) Output(o);
  ArmTimer();
}

void PeerTail::Output(sync::SubscriberOutput& o) {
  using K = sync::SubscriberOutput::Kind;
  switch (o.kind) {
    case K::kSend:
      if (conn_ != nullptr && conn_->open()) (void)conn_->Send(o.message);
      return;
    case K::kStart:
      return printer_.Begin(o.device, o_.from, o.head);
    case K::kSnapshot:
      if (o.truncated > 0) {
        printer_.Truncated(o.device, o.truncated_from, o.truncated,
                           o.snapshot.header.seq());
        if (!o_.allow_gaps) {
          Finish(Status::Gap("tail " + o.device + ": events " +
                             std::to_string(o.truncated_from) + ".." +
                             std::to_string(o.truncated) +
                             " were deleted by retention at the node; stopped "
                             "(--allow-gaps reads on from the snapshot)"));
          exit_code_ = kExitGap;
          return;
        }
      }
      for (const auto& chunk : o.snapshot.chunks) printer_.SnapshotChunk(o.device, chunk);
      printer_.SnapshotEnd(o.device, o.snapshot.header.seq());
      return printer_.Progress(o.device, o.snapshot.header.seq());
    case K::kRecords:
      for (const auto& r : o.records) printer_.Record(o.device, r);
      return printer_.Progress(o.device, o.records.back().seq());
    case K::kEnd:
      return Finish(o.status);
  }
}

// The tail is over: report, close the connection (after what is queued, such as
// a goodbye) and every handle; the loop then returns.
void PeerTail::Finish(const Status& status) {
  if (finished_) return;
  finished_ = true;
  std::fflush(stdout);
  if (!status.ok()) exit_code_ = Fail(status);
  if (status.ok() && interrupted_ && !o_.follow) exit_code_ = 130;
  if (conn_ != nullptr) conn_->Close(status.ok() ? "tail done" : status.message());
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  for (auto& s : signals_) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
  endpoint_->Close([] {});
}

void PeerTail::ArmTimer() {
  if (finished_) return;
  auto deadline = core_.NextDeadline();
  if (!deadline) {
    uv_timer_stop(&timer_);
    return;
  }
  int64_t wait_us = std::max<int64_t>(0, *deadline - SystemClock()->MonotonicMicros());
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<PeerTail*>(t->data);
        self->core_.OnTimer();
        self->Perform();
      },
      static_cast<uint64_t>((wait_us + 999) / 1000), 0);
}

void PeerTail::OnSignal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<PeerTail*>(handle->data);
  self->interrupted_ = true;
  self->core_.Stop(std::string("interrupted by ") + strsignal(signum));
  self->Perform();
  if (!self->finished_) self->Finish(Status::Ok());  // before the hello: no goodbye
}

int TailPeer(const Options& o) {
  if (o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty()) {
    return Fail(
        "tail --peer needs --ca, --cert and --key (a node certificate of the "
        "network)");
  }
  auto hp = discovery::SplitHostPort(o.peer);
  if (!hp) return Fail("--peer " + o.peer + " is not HOST:PORT");
  auto context =
      tls::Context::FromFiles({o.ca_file, o.cert_file, o.key_file, /*client_only=*/true});
  if (!context.ok()) return Fail(context.status());
  auto ca = journal::CertAuthority::FromFile(o.ca_file);
  if (!ca.ok()) return Fail(ca.status());
  auto ip = Resolve(hp->host);
  if (!ip.ok()) return Fail(ip.status());
  signal(SIGPIPE, SIG_IGN);
  PeerTail tail(o, std::move(*context), std::move(*ca));
  return tail.Run(*ip, hp->port);
}

}  // namespace cairn::node::cli
