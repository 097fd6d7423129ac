// cairn_peer_bench: the Cairn side of tests/bench/peers, a client of a running
// cairnd's control socket (DATA/cairn.sock), as the `cairn` CLI is.
//
//   append  --data D --device DEV --events N --size S [--batch 1000] [--window 8]
//           as fast as acknowledged: batches of events per request, `window`
//           requests in flight (what `cairn append --stdin` does)
//   publish --data D --device DEV --events N --size S --rate R
//           one event per request at a steady rate, each carrying its send time
//   follow  --data D --device DEV --from F --events N [--timeout-s 120]
//           a live tail; prints {"ready":true} once caught up, then the latencies
//   wait    --data D --device DEV --last N [--timeout-s 900] [--interval-ms 10]
//           polls status until DEV's last reaches N; prints the monotonic time
//
// Every command prints one JSON line of results; errors end it with status 1.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "node/control_client.h"
#include "peer_common.h"

namespace cairn::bench {
namespace {

using node::ControlClient;

constexpr size_t kMaxBatchBytes = 1u << 20;

std::unique_ptr<ControlClient> Connect(const std::string& data) {
  auto c = ControlClient::Connect(data);
  if (!c.ok()) Die(c.status().message());
  return std::move(*c);
}

wire::ControlRequest AppendRequest(const std::string& device, const std::string& payload,
                                   size_t events) {
  wire::ControlRequest req;
  auto* a = req.mutable_append();
  a->set_device(device);
  for (size_t i = 0; i < events; ++i) {
    auto* e = a->add_events();
    e->set_type("bench");
    e->set_payload(payload);
  }
  return req;
}

// Events acknowledged by one append reply; ends the run on a refusal.
uint64_t Acked(ControlClient& c) {
  auto r = c.Receive();
  if (!r.ok()) Die(r.status().message());
  if (r->has_error()) Die("append refused: " + r->error().message());
  return r->appended().last() - r->appended().first() + 1;
}

int Append(const Flags& f) {
  const std::string data = f.Str("data", ""), device = f.Str("device", "");
  const uint64_t n = f.Num("events", 0), size = f.Num("size", 100);
  const uint64_t window = std::max<uint64_t>(1, f.Num("window", 8));
  const uint64_t batch = std::clamp<uint64_t>(
      f.Num("batch", 1000), 1, std::max<uint64_t>(1, kMaxBatchBytes / size));
  f.CheckAllUsed();
  auto c = Connect(data);
  const std::string payload = Payload(size, 0);
  const wire::ControlRequest full = AppendRequest(device, payload, batch);
  const int64_t start = MonoMicros();
  uint64_t sent = 0, acked = 0, outstanding = 0;
  while (acked < n) {
    while (outstanding < window && sent < n) {
      const uint64_t k = std::min(batch, n - sent);
      auto id = c->Send(k == batch ? full : AppendRequest(device, payload, k));
      if (!id.ok()) Die(id.status().message());
      sent += k;
      ++outstanding;
    }
    acked += Acked(*c);
    --outstanding;
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  PrintLine(
      "{\"events\":" + std::to_string(n) + ",\"bytes\":" + std::to_string(n * size) +
      ",\"seconds\":" + std::to_string(seconds) + ",\"batch\":" + std::to_string(batch) +
      ",\"window\":" + std::to_string(window) + "}");
  return 0;
}

int Publish(const Flags& f) {
  const std::string data = f.Str("data", ""), device = f.Str("device", "");
  const uint64_t n = f.Num("events", 0), size = f.Num("size", 100);
  const Pacer pacer(f.Num("rate", 1000));
  f.CheckAllUsed();
  auto c = Connect(data);
  const int64_t start = MonoMicros();
  for (uint64_t i = 0; i < n; ++i) {
    pacer.Wait(i);
    auto r = c->Call(AppendRequest(device, Payload(size, WallMicros()), 1));
    if (!r.ok()) Die(r.status().message());
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  PrintLine("{\"events\":" + std::to_string(n) +
            ",\"seconds\":" + std::to_string(seconds) + "}");
  return 0;
}

// Waits up to `deadline` (monotonic µs) for the next reply; false on time-out.
bool WaitReply(ControlClient& c, int64_t deadline) {
  if (c.HasBufferedReply()) return true;
  const int64_t left_ms = (deadline - MonoMicros()) / 1000;
  if (left_ms <= 0) return false;
  pollfd p{c.fd(), POLLIN, 0};
  return poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000))) != 0 ||
         WaitReply(c, deadline);
}

int Follow(const Flags& f) {
  const std::string data = f.Str("data", ""), device = f.Str("device", "");
  const uint64_t from = f.Num("from", 1), n = f.Num("events", 0);
  const int64_t deadline =
      MonoMicros() + static_cast<int64_t>(f.Num("timeout-s", 120)) * 1000000;
  f.CheckAllUsed();
  auto c = Connect(data);
  wire::ControlRequest req;
  req.mutable_tail()->set_device(device);
  req.mutable_tail()->set_from(from);
  req.mutable_tail()->set_follow(true);
  if (!c->Send(req).ok()) Die("cannot send the tail request");
  Latencies lat;
  bool ready = false;
  while (lat.size() < n) {
    if (!WaitReply(*c, deadline))
      Die("follow timed out after " + std::to_string(lat.size()));
    auto r = c->Receive();
    if (!r.ok()) Die(r.status().message());
    if (r->has_error()) Die("tail refused: " + r->error().message());
    const int64_t now = WallMicros();
    for (const auto& rec : r->tail().records()) {
      const int64_t sent = SentMicros(rec.payload());
      if (sent >= 0) lat.Add(now - sent);
    }
    if (r->tail().caught_up() && !ready) {
      ready = true;
      PrintLine("{\"ready\":true}");
    }
  }
  PrintLine(lat.Json());
  return 0;
}

// DEV's last at the node, or 0 when the node does not answer (yet) or does not
// know DEV; connects (again) when needed.
uint64_t LastAt(std::unique_ptr<ControlClient>& c, const std::string& data,
                const std::string& device) {
  if (!c) {
    auto connected = ControlClient::Connect(data);
    if (!connected.ok()) return 0;
    c = std::move(*connected);
  }
  wire::ControlRequest req;
  req.mutable_status();
  auto r = c->Call(req);
  if (!r.ok()) {
    c.reset();
    return 0;
  }
  for (const auto& d : r->status().devices()) {
    if (d.device() == device) return d.last();
  }
  return 0;
}

int Wait(const Flags& f) {
  const std::string data = f.Str("data", ""), device = f.Str("device", "");
  const uint64_t last = f.Num("last", 1);
  const uint64_t interval_us = f.Num("interval-ms", 10) * 1000;
  const int64_t deadline =
      MonoMicros() + static_cast<int64_t>(f.Num("timeout-s", 900)) * 1000000;
  f.CheckAllUsed();
  std::unique_ptr<ControlClient> c;
  while (MonoMicros() < deadline) {
    const uint64_t now_last = LastAt(c, data, device);
    if (now_last >= last) {
      PrintLine("{\"done_mono_us\":" + std::to_string(MonoMicros()) +
                ",\"last\":" + std::to_string(now_last) + "}");
      return 0;
    }
    usleep(static_cast<useconds_t>(interval_us));
  }
  Die("wait: " + device + " did not reach " + std::to_string(last) + " in time");
}

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) {
  using namespace cairn::bench;
  return RunCommand(
      argc, argv, "cairn_peer_bench",
      {{"append", Append}, {"publish", Publish}, {"follow", Follow}, {"wait", Wait}});
}
