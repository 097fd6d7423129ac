// cairn tail: a device (or every device) through the local node's control socket,
// events in order (a snapshot first, after a "truncated" line, when events from
// --from were deleted by retention: exit 3 there unless --allow-gaps);
// with --follow, live events until interrupted, and with --all --follow also the
// devices the node comes to store later. With --peer the same from any node over
// TLS (tail_peer_uv.cc); both print through TailPrinter.
#include <unistd.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "node/cli_internal.h"
#include "node/control_client.h"
#include "node/tail_print.h"

namespace cairn::node::cli {
namespace {

class LocalTail {
 public:
  LocalTail(const Options& o, ControlClient& c)
      : o_(o), c_(c), printer_(o.json, isatty(2) != 0) {}
  int Run();

 private:
  bool Busy() const { return !streams_.empty() || status_ != 0 || watch_ != 0; }
  Status Open(const std::string& device, uint64_t head);
  int OnStatus(const wire::ControlReply& r);
  int OnWatch(const wire::ControlReply& r);
  int OnTail(const wire::ControlReply& r);

  const Options& o_;
  ControlClient& c_;
  TailPrinter printer_;
  std::map<uint64_t, std::string> streams_;  // tail request id -> device
  std::map<std::string, uint64_t> next_;     // device -> the seq it prints next
  std::set<std::string> devices_;            // every device tailed so far
  uint64_t status_ = 0;                      // the status request, until answered
  uint64_t watch_ = 0;                       // --all --follow: new devices
};

int LocalTail::Run() {
  if (o_.all && o_.follow) {  // first, so no device appears unseen in between
    wire::ControlRequest watch;
    watch.mutable_watch();
    auto id = c_.Send(watch);
    if (!id.ok()) return Fail(id.status());
    watch_ = *id;
  }
  wire::ControlRequest status;
  status.mutable_status();
  auto id = c_.Send(status);
  if (!id.ok()) return Fail(id.status());
  status_ = *id;
  int rc = 0;
  while (Busy()) {
    auto r = c_.Receive();
    if (!r.ok()) return Fail(r.status());
    if (r->id() == status_ || r->id() == watch_) {  // failures end the tail
      int step = r->id() == status_ ? OnStatus(*r) : OnWatch(*r);
      if (step != 0) return step;
    } else if (int step = OnTail(*r); step == kExitGap) {
      return step;
    } else if (step != 0 && rc == 0) {
      rc = step;  // the others go on
    }
  }
  return rc;
}

Status LocalTail::Open(const std::string& device, uint64_t head) {
  if (!devices_.insert(device).second) return Status::Ok();
  wire::ControlRequest req;
  req.mutable_tail()->set_device(device);
  req.mutable_tail()->set_from(o_.from);
  req.mutable_tail()->set_follow(o_.follow);
  CAIRN_ASSIGN_OR_RETURN(uint64_t id, c_.Send(req));
  streams_[id] = device;
  next_[device] = o_.from;
  printer_.Begin(device, o_.from, head);
  return Status::Ok();
}

// Every device the node stores, with its head: what to tail now.
int LocalTail::OnStatus(const wire::ControlReply& r) {
  status_ = 0;
  if (r.has_error()) return Fail(StatusOf(r.error()));
  std::map<std::string, uint64_t> heads;
  for (const auto& d : r.status().devices()) heads[d.device()] = d.last();
  if (!o_.all) heads = {{o_.device, heads[o_.device]}};
  for (const auto& [device, head] : heads) {
    Status s = Open(device, head);
    if (!s.ok()) return Fail(s);
  }
  return 0;
}

int LocalTail::OnWatch(const wire::ControlReply& r) {
  if (r.has_error()) {
    watch_ = 0;
    return Fail("cannot watch for new devices: " + r.error().message());
  }
  Status s = Open(r.device_added().device(), 0);
  return s.ok() ? 0 : Fail(s);
}

int LocalTail::OnTail(const wire::ControlReply& r) {
  auto it = streams_.find(r.id());
  if (it == streams_.end()) return 0;
  const std::string device = it->second;
  int rc = 0;
  if (r.has_error()) {
    rc = Fail("tail " + device + ": " + r.error().message());
  } else if (r.tail().truncated() > 0) {
    const uint64_t from = next_[device];
    printer_.Truncated(device, from, r.tail().truncated(), r.tail().restored_from());
    if (!o_.allow_gaps) {
      std::fprintf(stderr,
                   "cairn: tail %s: events %llu..%llu were deleted by retention at the "
                   "node; stopped (--allow-gaps reads on from the snapshot)\n",
                   device.c_str(), static_cast<unsigned long long>(from),
                   static_cast<unsigned long long>(r.tail().truncated()));
      printer_.Progress(device, UINT64_MAX);
      return kExitGap;  // the whole tail stops, as it does with --peer
    }
  }
  if (r.tail().has_snapshot()) {
    const wire::Snapshot& snap = r.tail().snapshot();
    printer_.SnapshotChunk(device, snap.chunk());
    if (snap.index() + 1 >= snap.header().chunks()) {
      printer_.SnapshotEnd(device, snap.header().seq());
      next_[device] = snap.header().seq() + 1;
    }
  }
  if (r.tail().records_size() > 0) next_[device] = r.tail().records().rbegin()->seq() + 1;
  for (const auto& rec : r.tail().records()) printer_.Record(device, rec);
  uint64_t at = r.tail().records_size() > 0 ? r.tail().records().rbegin()->seq() : 0;
  if (r.tail().caught_up() || r.done()) at = UINT64_MAX;
  printer_.Progress(device, at);
  if (r.done()) streams_.erase(it);
  return rc;
}

}  // namespace

int Tail(const Options& o) {
  if (o.all == !o.device.empty()) return Fail("tail needs DEVICE or --all (not both)");
  if (o.from == 0) return Fail("--from starts at 1");
  if (!o.peer.empty()) return TailPeer(o);
  auto client = ControlClient::Connect(o.data_dir);
  if (!client.ok()) return Fail(client.status());
  return LocalTail(o, **client).Run();
}

}  // namespace cairn::node::cli
