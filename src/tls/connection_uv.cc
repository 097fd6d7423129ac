#include "tls/connection_uv.h"

#include <memory>

#include "base/check.h"
#include "tls/endpoint_uv.h"

namespace cairn::tls {

// A uv_write_t and the bytes it writes, freed together by the write callback.
struct Connection::WriteReq {
  uv_write_t req;
  std::string data;
  Connection* connection;
};

namespace {

size_t WriteLimit(const Options& o) {
  return o.write_limit_bytes ? o.write_limit_bytes
                             : o.write_high_water_bytes + 2 * o.max_frame_bytes;
}

// An upper bound of the ciphertext one message of `bytes` becomes: the frame header,
// and per TLS record of up to 16 KiB a header, content type and tag.
size_t CiphertextBound(size_t bytes) { return bytes + 4 + (bytes / 16384 + 1) * 64; }

std::string UvError(const char* what, int status) {
  return std::string(what) + ": " + uv_strerror(status);
}

}  // namespace

Connection::Connection(Key, Endpoint* endpoint, uint64_t id, Role role,
                       ConnectionCallbacks callbacks)
    : endpoint_(endpoint),
      id_(id),
      role_(role),
      callbacks_(std::move(callbacks)),
      channel_(endpoint->context(),
               role == Role::kClient ? Channel::Role::kClient : Channel::Role::kServer,
               endpoint->options().max_frame_bytes,
               endpoint->options().first_frame_bytes),
      budget_(endpoint->options().write_high_water_bytes,
              endpoint->options().write_low_water_bytes,
              WriteLimit(endpoint->options())) {}

Connection::~Connection() {
  CHECK(open_handles_ == 0) << "Connection freed with open handles";
}

void Connection::Init(uv_loop_t* loop) {
  CHECK(uv_tcp_init(loop, &tcp_) == 0);
  CHECK(uv_timer_init(loop, &timer_) == 0);
  tcp_.data = this;
  timer_.data = this;
  open_handles_ = 2;
}

int Connection::StartConnect(const sockaddr* address) {
  remote_address_ = FormatAddress(address);
  int rc =
      uv_tcp_connect(&connect_req_, &tcp_, address, [](uv_connect_t* req, int status) {
        static_cast<Connection*>(req->handle->data)->OnConnected(status);
      });
  if (rc == 0) ArmTimer(endpoint_->options().connect_timeout_ms);
  return rc;
}

void Connection::OnConnected(int status) {
  if (state_ != State::kConnecting) return;  // closed meanwhile (UV_ECANCELED)
  if (status < 0) {
    BeginClose({CloseReason::Kind::kNetwork,
                UvError(("connect to " + remote_address_).c_str(), status)},
               /*orderly=*/false);
    return;
  }
  tcp_connected_ = true;
  StartHandshake();
}

void Connection::ReadRemoteAddress() {
  sockaddr_storage peer;
  int len = sizeof(peer);
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    remote_address_ = FormatAddress(reinterpret_cast<sockaddr*>(&peer));
  }
}

void Connection::StartAccepted() {
  tcp_connected_ = true;
  StartHandshake();
}

void Connection::StartHandshake() {
  state_ = State::kHandshaking;
  ArmTimer(endpoint_->options().handshake_timeout_ms);
  uv_tcp_nodelay(&tcp_, 1);
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), AllocCb, ReadCb);
  if (rc < 0) {
    BeginClose({CloseReason::Kind::kNetwork, UvError("read", rc)}, false);
    return;
  }
  Status s = channel_.Start();
  Flush();
  if (!s.ok()) BeginClose({CloseReason::Kind::kTls, s.message()}, true);
}

void Connection::AllocCb(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(handle->data);
  *buf = uv_buf_init(self->endpoint_->read_buffer(), Channel::kMaxCiphertextPerCall);
}

void Connection::ReadCb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  static_cast<Connection*>(stream->data)->OnRead(nread, buf->base);
}

void Connection::OnRead(ssize_t nread, const char* data) {
  if (state_ == State::kClosed || nread == 0) return;
  if (nread == UV_EOF) {
    eof_ = true;
    if (state_ == State::kClosing) return MaybeFinishClose();
    std::string why = channel_.open() ? "peer ended the stream without close_notify"
                                      : "peer ended the stream during the TLS handshake";
    return BeginClose({CloseReason::Kind::kPeerClosed, why}, true);
  }
  if (nread < 0) {
    return BeginClose(
        {CloseReason::Kind::kNetwork, UvError("read", static_cast<int>(nread))}, false);
  }
  // While closing, bytes are drained and dropped until the peer ends the stream.
  if (state_ == State::kClosing) return;
  OnCiphertext(std::string_view(data, static_cast<size_t>(nread)));
}

void Connection::OnCiphertext(std::string_view bytes) {
  Result<Channel::Input> input = channel_.OnCiphertext(bytes);
  Flush();  // handshake replies, alerts
  if (!input.ok()) {
    bool framing = input.status().IsCorruption();
    BeginClose({framing ? CloseReason::Kind::kProtocol : CloseReason::Kind::kTls,
                input.status().message()},
               true);
    return;
  }
  Deliver(std::move(input).value());
}

void Connection::Deliver(Channel::Input input) {
  if (input.opened && state_ == State::kHandshaking) {
    state_ = State::kOpen;
    uv_timer_stop(&timer_);
    if (callbacks_.on_open) callbacks_.on_open(*this);
  }
  for (wire::Envelope& message : input.messages) {
    if (state_ != State::kOpen) return;  // a callback closed us
    if (callbacks_.on_message) callbacks_.on_message(*this, std::move(message));
  }
  if (input.peer_closed && state_ == State::kOpen) {
    BeginClose(
        {CloseReason::Kind::kPeerClosed, "peer closed the connection (close_notify)"},
        true);
  }
}

Status Connection::Send(const wire::Envelope& message) {
  if (state_ != State::kOpen) return Status::FailedPrecondition("connection is not open");
  size_t size = message.ByteSizeLong();
  if (size > channel_.max_frame_bytes())
    return channel_.Send(message);  // the limit error
  return SendSerialized(message.SerializeAsString());
}

Status Connection::SendSerialized(std::string_view message) {
  if (state_ != State::kOpen) return Status::FailedPrecondition("connection is not open");
  if (message.size() <= channel_.max_frame_bytes() &&
      !budget_.Fits(CiphertextBound(message.size()))) {
    return Status::ResourceExhausted(
        "write queue full: " + std::to_string(budget_.queued()) + " bytes queued");
  }
  Status s = channel_.SendSerialized(message);
  if (!s.ok() && s.code() != Status::Code::kResourceExhausted) {
    BeginClose({CloseReason::Kind::kTls, s.message()}, false);  // the SSL object is done
  }
  if (s.ok()) Flush();
  return s;
}

// Writes are coalesced: one uv_write at a time, carrying every byte the channel
// holds. Bytes queued while it runs wait in the channel's buffer and go in the
// next one, so a thousand small messages to a peer that does not read cost one
// buffer (what the budget counts), not a thousand requests. `force`: write now
// even with a write in flight (the last bytes before a shutdown, which libuv
// orders after the writes already queued).
void Connection::Flush(bool force) {
  if (state_ == State::kClosed || !tcp_connected_ || shutdown_started_) return;
  const size_t pending = channel_.ciphertext_pending();
  if (pending > pending_counted_) {
    const bool high = budget_.Add(pending - pending_counted_);
    pending_counted_ = pending;
    if (high && state_ == State::kOpen && callbacks_.on_high_water) {
      callbacks_.on_high_water(*this);
      if (state_ == State::kClosed || shutdown_started_) return;
    }
  }
  if (pending == 0 || (writes_in_flight_ > 0 && !force)) return;
  auto req = std::make_unique<WriteReq>();
  req->data = channel_.TakeCiphertext();
  pending_counted_ = 0;  // still counted by the budget, as in flight
  req->connection = this;
  req->req.data = req.get();
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  int rc = uv_write(&req->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
                    [](uv_write_t* w, int status) {
                      std::unique_ptr<WriteReq> done(static_cast<WriteReq*>(w->data));
                      done->connection->OnWriteDone(done->data.size(), status);
                    });
  if (rc < 0) {
    budget_.Remove(req->data.size());
    return BeginClose({CloseReason::Kind::kNetwork, UvError("write", rc)}, false);
  }
  ++writes_in_flight_;
  req.release();  // owned by libuv until the callback
}

void Connection::OnWriteDone(size_t bytes, int status) {
  --writes_in_flight_;
  bool drained = budget_.Remove(bytes);
  if (status < 0) {
    if (status != UV_ECANCELED)
      BeginClose({CloseReason::Kind::kNetwork, UvError("write", status)}, false);
    return;
  }
  Flush();  // what queued up meanwhile
  if (drained && state_ == State::kOpen && callbacks_.on_drained &&
      !budget_.above_high_water())
    callbacks_.on_drained(*this);
}

void Connection::Close(const std::string& reason) {
  BeginClose({CloseReason::Kind::kLocal, reason}, true);
}

void Connection::Abort(const std::string& reason) {
  BeginClose({CloseReason::Kind::kLocal, reason}, false);
}

// The one way into closing. Reports the reason once, then either resets at once or
// sends close_notify and FIN and waits (bounded) for the peer's end of stream.
void Connection::BeginClose(CloseReason reason, bool orderly) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kClosing) {
    if (!orderly) CloseHandles(/*reset=*/true);
    return;
  }
  state_ = State::kClosing;
  if (callbacks_.on_close) callbacks_.on_close(*this, reason);
  if (state_ != State::kClosing) return;  // the callback aborted us
  if (!orderly || !tcp_connected_) return CloseHandles(/*reset=*/true);
  channel_.Shutdown();
  Flush(/*force=*/true);
  if (state_ != State::kClosing) return;
  int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_),
                       [](uv_shutdown_t* req, int status) {
                         static_cast<Connection*>(req->handle->data)->OnShutdown(status);
                       });
  if (rc < 0) return CloseHandles(/*reset=*/false);
  shutdown_started_ = true;
  ArmTimer(endpoint_->options().close_timeout_ms);
}

void Connection::OnShutdown(int status) {
  shutdown_done_ = true;
  if (state_ != State::kClosing) return;
  if (status < 0) return CloseHandles(/*reset=*/false);
  MaybeFinishClose();
}

void Connection::MaybeFinishClose() {
  if (state_ == State::kClosing && shutdown_done_ && eof_) CloseHandles(/*reset=*/false);
}

void Connection::ArmTimer(uint64_t timeout_ms) {
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->OnTimer(); },
      timeout_ms, 0);
}

void Connection::OnTimer() {
  const Options& o = endpoint_->options();
  switch (state_) {
    case State::kConnecting:
      return BeginClose({CloseReason::Kind::kTimeout,
                         "connect to " + remote_address_ + " timed out after " +
                             std::to_string(o.connect_timeout_ms) + " ms"},
                        false);
    case State::kHandshaking:
      return BeginClose({CloseReason::Kind::kTimeout,
                         "TLS handshake not complete after " +
                             std::to_string(o.handshake_timeout_ms) + " ms"},
                        false);
    case State::kClosing:
      return CloseHandles(/*reset=*/!shutdown_started_);
    case State::kOpen:
    case State::kClosed:
      return;
  }
}

void Connection::CloseHandles(bool reset) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  auto closed = [](uv_handle_t* h) {
    static_cast<Connection*>(h->data)->OnHandleClosed();
  };
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), closed);
  // libuv forbids mixing uv_shutdown and a reset on one stream.
  if (reset && tcp_connected_ && !shutdown_started_) {
    if (uv_tcp_close_reset(&tcp_, closed) == 0) return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), closed);
}

void Connection::OnHandleClosed() {
  CHECK(open_handles_ > 0);
  if (--open_handles_ == 0) endpoint_->Release(this);  // destroys this
}

}  // namespace cairn::tls
