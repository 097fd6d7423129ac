// cairn tail: a device (or every device) through the local node's control socket,
// snapshot first when asked for events it has compacted, then events in order;
// with --follow, live events until interrupted.
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
};

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

Result<std::vector<std::string>> AllDevices(ControlClient& c) {
  wire::ControlRequest req;
  req.mutable_status();
  CAIRN_ASSIGN_OR_RETURN(wire::ControlReply r, c.Call(req));
  std::vector<std::string> out;
  for (const auto& d : r.status().devices()) out.push_back(d.device());
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
  std::vector<std::string> devices = {o.device};
  if (o.all) {
    auto all = AllDevices(**client);
    if (!all.ok()) return Fail(all.status());
    devices = *all;
  }
  std::map<uint64_t, Stream> streams;
  for (const auto& d : devices) {
    wire::ControlRequest req;
    req.mutable_tail()->set_device(d);
    req.mutable_tail()->set_from(o.from);
    req.mutable_tail()->set_follow(o.follow);
    auto id = (*client)->Send(req);
    if (!id.ok()) return Fail(id.status());
    streams[*id].device = d;
  }
  return Drain(o, **client, streams);
}

}  // namespace cairn::node::cli
