// ControlClient: the CLI's side of a node's control socket, DATA/cairn.sock.
// Blocking calls over one Unix stream socket; frames as in wire/frame.h.
//
// Thread-safety: one thread at a time. Ownership: owns its socket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "wire/schema.h"

namespace cairn::node {

class ControlClient {
 public:
  // Fails with a message naming the data directory when no node answers there.
  static Result<std::unique_ptr<ControlClient>> Connect(const std::string& data_dir);
  explicit ControlClient(int fd) : fd_(fd) {}
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Gives the request the next id (returned) and sends it.
  Result<uint64_t> Send(wire::ControlRequest request);
  // Waits for the next reply. Unavailable when the node closed the connection.
  Result<wire::ControlReply> Receive();
  // Send, then Receive until the reply for it (a one-reply request).
  Result<wire::ControlReply> Call(wire::ControlRequest request);
  // True when a whole reply is already buffered: Receive returns without reading,
  // and poll() on fd() would not say so.
  bool HasBufferedReply() const;
  int fd() const { return fd_; }

 private:
  int fd_;
  uint64_t next_id_ = 1;
  std::string in_;
};

// The Status a ControlError carries (its code name and message).
Status StatusOf(const wire::ControlError& error);

}  // namespace cairn::node
