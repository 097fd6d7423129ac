// Transport options and close reasons: the vocabulary shared by the libuv transport
// (endpoint_uv.h, connection_uv.h) and the layers above it. Pure: no libuv here.
//
// Thread-safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "wire/frame.h"

namespace cairn::tls {

// Limits and timeouts of one Endpoint and every connection it makes or accepts.
struct Options {
  // The largest message payload sent or accepted; a larger incoming frame closes
  // the connection, a larger outgoing message is refused by Send.
  size_t max_frame_bytes = wire::kDefaultMaxFrameBytes;
  // The first message received on a connection (the hello, before the layer above
  // knows what the peer is) may be at most this big: a connection that never
  // completes its hello holds at most this much of a partial frame.
  size_t first_frame_bytes = 64 << 10;
  // Outgoing: TCP connect must complete within this.
  uint64_t connect_timeout_ms = 10'000;
  // Both sides: the TLS handshake must complete within this after TCP is up.
  uint64_t handshake_timeout_ms = 5'000;
  // Orderly close: how long to wait for the peer to finish after our close_notify.
  uint64_t close_timeout_ms = 2'000;
  // Back-pressure: crossing the high-water mark of queued write bytes calls
  // on_high_water (senders pause); falling to the low-water mark calls on_drained.
  size_t write_high_water_bytes = 1 << 20;
  size_t write_low_water_bytes = 256 << 10;
  // Hard cap on queued write bytes: Send refuses what would exceed it.
  // 0 means write_high_water_bytes + 2 * max_frame_bytes.
  size_t write_limit_bytes = 0;
  // Connections open at once (accepted + outgoing); more are refused at accept.
  size_t max_connections = 1024;
  // Accepted connections from one IP address still in the TLS handshake; more from
  // that address are refused at accept (one host cannot hold every handshake slot).
  size_t max_handshakes_per_ip = 64;
};

// Why a connection ended, delivered once to the layer above.
struct CloseReason {
  enum class Kind {
    kLocal,       // this side called Close/Abort (or the Endpoint closed)
    kPeerClosed,  // the peer ended the connection (close_notify or end of stream)
    kNetwork,     // connect, read or write failed at the socket
    kTimeout,     // connect or handshake did not complete in time
    kTls,         // handshake refused (certificate, protocol) or a TLS record error
    kProtocol,    // a frame over the limit, or bytes that are not a message
  };
  Kind kind = Kind::kLocal;
  std::string message;

  static const char* KindName(Kind kind);
  // "tls: TLS handshake failed: peer did not return a certificate"
  std::string ToString() const { return std::string(KindName(kind)) + ": " + message; }
};

inline const char* CloseReason::KindName(Kind kind) {
  switch (kind) {
    case Kind::kLocal:
      return "local";
    case Kind::kPeerClosed:
      return "peer closed";
    case Kind::kNetwork:
      return "network";
    case Kind::kTimeout:
      return "timeout";
    case Kind::kTls:
      return "tls";
    case Kind::kProtocol:
      return "protocol";
  }
  return "unknown";
}

}  // namespace cairn::tls
