// Peer addresses and node ids as the discovery layer sees them: "HOST:PORT" text
// ("[v6]:PORT" for IPv6), split and checked here without touching the network.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cairn::discovery {

struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};

// Splits "HOST:PORT" / "[V6]:PORT". Empty when the text is not of that shape or the
// port is not in 1..65535. Does not resolve or check that HOST is an IP literal.
std::optional<HostPort> SplitHostPort(std::string_view address);
// The inverse: "HOST:PORT", with brackets when HOST contains ':'.
std::string JoinHostPort(std::string_view host, int port);

// The node id rule of certs/*.sh and src/tls: 1 to 64 characters of A-Z a-z 0-9
// . _ -, not starting with '.' or '-'. Checked on ids learned from other peers.
bool IsPlausibleNodeId(std::string_view id);

}  // namespace cairn::discovery
