// Channel: the pure core of one TLS connection. It drives an OpenSSL SSL object
// through memory BIOs and frames messages on top, doing no I/O of its own: the caller
// feeds it the bytes that arrived from the socket, writes out the bytes it produces,
// and gets back handshake progress, the peer's id and decoded messages.
//
//   bytes from the socket ──OnCiphertext()──► Input{opened, messages, peer_closed}
//   Send(envelope) / Shutdown() ──► TakeCiphertext() ──► bytes for the socket
//
// After every call, write TakeCiphertext() to the socket: handshake replies and
// alerts are produced while reading too. The peer's id is the CN of its certificate,
// verified against the Context's CA during the handshake.
//
// A failed call means the connection is finished: close it with the returned reason
// (after writing TakeCiphertext(), which may hold an alert telling the peer why).
//
// Thread-safety: none; one Channel per connection, used on one thread.
// Ownership: the Channel holds its SSL object; the Context need not outlive it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tls/context.h"
#include "tls/frame_reader.h"
#include "tls/ossl.h"
#include "wire/schema.h"

namespace cairn::tls {

class Channel {
 public:
  enum class Role { kClient, kServer };

  // The most ciphertext one OnCiphertext call may take (one socket read).
  static constexpr size_t kMaxCiphertextPerCall = 64 << 10;

  // What one OnCiphertext call brought.
  struct Input {
    bool opened = false;                   // the handshake completed in this call
    std::vector<wire::Envelope> messages;  // complete messages, in order
    bool peer_closed = false;              // the peer sent close_notify
  };

  // REQUIRES: 0 < max_frame_bytes <= 64 MiB. first_frame_bytes: the limit of the
  // first message received (the hello; 0: max_frame_bytes).
  Channel(const Context& context, Role role,
          size_t max_frame_bytes = wire::kDefaultMaxFrameBytes,
          size_t first_frame_bytes = 0);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // A client queues its ClientHello; a server waits for the peer's.
  // REQUIRES: called once, before OnCiphertext.
  Status Start();

  // Feeds bytes received from the socket. REQUIRES: size <= kMaxCiphertextPerCall.
  Result<Input> OnCiphertext(std::string_view bytes);

  // Queues one message. Fails with ResourceExhausted, queueing nothing, when it is over
  // the frame limit (the connection stays usable); FailedPrecondition before the
  // handshake completes or after Shutdown(). SendSerialized takes an already
  // serialized Envelope (serialize once, send to many).
  Status Send(const wire::Envelope& message);
  Status SendSerialized(std::string_view message);

  // Queues close_notify; nothing can be sent afterwards. Idempotent.
  void Shutdown();

  // Ciphertext waiting to be written to the socket, moved out.
  std::string TakeCiphertext();
  size_t ciphertext_pending() const;

  bool open() const { return open_; }
  // The verified CN of the peer's certificate; empty until open().
  const std::string& peer_id() const { return peer_id_; }
  // The peer's verified certificate; nullptr until open().
  X509* peer_certificate() const {
    return open_ ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
  }
  bool peer_closed() const { return peer_closed_; }
  size_t max_frame_bytes() const { return max_frame_bytes_; }

 private:
  Status AdvanceHandshake(Input* input);
  Status ReadRecords(Input* input);
  Status DrainFrames(Input* input);
  std::string FailureReason(int ssl_error, const char* what);

  size_t max_frame_bytes_;
  Role role_;
  SslPtr ssl_;
  BIO* rbio_;  // owned by ssl_
  BIO* wbio_;  // owned by ssl_
  FrameReader reader_;
  bool started_ = false;
  bool open_ = false;
  bool shut_down_ = false;
  bool peer_closed_ = false;
  std::string peer_id_;
};

}  // namespace cairn::tls
