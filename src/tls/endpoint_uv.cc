#include "tls/endpoint_uv.h"

#include <cstring>

#include "base/check.h"

namespace cairn::tls {
namespace {

// "IP" of "IP:port" or "[v6]:port".
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

}  // namespace

// An accepted socket refused at the connection limit: reset, then freed by its
// close callback.
struct Endpoint::Rejected {
  uv_tcp_t tcp;
  Endpoint* endpoint;
};

Result<sockaddr_storage> ParseAddress(const std::string& host, int port) {
  if (port < 0 || port > 65535) {
    return Status::InvalidArgument("port " + std::to_string(port) + " out of range");
  }
  sockaddr_storage out;
  memset(&out, 0, sizeof(out));
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0 ||
      uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0) {
    return out;
  }
  return Status::InvalidArgument("'" + host + "' is not an IP address");
}

std::string FormatAddress(const sockaddr* address) {
  char ip[64] = "?";
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    uv_ip4_name(in, ip, sizeof(ip));
    return std::string(ip) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    uv_ip6_name(in6, ip, sizeof(ip));
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

Endpoint::Endpoint(uv_loop_t* loop, std::shared_ptr<const Context> context,
                   Options options)
    : loop_(loop),
      context_(std::move(context)),
      options_(options),
      read_buffer_(std::make_unique<char[]>(Channel::kMaxCiphertextPerCall)) {
  CHECK(loop_ != nullptr && context_ != nullptr);
  CHECK(options_.write_low_water_bytes <= options_.write_high_water_bytes);
  listener_.data = this;
}

Endpoint::~Endpoint() {
  CHECK(connections_.empty() && !listening_ && handles_closing_ == 0)
      << "Endpoint destroyed before Close() completed";
}

Result<int> Endpoint::Listen(const std::string& host, int port,
                             ConnectionCallbacks callbacks) {
  CHECK(!listen_called_ && !closing_) << "Listen is called at most once, before Close";
  listen_called_ = true;
  CAIRN_ASSIGN_OR_RETURN(sockaddr_storage address, ParseAddress(host, port));
  CHECK(uv_tcp_init(loop_, &listener_) == 0);
  listening_ = true;
  const auto* sa = reinterpret_cast<const sockaddr*>(&address);
  int rc = uv_tcp_bind(&listener_, sa, 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, OnConnectionCb);
  sockaddr_storage bound;
  int len = sizeof(bound);
  if (rc == 0)
    rc = uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  if (rc < 0) {
    listening_ = false;
    ++handles_closing_;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      auto* self = static_cast<Endpoint*>(h->data);
      --self->handles_closing_;
      self->MaybeDone();
    });
    return Status::IOError("listen on " + FormatAddress(sa) + ": " + uv_strerror(rc));
  }
  accept_callbacks_ = std::move(callbacks);
  const auto* b =
      reinterpret_cast<const sockaddr_in*>(&bound);  // port: same offset in v6
  return static_cast<int>(ntohs(b->sin_port));
}

void Endpoint::OnConnectionCb(uv_stream_t* server, int status) {
  static_cast<Endpoint*>(server->data)->OnIncoming(status);
}

void Endpoint::OnIncoming(int status) {
  if (status < 0 || closing_) return;
  if (connections_.size() >= options_.max_connections) {
    return Reject("connection limit of " + std::to_string(options_.max_connections));
  }
  Connection* c = Add(Connection::Role::kServer, accept_callbacks_);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                reinterpret_cast<uv_stream_t*>(c->tcp())) != 0) {
    c->Abort("accept failed");
    return;
  }
  c->ReadRemoteAddress();
  const std::string host = HostOf(c->remote_address());
  if (const size_t n = HandshakesFrom(host); n >= options_.max_handshakes_per_ip) {
    c->set_callbacks({});
    c->Abort("too many handshakes from " + host);
    if (on_refused_) {
      on_refused_("refused a connection from " + host + ": " + std::to_string(n) +
                  " TLS handshakes from that address in progress (limit " +
                  std::to_string(options_.max_handshakes_per_ip) + ")");
    }
    return;
  }
  c->StartAccepted();
}

size_t Endpoint::HandshakesFrom(const std::string& host) const {
  size_t n = 0;
  for (const auto& [id, c] : connections_) {
    if (c->role() == Connection::Role::kServer && c->handshaking() &&
        HostOf(c->remote_address()) == host) {
      ++n;
    }
  }
  return n;
}

void Endpoint::Reject(const std::string& why) {
  if (on_refused_) on_refused_("refused a connection: " + why);
  auto rejected = std::make_unique<Rejected>();
  rejected->endpoint = this;
  CHECK(uv_tcp_init(loop_, &rejected->tcp) == 0);
  rejected->tcp.data = rejected.get();
  ++handles_closing_;
  auto freed = [](uv_handle_t* h) {
    std::unique_ptr<Rejected> r(static_cast<Rejected*>(h->data));
    --r->endpoint->handles_closing_;
    r->endpoint->MaybeDone();
  };
  uv_tcp_t* tcp = &rejected.release()->tcp;  // freed by `freed`
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                reinterpret_cast<uv_stream_t*>(tcp)) != 0 ||
      uv_tcp_close_reset(tcp, freed) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), freed);
  }
}

Result<Connection*> Endpoint::Connect(const std::string& host, int port,
                                      ConnectionCallbacks callbacks) {
  if (closing_) return Status::FailedPrecondition("endpoint is closing");
  if (connections_.size() >= options_.max_connections) {
    return Status::ResourceExhausted("connection limit of " +
                                     std::to_string(options_.max_connections));
  }
  CAIRN_ASSIGN_OR_RETURN(sockaddr_storage address, ParseAddress(host, port));
  Connection* c = Add(Connection::Role::kClient, std::move(callbacks));
  int rc = c->StartConnect(reinterpret_cast<const sockaddr*>(&address));
  if (rc < 0) {
    c->set_callbacks({});  // the caller hears of this failure from our return value
    c->Abort("connect failed");
    return Status::IOError("connect to " + host + ":" + std::to_string(port) + ": " +
                           uv_strerror(rc));
  }
  return c;
}

Connection* Endpoint::Add(Connection::Role role, ConnectionCallbacks callbacks) {
  uint64_t id = next_id_++;
  auto c = std::make_unique<Connection>(Connection::Key(), this, id, role,
                                        std::move(callbacks));
  c->Init(loop_);
  Connection* raw = c.get();
  connections_.emplace(id, std::move(c));
  return raw;
}

void Endpoint::Release(Connection* connection) {
  auto it = connections_.find(connection->id());
  CHECK(it != connections_.end() && it->second.get() == connection);
  connections_.erase(it);
  MaybeDone();
}

void Endpoint::Close(std::function<void()> done) {
  closing_ = true;
  if (done) done_.push_back(std::move(done));
  if (listening_) {
    listening_ = false;
    ++handles_closing_;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      auto* self = static_cast<Endpoint*>(h->data);
      --self->handles_closing_;
      self->MaybeDone();
    });
  }
  // Connections leave the map only in their close callbacks, never during this loop.
  for (auto& [id, c] : connections_) c->Close("endpoint closing");
  MaybeDone();
}

void Endpoint::MaybeDone() {
  if (!closing_ || !connections_.empty() || listening_ || handles_closing_ > 0) return;
  std::vector<std::function<void()>> done;
  done.swap(done_);
  for (auto& d : done) d();
}

}  // namespace cairn::tls
