// Journal: opening, loading stream metadata, shutdown and catalogue reads.
#include "journal/journal.h"

#include "base/bytes.h"
#include "journal/chain.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::StreamState;

StreamInfo ToInfo(const std::string& device, const StreamState& state) {
  const wire::StreamMeta& meta = state.meta;
  StreamInfo i;
  i.device = device;
  i.first = meta.first();
  i.last = meta.last();
  i.snapshot = meta.snapshot();
  i.source = meta.source();
  i.head_hash = meta.head_hash();
  i.event_bytes = meta.event_bytes();
  i.groups = state.Groups();
  return i;
}

KvItem ToItem(const std::string& store, const std::string& key, const wire::KvEntry& e) {
  return KvItem{store, key, e.value(), e.rev(), e.expiry_us()};
}

Journal::Journal(JournalOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Journal>> Journal::Open(JournalOptions options) {
  if (!options.ca) return Status::InvalidArgument("journal needs the network CA");
  if (!options.clock) return Status::InvalidArgument("journal needs a clock");
  std::unique_ptr<Journal> j(new Journal(std::move(options)));
  CAIRN_ASSIGN_OR_RETURN(j->store_, Store::Open(j->options_.store));
  for (const auto& signer : j->options_.sources) {
    CAIRN_RETURN_IF_ERROR(ValidateDeviceId(signer->device()));
    j->signers_[signer->device()] = signer;
  }
  CAIRN_RETURN_IF_ERROR(j->Load());
  j->writer_ = std::thread([jp = j.get()] { jp->WriterLoop(); });
  j->delivery_ = std::thread([jp = j.get()] { jp->DeliveryLoop(); });
  return j;
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard<std::mutex> l(sub_mu_);
    sub_stopping_ = true;
  }
  sub_cv_.notify_all();
  if (delivery_.joinable()) delivery_.join();
}

// Trusts LevelDB and nothing else: every stream's head must be where its meta says.
Status Journal::Load() {
  std::vector<std::pair<std::string, wire::StreamMeta>> installs;  // cut short
  std::vector<std::string> forgets;                                // cut short
  auto it = store_->NewIterator();
  for (it->Seek(std::string(layout::kMetaPrefix)); it->Valid(); it->Next()) {
    std::string device;
    if (!layout::ParseMetaKey(std::string_view(it->key().data(), it->key().size()),
                              &device)) {
      break;
    }
    wire::StreamMeta meta;
    if (!meta.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption(store_->path() + ": stream meta of '" + device +
                                "' does not decode");
    }
    if (meta.forgetting()) {
      forgets.push_back(device);  // finished below
      continue;
    }
    if (meta.installing() != 0) {
      installs.emplace_back(device, std::move(meta));  // finished below
      continue;
    }
    CAIRN_RETURN_IF_ERROR(LoadStream(device, meta));
  }
  if (!it->status().ok()) return store_->Convert(it->status(), "loading stream metadata");
  for (const auto& device : forgets) CAIRN_RETURN_IF_ERROR(FinishForget(device));
  for (auto& [device, meta] : installs) {
    CAIRN_ASSIGN_OR_RETURN(auto done, ResumeInstall(device, std::move(meta)));
    if (done) CAIRN_RETURN_IF_ERROR(LoadStream(device, *done));
  }
  const leveldb::Slice fork_prefix(layout::kForkPrefix.data(),
                                   layout::kForkPrefix.size());
  for (it->Seek(fork_prefix); it->Valid() && it->key().starts_with(fork_prefix);
       it->Next()) {
    fork_keys_.insert(it->key().ToString());
  }
  const leveldb::Slice follower_prefix(layout::kFollowerPrefix.data(),
                                       layout::kFollowerPrefix.size());
  for (it->Seek(follower_prefix); it->Valid() && it->key().starts_with(follower_prefix);
       it->Next()) {
    std::string device, node;
    std::string_view v(it->value().data(), it->value().size());
    uint64_t last = 0;
    if (!layout::ParseFollowerKey(std::string_view(it->key().data(), it->key().size()),
                                  &device, &node) ||
        !GetU64BE(&v, &last)) {
      return Status::Corruption(store_->path() + ": a follower record does not decode");
    }
    followers_[device][node] = last;
  }
  for (const auto& [device, signer] : signers_) {
    auto& s = streams_[device];
    if (!s) {
      s = std::make_unique<StreamState>();
      s->meta.set_first(1);
      s->meta.set_head_hash(GenesisHash(device, signer->public_key()->raw()));
    }
    // The certificate this node signs with is the one its stream carries to
    // peers: after a renewal (same key), the new one (written with the next
    // meta), or replicas would check what it signs against the old expiry.
    s->meta.set_device_cert(signer->public_key()->cert_der());
    s->meta.set_source(true);
    s->key = signer->public_key();
    s->last_snapshot_mono_us = options_.clock->MonotonicMicros();
  }
  it.reset();
  return ClearStaleSlots();
}

Status Journal::LoadStream(const std::string& device, const wire::StreamMeta& meta) {
  auto state = std::make_unique<StreamState>();
  state->meta = meta;
  state->meta.set_source(false);
  const std::string where = store_->path() + ": stream '" + device + "'";
  if (meta.last() > meta.snapshot()) {
    CAIRN_ASSIGN_OR_RETURN(
        auto head, store_->GetProto<wire::Record>(layout::EventKey(device, meta.last())));
    if (!head) {
      return Status::Corruption(where + ": head event " + std::to_string(meta.last()) +
                                " is missing");
    }
    if (head->hash() != meta.head_hash()) {
      return Status::Corruption(where + ": head event " + std::to_string(meta.last()) +
                                " does not match the stored head hash");
    }
  } else if (meta.snapshot() > 0 && meta.snapshot_hash() != meta.head_hash()) {
    return Status::Corruption(where + ": snapshot hash does not match the head hash");
  }
  if (!meta.has_event_bytes()) {
    // Written before the count was kept: counted once, stored with the next write.
    uint64_t bytes = 0;
    const std::string prefix = layout::EventPrefix(device);
    auto it = store_->NewIterator();
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      bytes += it->key().size() + it->value().size();
    }
    CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "counting stored events"));
    state->meta.set_event_bytes(bytes);
  }
  if (auto it = signers_.find(device); it != signers_.end()) {
    // Our key must be the key this stream was written with.
    auto verified = options_.ca->VerifyDevice(meta.device_cert(), device);
    if (verified.ok() && (*verified)->raw() != it->second->public_key()->raw()) {
      return Status::FailedPrecondition(where + " was written with another key than " +
                                        "the device key given to this node");
    }
  }
  streams_[device] = std::move(state);
  return Status::Ok();
}

std::vector<StreamInfo> Journal::Catalogue() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<StreamInfo> out;
  out.reserve(streams_.size());
  for (const auto& [device, s] : streams_) out.push_back(ToInfo(device, *s));
  return out;
}

Result<StreamInfo> Journal::Stream(std::string_view device) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = streams_.find(std::string(device));
  if (it == streams_.end()) {
    return Status::NotFound("no stream for device '" + std::string(device) + "'");
  }
  return ToInfo(it->first, *it->second);
}

Result<std::string> Journal::DeviceCert(std::string_view device) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = streams_.find(std::string(device));
  if (it == streams_.end()) {
    return Status::NotFound("no stream for device '" + std::string(device) + "'");
  }
  return it->second->meta.device_cert();
}

std::vector<wire::ForkProof> Journal::Forks() const {
  std::vector<wire::ForkProof> out;
  auto it = store_->NewIterator();
  for (it->Seek(std::string(layout::kForkPrefix));
       it->Valid() &&
       it->key().starts_with(leveldb::Slice(layout::kForkPrefix.data(), 1));
       it->Next()) {
    wire::ForkProof p;
    if (p.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      out.push_back(std::move(p));
    }
  }
  return out;
}

size_t Journal::ForkCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return fork_keys_.size();
}

Status Journal::StoreForkProof(const wire::ForkProof& proof) {
  const std::string key = layout::ForkKey(proof.device(), proof.seq());
  leveldb::WriteBatch batch;
  batch.Put(key, proof.SerializeAsString());
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
  std::lock_guard<std::mutex> l(mu_);
  fork_keys_.insert(key);
  return Status::Ok();
}

void Journal::SetCommitListener(CommitListener listener) {
  std::unique_lock<std::mutex> l(mu_);
  listener_ = std::move(listener);
  callbacks_done_.wait(l, [this] { return callbacks_running_ == 0; });
}

void Journal::SetCommitTap(CommitTap tap) {
  std::unique_lock<std::mutex> l(mu_);
  tap_ = std::move(tap);
  callbacks_done_.wait(l, [this] { return callbacks_running_ == 0; });
}

}  // namespace cairn::journal
