// Endpoint: a node's TLS transport on one libuv loop. It listens for and makes
// connections with one Context (this node's identity and the network CA) and one set
// of Options, and owns every Connection it makes until libuv has closed its handles.
//
//   Endpoint ep(loop, context, options);
//   ep.Listen("0.0.0.0", 7411, callbacks);           // accepted connections
//   ep.Connect("10.0.0.2", 7411, callbacks);          // outgoing
//   ...
//   ep.Close([&] { /* every handle is closed: the Endpoint may be destroyed */ });
//
// Addresses are IP literals (v4 or v6); name resolution belongs to the layer above.
//
// Thread-safety: the loop thread only; other threads reach it through uv_async_send.
// Ownership: the Endpoint owns its listener handle and its Connections; the loop and
// the Context must outlive it. REQUIRES before destruction: nothing was ever opened,
// or the callback of Close() has run.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "tls/connection_uv.h"
#include "tls/context.h"
#include "tls/transport.h"

namespace cairn::tls {

class Endpoint {
 public:
  Endpoint(uv_loop_t* loop, std::shared_ptr<const Context> context, Options options = {});
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Listens on host:port (port 0: an ephemeral port); returns the bound port. Every
  // accepted connection starts with `callbacks`.
  // REQUIRES: called at most once per Endpoint, before Close.
  Result<int> Listen(const std::string& host, int port, ConnectionCallbacks callbacks);

  // Starts a connection to host:port. The returned Connection stays valid until its
  // on_close has run; failures after this call arrive there. Fails at once only for
  // a bad address, the connection limit, or a closing Endpoint.
  Result<Connection*> Connect(const std::string& host, int port,
                              ConnectionCallbacks callbacks);

  // Stops listening and closes every connection (orderly, reason "endpoint
  // closing"); `done` runs on the loop once every handle is closed — before Close
  // returns if none is open. May be called again; every `done` runs once.
  void Close(std::function<void()> done);

  // Told why an incoming connection was refused at accept (the connection limit,
  // too many handshakes from one address): for the node's log.
  void set_on_refused(std::function<void(const std::string& why)> f) {
    on_refused_ = std::move(f);
  }

  size_t connection_count() const { return connections_.size(); }
  const Context& context() const { return *context_; }
  const Options& options() const { return options_; }
  uv_loop_t* loop() const { return loop_; }

 private:
  friend class Connection;
  struct Rejected;

  static void OnConnectionCb(uv_stream_t* server, int status);
  void OnIncoming(int status);
  void Reject(const std::string& why);
  size_t HandshakesFrom(const std::string& host) const;
  Connection* Add(Connection::Role role, ConnectionCallbacks callbacks);
  // Called by a Connection when its last handle has closed; destroys it.
  void Release(Connection* connection);
  void MaybeDone();
  char* read_buffer() { return read_buffer_.get(); }

  uv_loop_t* loop_;
  std::shared_ptr<const Context> context_;
  Options options_;
  ConnectionCallbacks accept_callbacks_;
  std::function<void(const std::string&)> on_refused_;
  uv_tcp_t listener_;
  bool listen_called_ = false;
  bool listening_ = false;   // listener_ is initialized and not yet closed
  int handles_closing_ = 0;  // listener and rejected sockets being closed
  bool closing_ = false;
  std::vector<std::function<void()>> done_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  // One read buffer for every connection: reads are processed before the next one.
  std::unique_ptr<char[]> read_buffer_;
};

// Parses an IP literal and port. InvalidArgument names what is wrong.
Result<sockaddr_storage> ParseAddress(const std::string& host, int port);
// "IP:port" ("[v6]:port") of a socket address.
std::string FormatAddress(const sockaddr* address);

}  // namespace cairn::tls
