// Reads: event ranges, the pull cursor, stream metadata at a LevelDB snapshot.
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::SnapshotHold;

namespace {

constexpr size_t kMaxSignedChunkBytes = 16u << 20;

}  // namespace

// The meta as of `snap`. While a snapshot replaces the stream's events and view
// (the mark is written before the first delete and cleared with the last put),
// nothing of it is read: Unavailable.
Result<std::optional<wire::StreamMeta>> Journal::MetaAt(
    std::string_view device, const leveldb::Snapshot* snap) const {
  CAIRN_ASSIGN_OR_RETURN(
      auto meta, store_->GetProto<wire::StreamMeta>(layout::MetaKey(device), snap));
  if (meta && meta->installing() != 0) {
    return Status::Unavailable("a snapshot of '" + std::string(device) +
                               "' is being installed in place of what this node held; "
                               "try again shortly");
  }
  // Being deleted (Forget): what is left of it is no stream any more.
  if (meta && meta->forgetting()) return std::optional<wire::StreamMeta>();
  return meta;
}

Result<std::vector<wire::Record>> Journal::ReadAt(std::string_view device, uint64_t from,
                                                  uint64_t to, size_t max_bytes,
                                                  bool end_at_signed,
                                                  const leveldb::Snapshot* snap) const {
  std::vector<wire::Record> out;
  size_t bytes = 0;
  auto it = store_->NewIterator(snap);
  const std::string prefix = layout::EventPrefix(device);
  uint64_t expect = from;
  for (it->Seek(layout::EventKey(device, from)); expect <= to; it->Next(), ++expect) {
    if (!it->Valid() || !it->key().starts_with(prefix)) break;
    wire::Record& r = out.emplace_back();
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        r.seq() != expect) {
      return Status::Corruption(store_->path() + ": event " + std::to_string(expect) +
                                " of '" + std::string(device) +
                                "' is missing or damaged");
    }
    bytes += it->value().size();
    if (bytes < max_bytes) continue;
    if (!end_at_signed || !r.sig().empty()) return out;
    if (bytes > kMaxSignedChunkBytes) {
      return Status::Corruption("'" + std::string(device) + "' has no signed record in " +
                                "16 MiB after " + std::to_string(from));
    }
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading events"));
  if (expect <= to) {  // the iterator ran out before `to`
    return Status::Corruption(store_->path() + ": event " + std::to_string(expect) +
                              " of '" + std::string(device) + "' is missing");
  }
  return out;
}

Result<std::vector<wire::Record>> Journal::Read(std::string_view device, uint64_t from,
                                                size_t limit, size_t max_bytes) const {
  SnapshotHold hold(store_->db());
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, hold.get()));
  if (!meta) {
    // A device we are the source of exists before its first append.
    CAIRN_RETURN_IF_ERROR(Stream(device).status());
    return std::vector<wire::Record>();
  }
  if (from == 0) return Status::InvalidArgument("seqs start at 1");
  if (from < meta->first()) {
    return Status::FailedPrecondition("events of '" + std::string(device) + "' up to " +
                                      std::to_string(meta->first() - 1) +
                                      " were deleted by retention (the snapshot at " +
                                      std::to_string(meta->snapshot()) +
                                      " stands for them); the first stored event is " +
                                      std::to_string(meta->first()));
  }
  if (from > meta->last() || limit == 0) return std::vector<wire::Record>();
  const uint64_t to = std::min<uint64_t>(meta->last(), from + limit - 1);
  return ReadAt(device, from, to, max_bytes, false, hold.get());
}

Result<std::unique_ptr<Cursor>> Journal::OpenCursor(std::string_view device,
                                                    uint64_t from) const {
  CAIRN_RETURN_IF_ERROR(ValidateDeviceId(device));
  if (from == 0) return Status::InvalidArgument("seqs start at 1");
  return std::make_unique<Cursor>(this, std::string(device), from);
}

Cursor::Cursor(const Journal* journal, std::string device, uint64_t from)
    : journal_(journal), device_(std::move(device)), next_(from) {
  journal_->MoveReader(device_, 0, next_);
}

Cursor::~Cursor() { journal_->MoveReader(device_, next_, 0); }

void Journal::MoveReader(const std::string& device, uint64_t from, uint64_t to) const {
  if (from == to) return;
  std::lock_guard<std::mutex> l(readers_mu_);
  auto& seqs = readers_[device];
  if (from != 0) seqs.erase(seqs.find(from));
  if (to != 0) seqs.insert(to);
  if (seqs.empty()) readers_.erase(device);
}

uint64_t Journal::ReaderFloor(const std::string& device) const {
  std::lock_guard<std::mutex> l(readers_mu_);
  auto it = readers_.find(device);
  return it == readers_.end() ? UINT64_MAX : *it->second.begin();
}

Delivery Cursor::Next(size_t max_bytes) {
  Delivery d;
  SnapshotHold hold(journal_->store_->db());
  auto meta = journal_->MetaAt(device_, hold.get());
  if (!meta.ok() || !*meta) {
    d.status = meta.status();
    return d;
  }
  const wire::StreamMeta& m = **meta;
  // Events are delivered while they are stored, even below the snapshot; the
  // snapshot comes only for events that are gone (retention keeps first - 1 <=
  // snapshot).
  if (next_ < m.first() && next_ <= m.snapshot()) {
    auto snap = journal_->ReadSnapshotAt(device_, hold.get());
    if (!snap.ok()) {
      d.status = snap.status();
      return d;
    }
    d.restored_from = m.snapshot();
    d.truncated = m.first() - 1;
    snap->first_stored = m.first();
    d.snapshot = std::move(*snap);
    journal_->MoveReader(device_, next_, m.snapshot() + 1);
    next_ = m.snapshot() + 1;
    return d;
  }
  if (next_ > m.last()) return d;
  auto records = journal_->ReadAt(device_, next_, m.last(), max_bytes, true, hold.get());
  if (!records.ok()) {
    d.status = records.status();
    return d;
  }
  d.records = std::move(*records);
  if (!d.records.empty()) {
    journal_->MoveReader(device_, next_, d.records.back().seq() + 1);
    next_ = d.records.back().seq() + 1;
  }
  return d;
}

}  // namespace cairn::journal
