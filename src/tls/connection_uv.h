// Connection: one TLS connection on a libuv TCP socket, carrying framed
// wire::Envelope messages. Made by an Endpoint (Connect or an accepted socket); it
// owns its uv_tcp_t, one uv_timer_t (connect, handshake and close timeouts) and its
// Channel, and tells the layer above what happens through ConnectionCallbacks.
//
// Life of a connection, as the callbacks see it:
//   [on_open]            handshake done; peer_id() is the peer's verified CN
//   on_message*          each decoded message, in order
//   on_high_water / on_drained   the write queue crossed its marks (pause / resume)
//   on_close(reason)     exactly once, always last, also for connections that never
//                        opened (refused certificate, timeout, ...)
// After on_close returns the layer above must drop its pointer: the Endpoint frees
// the Connection once libuv has closed its handles.
//
// TLS 1.3 note: a client's handshake completes before the server has checked the
// client's certificate, so a client's on_open means "the server's certificate
// verified"; a server that then refuses ours shows up as on_close (kTls, "... alert
// ..."). The first message from the server (its Hello) is the confirmation.
//
// Thread-safety: the loop thread only. Callbacks run on it, and may call any method
// of this or another Connection (Send, Close, Abort) and of the Endpoint.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "tls/channel.h"
#include "tls/transport.h"
#include "tls/write_budget.h"
#include "wire/schema.h"

namespace cairn::tls {

class Connection;
class Endpoint;

// Every member may be empty. They run on the loop thread.
struct ConnectionCallbacks {
  std::function<void(Connection&)> on_open;
  std::function<void(Connection&, wire::Envelope&&)> on_message;
  // May run inside Send(): the queue just went above the high-water mark.
  std::function<void(Connection&)> on_high_water;
  std::function<void(Connection&)> on_drained;
  std::function<void(Connection&, const CloseReason&)> on_close;
};

class Connection {
 public:
  // Only an Endpoint makes connections.
  class Key {
    friend class Endpoint;
    Key() = default;
  };
  enum class Role { kClient, kServer };

  Connection(Key, Endpoint* endpoint, uint64_t id, Role role,
             ConnectionCallbacks callbacks);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Unique within the Endpoint, never reused.
  uint64_t id() const { return id_; }
  Role role() const { return role_; }
  // True from on_open until the connection starts closing.
  bool open() const { return state_ == State::kOpen; }
  bool handshaking() const { return state_ == State::kHandshaking; }
  // The peer's verified node id (its certificate's CN); empty before on_open.
  const std::string& peer_id() const { return channel_.peer_id(); }
  // The peer's verified certificate; nullptr before on_open.
  X509* peer_certificate() const { return channel_.peer_certificate(); }
  // "IP:port" of the peer, once TCP is connected; empty before.
  const std::string& remote_address() const { return remote_address_; }

  // Queues one message. ResourceExhausted when it is over the frame limit or would
  // pass the write limit (nothing queued, the connection stays up);
  // FailedPrecondition unless open().
  Status Send(const wire::Envelope& message);
  // The same for an already serialized Envelope (serialize once, send to many).
  Status SendSerialized(std::string_view message);

  // Write queue bytes not yet handed to the kernel, and whether senders should pause.
  size_t queued_write_bytes() const { return budget_.queued(); }
  bool above_high_water() const { return budget_.above_high_water(); }

  // Replaces the callbacks (e.g. once the layer above knows who the peer is).
  void set_callbacks(ConnectionCallbacks callbacks) { callbacks_ = std::move(callbacks); }

  // Orderly close: stops delivering messages, flushes what is queued, sends
  // close_notify, waits (bounded by close_timeout_ms) for the peer to finish.
  // on_close receives {kLocal, reason}. No-op once closing.
  void Close(const std::string& reason);
  // Abortive close: drops queued writes and resets the TCP connection at once.
  // Also cuts short an orderly close in progress.
  void Abort(const std::string& reason);

 private:
  friend class Endpoint;
  enum class State { kConnecting, kHandshaking, kOpen, kClosing, kClosed };
  struct WriteReq;

  // Driven by the Endpoint.
  void Init(uv_loop_t* loop);
  int StartConnect(const sockaddr* address);
  // An accepted connection: its remote address, read first so that the Endpoint
  // can refuse it; then the handshake.
  void ReadRemoteAddress();
  void StartAccepted();
  uv_tcp_t* tcp() { return &tcp_; }

  void OnConnected(int status);
  void StartHandshake();
  void OnRead(ssize_t nread, const char* data);
  void OnCiphertext(std::string_view bytes);
  void Deliver(Channel::Input input);
  void OnWriteDone(size_t bytes, int status);
  void OnShutdown(int status);
  void OnTimer();
  void ArmTimer(uint64_t timeout_ms);
  void Flush(bool force = false);
  void BeginClose(CloseReason reason, bool orderly);
  void MaybeFinishClose();
  void CloseHandles(bool reset);
  void OnHandleClosed();

  static void ReadCb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void AllocCb(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);

  Endpoint* endpoint_;
  uint64_t id_;
  Role role_;
  ConnectionCallbacks callbacks_;
  Channel channel_;
  WriteBudget budget_;
  State state_ = State::kConnecting;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_connect_t connect_req_;
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 0;
  bool tcp_connected_ = false;
  bool shutdown_started_ = false;
  bool shutdown_done_ = false;
  bool eof_ = false;
  int writes_in_flight_ = 0;
  size_t pending_counted_ = 0;  // of the channel's ciphertext, added to budget_
  std::string remote_address_;
};

}  // namespace cairn::tls
