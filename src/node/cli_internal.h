// Shared pieces of the cairn CLI (cli*.cc): the parsed options of each command,
// the commands, and the JSON forms of what the node returns.
//
// Thread-safety: single-threaded CLI code.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "wire/schema.h"

namespace cairn::node::cli {

struct Options {
  std::string data_dir = "./data";
  std::string device, type, payload, store, key;
  bool stdin_mode = false;
  bool json = false;
  bool follow = false;
  bool all = false;
  bool allow_gaps = false;  // tail: events deleted by retention are not an error
  uint64_t from = 1;
  size_t batch = 1000;
  size_t window = 8;
  // tail --peer: a node over TLS instead of the local control socket.
  std::string peer;  // HOST:PORT
  std::string ca_file, cert_file, key_file;
  std::vector<std::string> patterns;  // follow, unfollow
  bool reset = false;                 // follow --reset
  bool only = false;                  // follow --only
};

// Each returns the process exit status, after printing any error.
int Append(const Options& o);
int Tail(const Options& o);
int StatusCmd(const Options& o);
int KvGet(const Options& o);
int KvList(const Options& o);
int Snapshot(const Options& o);
int Verify(const Options& o);
int GuardRelease(const Options& o);
int Resync(const Options& o);
int Follow(const Options& o, bool unfollow);
std::string InterestText(const wire::ControlInterest& i);
// The exit code of an append the node refused for now (the restore guard, the
// journal shutting down): try again later (sysexits.h EX_TEMPFAIL).
inline constexpr int kExitTryLater = 75;
// The exit code of a tail that met events deleted by retention (without
// --allow-gaps): what it printed is complete up to the gap line, not beyond it.
inline constexpr int kExitGap = 3;
// tail with --peer (tail_peer_uv.cc).
int TailPeer(const Options& o);

// "cairn: " + message on stderr; returns 1.
int Fail(const std::string& message);
int Fail(const Status& s);

// JSON text as JSON, anything else as a (lossy UTF-8) string.
nlohmann::json PayloadJson(const std::string& bytes);
nlohmann::json EventJson(const std::string& device, const wire::Record& r);
nlohmann::json StatusJson(const wire::ControlStatusReply& s);
std::string Dump(const nlohmann::json& j);

}  // namespace cairn::node::cli
