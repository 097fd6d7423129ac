// TailPrinter: how `cairn tail` prints, whether the stream comes from the local
// node's control socket (cli_tail.cc) or from any node over TLS (tail_peer_uv.h):
// a snapshot as one line when it is complete, then events in order, plain or
// --json, and a progress bar on a terminal's stderr while a large stored range
// streams.
//
//   plain:  DEVICE snapshot SEQ {"store":{"key":value}}
//           DEVICE SEQ TYPE PAYLOAD
//           DEVICE truncated FROM..TO by retention; the snapshot at SEQ stands for
//           FROM..SEQ
//   --json: {"device","snapshot":SEQ,"kv":{...}}
//           {"device","seq","time_us","type","payload"}
//           {"device","truncated":{"from":FROM,"to":TO},"snapshot":SEQ}
//
// Thread-safety: single-threaded CLI code.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "wire/schema.h"

namespace cairn::node::cli {

class TailPrinter {
 public:
  static constexpr uint64_t kProgressAbove = 10'000;  // events; smaller: no bar

  // `bar`: draw the progress bar (stderr is a terminal).
  TailPrinter(bool json, bool bar) : json_(json), bar_(bar) {}

  // A tail of `device` from `from` starts; `head` is its last seq at the node.
  void Begin(const std::string& device, uint64_t from, uint64_t head);
  // The entries of one snapshot chunk; End prints the snapshot.
  void SnapshotChunk(const std::string& device, const wire::SnapshotChunk& chunk);
  void SnapshotEnd(const std::string& device, uint64_t seq);
  void Record(const std::string& device, const wire::Record& record);
  // Events from..to are gone at the node (retention): they will never be printed.
  void Truncated(const std::string& device, uint64_t from, uint64_t to,
                 uint64_t snapshot);
  // After a batch: flushes stdout and moves the bar to `seq` (clears it at the
  // head; UINT64_MAX clears it; 0 leaves it).
  void Progress(const std::string& device, uint64_t seq);

 private:
  struct Stream {
    nlohmann::json kv = nlohmann::json::object();  // snapshot entries so far
    uint64_t target = 0;  // the head when the tail started; 0: no bar
  };

  bool json_;
  bool bar_;
  std::map<std::string, Stream> streams_;
};

}  // namespace cairn::node::cli
