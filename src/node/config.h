// DaemonConfig: everything cairnd is told on its command line or in its config
// file, and the parser that fills it. Flags win over the file (`--config FILE`,
// TOML: `key = value` with the long flag names as keys, e.g.
//   data = "/var/lib/cairn"
//   peer = ["10.0.0.2:7411", "10.0.0.3:7411"]
//   sync-writes = "on"
// ). `cairnd --help` documents every flag with its default.
//
// Thread-safety: plain values and a pure function of argv and the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace cairn::node {

inline constexpr int kDefaultListenPort = 7411;  // the DNS seed default port
inline constexpr int kDevListenPort = 7400;

struct DevicePair {
  std::string cert;
  std::string key;
};

struct DaemonConfig {
  std::string data_dir = "./data";
  std::string listen_host = "0.0.0.0";
  int listen_port = kDefaultListenPort;
  std::string advertise;
  std::vector<std::string> peers;      // HOST:PORT, pinned seeds
  std::vector<std::string> dns_seeds;  // names
  std::string dns_server;              // IP:PORT; empty: the system's
  bool peer_exchange = true;
  // The bounded mesh (discovery::Options): peers this node dials up to, and the
  // most it keeps active, incoming included. 0: no bound.
  uint64_t target_peers = 8;
  uint64_t max_peers = 64;
  // Interest (sync/interest.h): the devices this node follows; empty: every one.
  // `cairn follow` overrides it at run time (node/interest_file.h).
  std::vector<std::string> follow;
  std::string ca_file, cert_file, key_file;
  std::string crl_file;                 // --crl: revocation list, reloaded on SIGHUP
  std::vector<DevicePair> devices;      // extra devices this node is the source of
  uint64_t snapshot_every = 0;          // events; 0 = off
  uint64_t snapshot_every_seconds = 0;  // 0 = off
  // Retention (journal::RetentionOptions): followers that must hold an event
  // before it goes (0: all known), and the limits past which it goes anyway.
  uint64_t retain_acks = 0;
  uint64_t retain_max_age_seconds = 0;  // 0 = no limit
  uint64_t retain_max_bytes = 0;        // per stream; 0 = no limit
  int64_t retain_every_ms = 5'000;      // how often the retention pass runs
  // A snapshot from a peer is staged on disk as it comes: the largest one taken,
  // and what all those coming at once may stage (sync::SyncOptions).
  uint64_t max_snapshot_bytes = uint64_t{4} << 30;
  uint64_t max_staged_bytes = uint64_t{16} << 30;
  // A peer offered at least this many devices is sent a summary of them first
  // (sync::SyncOptions::summary_min_entries).
  uint64_t summary_min_devices = 256;
  bool sync_writes = true;
  bool dev = false;
  bool new_device = false;
  // Silence after which an active peer counts as gone (discovery's dead interval);
  // a ping goes out after a third of it. Fault tests shorten it.
  int64_t dead_interval_ms = 30'000;
  std::string log_level = "info";
};

// What parsing decided: run with `config`, or exit with `exit_code` (after --help,
// or after printing a usage error to stderr).
struct ParsedFlags {
  std::optional<DaemonConfig> config;
  int exit_code = 0;
};

ParsedFlags ParseDaemonFlags(int argc, const char* const* argv);

// "HOST:PORT" or "[V6]:PORT" → host and port. InvalidArgument names `what`.
Result<std::pair<std::string, int>> SplitHostPort(const std::string& text,
                                                  const std::string& what);

}  // namespace cairn::node
