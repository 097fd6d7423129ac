// cairn tail: a device (or every device) through the local node's control socket,
// snapshot first when asked for events it has compacted, then events in order;
// with --follow, live events until interrupted.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "node/cli_internal.h"
#include "node/control_client.h"

namespace cairn::node::cli {
namespace {

using nlohmann::json;

struct Stream {
  std::string device;
  json kv = json::object();  // snapshot entries gathered so far
  uint64_t target = 0;       // the head when the tail started (progress bar)
};

constexpr uint64_t kProgressAbove = 10'000;  // events; smaller ranges show no bar

// A progress bar on a terminal's stderr while a large stored range streams.
void Progress(Stream& s, uint64_t seq) {
  if (s.target == 0) return;
  if (seq >= s.target) {
    std::fprintf(stderr, "\r\033[K");
    s.target = 0;
    return;
  }
  int filled = static_cast<int>(40 * seq / s.target);
  std::fprintf(stderr, "\r%s [%-40s] %llu/%llu", s.device.c_str(),
               std::string(static_cast<size_t>(filled), '#').c_str(),
               static_cast<unsigned long long>(seq),
               static_cast<unsigned long long>(s.target));
}

void PrintSnapshot(const Options& o, Stream& s, const wire::Snapshot& snap) {
  for (const auto& e : snap.chunk().entries()) {
    s.kv[e.store()][e.key()] = PayloadJson(e.entry().value());
  }
  if (snap.index() + 1 < snap.header().chunks()) return;
  uint64_t seq = snap.header().seq();
  if (o.json) {
    std::printf("%s\n",
                Dump({{"device", s.device}, {"snapshot", seq}, {"kv", s.kv}}).c_str());
  } else {
    std::printf("%s snapshot %llu %s\n", s.device.c_str(),
                static_cast<unsigned long long>(seq), Dump(s.kv).c_str());
  }
  s.kv = json::object();
}

void PrintRecord(const Options& o, const std::string& device, const wire::Record& r) {
  if (o.json) {
    std::printf("%s\n", Dump(EventJson(device, r)).c_str());
  } else {
    std::printf("%s %llu %s %s\n", device.c_str(),
                static_cast<unsigned long long>(r.seq()), r.type().c_str(),
                Dump(PayloadJson(r.payload())).c_str());
  }
}

// Every device the node stores, with its head seq.
Result<std::map<std::string, uint64_t>> Heads(ControlClient& c) {
  wire::ControlRequest req;
  req.mutable_status();
  CAIRN_ASSIGN_OR_RETURN(wire::ControlReply r, c.Call(req));
  std::map<std::string, uint64_t> out;
  for (const auto& d : r.status().devices()) out[d.device()] = d.last();
  return out;
}

// Prints replies until every tail is done; non-zero on an error.
int Drain(const Options& o, ControlClient& c, std::map<uint64_t, Stream>& streams) {
  int rc = 0;
  while (!streams.empty()) {
    auto r = c.Receive();
    if (!r.ok()) return Fail(r.status());
    auto it = streams.find(r->id());
    if (it == streams.end()) continue;
    if (r->has_error()) {
      rc = Fail("tail " + it->second.device + ": " + r->error().message());
    } else if (r->tail().has_snapshot()) {
      PrintSnapshot(o, it->second, r->tail().snapshot());
    }
    for (const auto& rec : r->tail().records()) PrintRecord(o, it->second.device, rec);
    std::fflush(stdout);
    if (r->tail().records_size() > 0)
      Progress(it->second, r->tail().records().rbegin()->seq());
    if (r->tail().caught_up() || r->done()) Progress(it->second, UINT64_MAX);
    if (r->done()) streams.erase(it);
  }
  return rc;
}

}  // namespace

int Tail(const Options& o) {
  if (o.all == !o.device.empty()) return Fail("tail needs DEVICE or --all (not both)");
  if (o.from == 0) return Fail("--from starts at 1");
  auto client = ControlClient::Connect(o.data_dir);
  if (!client.ok()) return Fail(client.status());
  auto heads = Heads(**client);
  if (!heads.ok()) return Fail(heads.status());
  std::map<std::string, uint64_t> devices = {{o.device, (*heads)[o.device]}};
  if (o.all) devices = *heads;
  bool bar = isatty(2) != 0;
  std::map<uint64_t, Stream> streams;
  for (const auto& [d, last] : devices) {
    wire::ControlRequest req;
    req.mutable_tail()->set_device(d);
    req.mutable_tail()->set_from(o.from);
    req.mutable_tail()->set_follow(o.follow);
    auto id = (*client)->Send(req);
    if (!id.ok()) return Fail(id.status());
    streams[*id].device = d;
    if (bar && last > o.from + kProgressAbove) streams[*id].target = last;
  }
  return Drain(o, **client, streams);
}

}  // namespace cairn::node::cli
