// ControlServer::Client: one connection to the control socket (internal to
// control_server_uv.cc, control_requests.cc and tail_uv.cc).
//
// Thread-safety: the loop thread only. Ownership: the ControlServer owns it; it is
// destroyed in the close callback of its pipe.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "node/control_server_uv.h"
#include "node/tail_uv.h"

namespace cairn::node {

struct ControlServer::Client {
  static constexpr size_t kReadBufferBytes = 64u << 10;

  ControlServer* server = nullptr;
  uint64_t id = 0;
  uv_pipe_t pipe{};
  std::string in;           // bytes received, not yet a whole frame
  size_t in_flight = 0;     // requests accepted, final reply not yet sent
  size_t queued_bytes = 0;  // reply bytes handed to libuv, not yet written
  bool reading = false;
  bool closing = false;
  bool settling = false;  // inside Settle: nested calls return at once
  std::map<uint64_t, std::shared_ptr<Tail>> tails;  // by request id
  std::set<uint64_t> watches;                       // ControlWatch request ids
  std::unique_ptr<char[]> read_buffer = std::make_unique<char[]>(kReadBufferBytes);
};

}  // namespace cairn::node
