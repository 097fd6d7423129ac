// Journal: deleting a stream this node no longer follows.
#include <future>

#include "journal/journal.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::Op;

Status Journal::Forget(const std::string& device) {
  std::promise<Result<uint64_t>> done;
  auto f = done.get_future();
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kForget;
  op->device = device;
  op->on_seq = [&done](Result<uint64_t> r) { done.set_value(std::move(r)); };
  Submit(std::move(op), /*may_write_here=*/true);
  return f.get().status();
}

Status Journal::DoForget(const std::string& device) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  wire::StreamMeta meta;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = streams_.find(device);
    if (signers_.count(device) || (it != streams_.end() && it->second->meta.source())) {
      return Status::FailedPrecondition("'" + device +
                                        "' is this node's own device: never forgotten");
    }
    if (it == streams_.end()) return Status::Ok();
    meta = it->second->meta;
  }
  // The mark goes first: LevelDB keeps a prefix of its writes, so any deletion
  // that survives a crash comes with it, and the next open finishes the job.
  meta.set_forgetting(true);
  leveldb::WriteBatch batch;
  batch.Put(layout::MetaKey(device), meta.SerializeAsString());
  if (Status s = store_->Write(&batch, true); !s.ok()) return Poison(s);
  {
    std::lock_guard<std::mutex> l(mu_);
    streams_.erase(device);
    staging_.erase(device);
    followers_.erase(device);
    accept_gap_.erase(device);
  }
  // Half-deleted with the stream gone from memory: an Apply now would start it
  // again over what is left. Stop instead; the next open finishes the deletion.
  if (Status s = FinishForget(device); !s.ok()) return Poison(s);
  return Status::Ok();
}

Status Journal::FinishForget(const std::string& device) {
  for (const std::string& prefix :
       {layout::EventPrefix(device), layout::SnapshotPrefix(device),
        layout::KvPrefix(device), layout::FollowerPrefix(device)}) {
    CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(prefix));
  }
  leveldb::WriteBatch batch;
  batch.Delete(layout::MetaKey(device));
  return store_->Write(&batch, options_.sync_writes);
}

}  // namespace cairn::journal
