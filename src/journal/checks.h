// The checks a device stream passes on its way in, trusting nothing but the CA:
// the shape of a run of records, every chain link, the signature that closes a
// chunk, and a snapshot's digest and signature. Journal::Apply, InstallSnapshot
// and Verify use them, and so does StreamVerifier (stream_verifier.h), so a node
// and a `cairn tail --peer` accept exactly the same streams.
//
// Thread-safety: pure functions.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "journal/identity.h"
#include "journal/journal.h"

namespace cairn::journal {

// "record 7 of 'dev'", for error messages.
std::string RecordName(const std::string& device, uint64_t seq);

// Records must be sorted and contiguous, each carrying a 32-byte hash, within the
// size limits of an append.
Status CheckShape(const std::string& device, const std::vector<wire::Record>& records);

// Checks that records[from..] chain from `prev` and returns the index of the last
// signed record, whose signature must verify with `key`; -1 when none is signed.
Result<long> CheckChain(const std::string& device, const DevicePublicKey& key,
                        std::string prev, const std::vector<wire::Record>& records,
                        size_t from);

// A snapshot must be well formed, match its signed digest and carry the device's
// signature.
Status CheckSnapshot(const SnapshotData& snap, const DevicePublicKey& key);

// A snapshot header alone, before any chunk is taken: well formed and signed by
// the device (the digest is checked once the chunks are in, by CheckSnapshot).
Status CheckSnapshotHeader(const wire::SnapshotHeader& h, const DevicePublicKey& key);

// Calls `fn` with each chunk of `snap` in order: its parsed chunks, or its
// encoded ones parsed one at a time. Stops at the first error; InvalidArgument
// for an encoded chunk over the chunk limit or one that does not parse.
Status ForEachSnapshotChunk(const SnapshotData& snap,
                            const std::function<Status(const wire::SnapshotChunk&)>& fn);

}  // namespace cairn::journal
