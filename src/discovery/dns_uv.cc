#include "discovery/dns_uv.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "base/check.h"
#include "discovery/address.h"

namespace cairn::discovery {
namespace {

constexpr int kClassIn = 1;
constexpr int kTypeSrv = 33;
constexpr int kMaxSrvTargets = 16;

std::string FormatIp(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text,
              sizeof(text));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text,
              sizeof(text));
  }
  return text;
}

}  // namespace

struct DnsResolver::Request {
  DnsResolver* owner;
  std::string name;
  Callback done;
  int pending = 0;
  std::vector<std::string> addresses;
  std::string error;
};

struct DnsResolver::Poll {
  uv_poll_t handle;
  DnsResolver* owner;
  ares_socket_t fd;
};

namespace {

struct LookUpArg {
  DnsResolver::Request* req;
  int port;
};

void SrvCb(void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
  auto* req = static_cast<DnsResolver::Request*>(arg);
  req->owner->OnSrv(req, status, answer, length);
}

void AddrCb(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<LookUpArg> a(static_cast<LookUpArg*>(arg));
  a->req->owner->OnAddresses(a->req, a->port, status, result);
}

void SocketStateCb(void* data, ares_socket_t fd, int readable, int writable) {
  static_cast<DnsResolver*>(data)->OnSocketState(fd, readable != 0, writable != 0);
}

}  // namespace

Result<std::unique_ptr<DnsResolver>> DnsResolver::Create(uv_loop_t* loop, Config config) {
  auto r = std::make_unique<DnsResolver>(Key(), loop, config);
  ares_options opts{};
  opts.sock_state_cb = SocketStateCb;
  opts.sock_state_cb_data = r.get();
  opts.timeout = config.timeout_ms;
  opts.tries = config.tries;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  int rc = ares_init_options(&r->channel_, &opts, mask);
  if (rc != ARES_SUCCESS) {
    return Status::Unavailable(std::string("c-ares init: ") + ares_strerror(rc));
  }
  if (!config.server.empty()) {
    rc = ares_set_servers_ports_csv(r->channel_, config.server.c_str());
    if (rc != ARES_SUCCESS) {
      return Status::InvalidArgument("DNS server '" + config.server +
                                     "': " + ares_strerror(rc));
    }
  }
  CHECK(uv_timer_init(loop, &r->timer_) == 0);
  r->timer_.data = r.get();
  r->handles_open_ = 1;
  return r;
}

DnsResolver::DnsResolver(Key, uv_loop_t* loop, Config config)
    : loop_(loop), config_(std::move(config)) {
  CHECK(ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS);
}

DnsResolver::~DnsResolver() {
  CHECK(handles_open_ == 0) << "DnsResolver destroyed before Close completed";
  if (channel_ != nullptr) {
    closing_ = true;
    ares_destroy(channel_);
  }
  ares_library_cleanup();
}

void DnsResolver::Resolve(const std::string& name, Callback done) {
  if (closing_) return;
  auto owned = std::make_unique<Request>();
  Request* req = owned.get();
  req->owner = this;
  req->name = name;
  req->done = std::move(done);
  req->pending = 1;
  requests_[req] = std::move(owned);
  const std::string srv = "_cairn._tcp." + name;
  ares_query(channel_, srv.c_str(), kClassIn, kTypeSrv, SrvCb, req);
  ArmTimer();
}

void DnsResolver::OnSrv(Request* req, int status, const unsigned char* answer,
                        int length) {
  if (closing_) return;
  ares_srv_reply* srv = nullptr;
  if (status == ARES_SUCCESS &&
      ares_parse_srv_reply(answer, length, &srv) == ARES_SUCCESS && srv != nullptr) {
    int n = 0;
    for (ares_srv_reply* s = srv; s != nullptr && n < kMaxSrvTargets; s = s->next, ++n) {
      ++req->pending;
      LookUp(req, s->host, s->port);
    }
    ares_free_data(srv);
  } else {
    // No SRV record: the name's own A/AAAA records on the default port.
    ++req->pending;
    LookUp(req, req->name, config_.default_port);
  }
  --req->pending;
  Finish(req);
}

void DnsResolver::LookUp(Request* req, const std::string& host, int port) {
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  auto arg = std::make_unique<LookUpArg>(LookUpArg{req, port});
  ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, AddrCb, arg.release());
}

void DnsResolver::OnAddresses(Request* req, int port, int status, ares_addrinfo* result) {
  if (!closing_) {
    if (status == ARES_SUCCESS && result != nullptr) {
      for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
        std::string ip = FormatIp(n->ai_addr);
        if (ip.empty() || req->addresses.size() >= config_.max_addresses) continue;
        std::string address = JoinHostPort(ip, port);
        if (std::find(req->addresses.begin(), req->addresses.end(), address) ==
            req->addresses.end()) {
          req->addresses.push_back(address);
        }
      }
    } else if (req->error.empty()) {
      req->error = ares_strerror(status);
    }
  }
  if (result != nullptr) ares_freeaddrinfo(result);
  if (closing_) return;
  --req->pending;
  Finish(req);
}

void DnsResolver::Finish(Request* req) {
  if (req->pending > 0) return;
  auto it = requests_.find(req);
  CHECK(it != requests_.end());
  std::unique_ptr<Request> owned = std::move(it->second);
  requests_.erase(it);
  std::string error = owned->addresses.empty() ? owned->error : "";
  if (owned->addresses.empty() && error.empty()) error = "no addresses";
  owned->done(owned->name, owned->addresses, error);
}

// ---------------------------------------------------------------- libuv glue

void DnsResolver::OnSocketState(ares_socket_t fd, bool readable, bool writable) {
  auto it = polls_.find(fd);
  if (!readable && !writable) {
    if (it == polls_.end()) return;
    Poll* p = it->second;
    polls_.erase(it);
    uv_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) {
      std::unique_ptr<Poll> owned(static_cast<Poll*>(h->data));
      owned->owner->OnHandleClosed();
    });
    return;
  }
  Poll* p = nullptr;
  if (it == polls_.end()) {
    auto owned = std::make_unique<Poll>();
    owned->owner = this;
    owned->fd = fd;
    owned->handle.data = owned.get();
    CHECK(uv_poll_init_socket(loop_, &owned->handle, fd) == 0);
    ++handles_open_;
    p = owned.release();  // the handle owns it until its close callback
    polls_[fd] = p;
  } else {
    p = it->second;
  }
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  uv_poll_start(&p->handle, events, [](uv_poll_t* h, int status, int ev) {
    auto* poll = static_cast<Poll*>(h->data);
    poll->owner->OnPoll(poll, status, ev);
  });
}

void DnsResolver::OnPoll(Poll* poll, int status, int events) {
  // On a poll error let c-ares read and write, so that it sees the error itself.
  bool read = status < 0 || (events & UV_READABLE) != 0;
  bool write = status < 0 || (events & UV_WRITABLE) != 0;
  ares_socket_t fd = poll->fd;
  ares_process_fd(channel_, read ? fd : ARES_SOCKET_BAD, write ? fd : ARES_SOCKET_BAD);
  ArmTimer();
}

void DnsResolver::OnTimer() {
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  ArmTimer();
}

void DnsResolver::ArmTimer() {
  if (closing_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    uv_timer_stop(&timer_);
    return;
  }
  uint64_t ms = static_cast<uint64_t>(tv.tv_sec) * 1000 + (tv.tv_usec + 999) / 1000;
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<DnsResolver*>(t->data)->OnTimer(); }, ms,
      0);
}

void DnsResolver::Close(std::function<void()> done) {
  CHECK(!closing_) << "DnsResolver::Close called twice";
  closing_ = true;
  done_ = std::move(done);
  ares_destroy(channel_);  // cancels queries; closes its sockets through OnSocketState
  channel_ = nullptr;
  requests_.clear();
  for (auto& [fd, p] : polls_) {
    Poll* poll = p;
    uv_poll_stop(&poll->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle), [](uv_handle_t* h) {
      std::unique_ptr<Poll> owned(static_cast<Poll*>(h->data));
      owned->owner->OnHandleClosed();
    });
  }
  polls_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
           [](uv_handle_t* h) { static_cast<DnsResolver*>(h->data)->OnHandleClosed(); });
}

void DnsResolver::OnHandleClosed() {
  --handles_open_;
  MaybeDone();
}

void DnsResolver::MaybeDone() {
  if (!closing_ || handles_open_ > 0 || !done_) return;
  std::function<void()> done = std::move(done_);
  done_ = nullptr;
  done();
}

}  // namespace cairn::discovery
