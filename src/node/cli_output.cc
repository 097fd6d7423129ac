// The JSON forms of events, snapshots and status printed by the CLI (issue 6).
#include <cstdio>

#include "base/json_limits.h"
#include "node/cli_internal.h"

namespace cairn::node::cli {

using nlohmann::json;

int Fail(const std::string& message) {
  std::fprintf(stderr, "cairn: %s\n", message.c_str());
  return 1;
}

int Fail(const Status& s) { return Fail(s.message()); }

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json PayloadJson(const std::string& bytes) {
  // Payloads come from devices and peers: one nested too deep for the recursive
  // parser and printer is shown as the string it is.
  if (!JsonDepthWithinLimit(bytes)) return json(bytes);
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) return j;
  return json(bytes);
}

json EventJson(const std::string& device, const wire::Record& r) {
  return json{{"device", device},
              {"seq", r.seq()},
              {"time_us", r.time_us()},
              {"type", r.type()},
              {"payload", PayloadJson(r.payload())}};
}

json StatusJson(const wire::ControlStatusReply& s) {
  json peers = json::array();
  for (const auto& p : s.peers()) {
    peers.push_back({{"id", p.id()},
                     {"address", p.address()},
                     {"state", p.state()},
                     {"reason", p.reason()},
                     {"since_ms", p.since_ms()},
                     {"rtt_ms", p.rtt_us() > 0 ? json(p.rtt_us() / 1000.0) : json()}});
  }
  json devices = json::array();
  for (const auto& d : s.devices()) {
    devices.push_back(
        {{"device", d.device()},
         {"first", d.first()},
         {"last", d.last()},
         {"snapshot", d.snapshot()},
         {"source", d.source()},
         {"via", d.via().empty() ? json(nullptr) : json(d.via())},
         {"behind", d.behind()},
         {"guard", d.guard().empty() ? json(nullptr) : json(d.guard())},
         {"retention", d.retention().empty() ? json(nullptr) : json(d.retention())},
         {"stalled", d.stalled().empty() ? json(nullptr) : json(d.stalled())},
         {"forked_at",
          json(std::vector<uint64_t>(d.forked_at().begin(), d.forked_at().end()))}});
  }
  return json{{"node", s.node()},
              {"peers", peers},
              {"devices", devices},
              {"forks", s.forks()},
              {"follow", std::vector<std::string>(s.interest().follow().begin(),
                                                  s.interest().follow().end())},
              {"follow_origin", s.interest().origin()},
              {"crl", s.crl().empty() ? json(nullptr) : json(s.crl())},
              {"revoked_disconnects", s.revoked_disconnects()},
              {"traffic",
               {{"messages_sent", s.messages_sent()},
                {"bytes_sent", s.bytes_sent()},
                {"messages_received", s.messages_received()},
                {"bytes_received", s.bytes_received()}}},
              {"catalogue",
               {{"summaries_sent", s.catalogue().summaries_sent()},
                {"summaries_received", s.catalogue().summaries_received()},
                {"buckets_agreed", s.catalogue().buckets_agreed()},
                {"buckets_asked", s.catalogue().buckets_asked()},
                {"entries_sent", s.catalogue().entries_sent()},
                {"entries_received", s.catalogue().entries_received()},
                {"bytes_sent", s.catalogue().bytes_sent()},
                {"bytes_received", s.catalogue().bytes_received()}}}};
}

}  // namespace cairn::node::cli
