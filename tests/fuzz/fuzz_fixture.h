// The fixed world of the journal fuzz targets: a network CA, the device "fz-dev"
// with a fixed Ed25519 key, and its stream as its source wrote it on a frozen
// clock. Ed25519 signatures and the chain are deterministic, so the records and
// snapshots are the same bytes in every run: the seed corpus (written by
// cairn_fuzz_seeds) holds them, and a mutated copy stays comparable with them.
//
//   records 1..25 of fz-dev; signed at 5, 15, 20 and 25; KV events among them;
//   snapshot A at 20 (taken after 1..20), snapshot B at 25.
//
// Replicas are fresh Journals on an in-memory LevelDB Env (leveldb::NewMemEnv).
//
// Thread-safety: Get() builds the fixture once (thread-safe); afterwards it is
// read-only. A Replica is used by one thread.
#pragma once

#include <leveldb/env.h>

#include <memory>
#include <string>
#include <vector>

#include "journal/journal.h"

namespace cairn::fuzz {

inline constexpr char kFuzzDevice[] = "fz-dev";

class Fixture {
 public:
  static const Fixture& Get();

  std::shared_ptr<const journal::CertAuthority> ca;
  std::string cert_der;               // fz-dev's certificate
  std::string other_cert_der;         // a valid certificate of another device, "fz-other"
  std::string stranger_cert_der;      // "fz-dev" issued by another CA
  std::vector<wire::Record> records;  // 1..25, as the source stored them
  journal::SnapshotData snapshot_a;   // at 20
  journal::SnapshotData snapshot_b;   // at 25
  std::vector<journal::KvItem> view_a, view_b;          // the KV view at each snapshot
  std::shared_ptr<journal::DeviceSigner> other_signer;  // signs as "fz-other"
};

// A journal on its own in-memory Env; destroys both in order. A replica of
// fz-dev; with `source`, also the source of "fz-other" (it may append).
class Replica {
 public:
  explicit Replica(bool source = false);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;
  journal::Journal& operator*() { return *journal_; }
  journal::Journal* operator->() { return journal_.get(); }

 private:
  std::unique_ptr<leveldb::Env> env_;
  std::unique_ptr<journal::Journal> journal_;
};

// The frames of `bytes` (wire/frame.h), each payload as a view; stops at the
// first incomplete or malformed frame. At most `max_frames`.
std::vector<std::string_view> SplitFrames(std::string_view bytes, size_t max_frames);

}  // namespace cairn::fuzz
