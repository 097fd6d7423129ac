// nats_peer_bench: the NATS JetStream side of tests/bench/peers, on the official
// NATS C client (libnats). One file-backed stream "bench" with the subject "bench".
//
//   append  --url U --events N --size S [--max-pending 4096]
//           js_PublishAsync with at most max-pending unacknowledged, then waits for
//           every ack (js_PublishAsyncComplete)
//   catchup --url U --events N       a new ordered consumer reads the stream to N
//   publish --url U --events N --size S --rate R   js_Publish (waits for the ack)
//   follow  --url U --events N [--timeout-s 120]
//           an ordered consumer from new messages; prints {"ready":true}, then the
//           latencies
//
// Every command prints one JSON line of results; errors end it with status 1.
#include <nats/nats.h>

#include <atomic>
#include <string>

#include "peer_common.h"

namespace cairn::bench {
namespace {

constexpr const char* kSubject = "bench";

void Check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) {
    Die(what + ": " + natsStatus_GetText(s) + " " + nats_GetLastError(nullptr));
  }
}

std::atomic<uint64_t> publish_errors{0};

void OnPublishError(jsCtx*, jsPubAckErr* e, void*) {
  if (publish_errors++ == 0) {
    std::fprintf(stderr, "publish failed: %s\n", e->ErrText ? e->ErrText : "?");
  }
}

struct Nats {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~Nats() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
};

// Connects and makes sure the stream exists (file storage, no limits).
void Open(Nats& n, const std::string& url, int64_t max_pending) {
  Check(natsConnection_ConnectTo(&n.nc, url.c_str()), "connect to " + url);
  jsOptions o;
  jsOptions_Init(&o);
  o.PublishAsync.MaxPending = max_pending;
  o.PublishAsync.ErrHandler = OnPublishError;
  o.PublishAsync.StallWait = 60000;
  o.Wait = 30000;
  Check(natsConnection_JetStream(&n.js, n.nc, &o), "JetStream context");
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = kSubject;
  const char* subjects[] = {kSubject};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, n.js, &sc, nullptr, &jerr);
  if (s != NATS_OK)
    Check(js_GetStreamInfo(&si, n.js, kSubject, nullptr, &jerr), "stream");
  jsStreamInfo_Destroy(si);
}

// An ordered consumer (push, flow control, no acks) reading from the start or
// from new messages only.
natsSubscription* Ordered(Nats& n, jsDeliverPolicy policy) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Ordered = true;
  so.Config.DeliverPolicy = policy;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  Check(js_SubscribeSync(&sub, n.js, kSubject, nullptr, &so, &jerr), "subscribe");
  Check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits");
  return sub;
}

int Append(const Flags& f) {
  const std::string url = f.Str("url", "");
  const uint64_t n = f.Num("events", 0), size = f.Num("size", 100);
  const int64_t max_pending = static_cast<int64_t>(f.Num("max-pending", 4096));
  f.CheckAllUsed();
  Nats nats;
  Open(nats, url, max_pending);
  const std::string payload = Payload(size, 0);
  const int64_t start = MonoMicros();
  for (uint64_t i = 0; i < n; ++i) {
    Check(js_PublishAsync(nats.js, kSubject, payload.data(), static_cast<int>(size),
                          nullptr),
          "publish");
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 120000;
  Check(js_PublishAsyncComplete(nats.js, &po), "waiting for acks");
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  if (publish_errors > 0)
    Die(std::to_string(publish_errors.load()) + " publishes failed");
  PrintLine("{\"events\":" + std::to_string(n) + ",\"bytes\":" +
            std::to_string(n * size) + ",\"seconds\":" + std::to_string(seconds) +
            ",\"max_pending\":" + std::to_string(max_pending) + "}");
  return 0;
}

int Catchup(const Flags& f) {
  const std::string url = f.Str("url", "");
  const uint64_t n = f.Num("events", 0);
  f.CheckAllUsed();
  Nats nats;
  Open(nats, url, 4096);
  const int64_t start = MonoMicros();
  natsSubscription* sub = Ordered(nats, js_DeliverAll);
  uint64_t got = 0;
  for (; got < n; ++got) {
    natsMsg* m = nullptr;
    Check(natsSubscription_NextMsg(&m, sub, 30000), "catch-up at " + std::to_string(got));
    natsMsg_Destroy(m);
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  natsSubscription_Destroy(sub);
  PrintLine("{\"events\":" + std::to_string(got) +
            ",\"seconds\":" + std::to_string(seconds) + "}");
  return 0;
}

int Publish(const Flags& f) {
  const std::string url = f.Str("url", "");
  const uint64_t n = f.Num("events", 0), size = f.Num("size", 100);
  const Pacer pacer(f.Num("rate", 1000));
  f.CheckAllUsed();
  Nats nats;
  Open(nats, url, 4096);
  const int64_t start = MonoMicros();
  for (uint64_t i = 0; i < n; ++i) {
    pacer.Wait(i);
    const std::string p = Payload(size, WallMicros());
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    Check(js_Publish(&ack, nats.js, kSubject, p.data(), static_cast<int>(p.size()),
                     nullptr, &jerr),
          "publish");
    jsPubAck_Destroy(ack);
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  PrintLine("{\"events\":" + std::to_string(n) +
            ",\"seconds\":" + std::to_string(seconds) + "}");
  return 0;
}

int Follow(const Flags& f) {
  const std::string url = f.Str("url", "");
  const uint64_t n = f.Num("events", 0);
  const int64_t deadline =
      MonoMicros() + static_cast<int64_t>(f.Num("timeout-s", 120)) * 1000000;
  f.CheckAllUsed();
  Nats nats;
  Open(nats, url, 4096);
  natsSubscription* sub = Ordered(nats, js_DeliverNew);
  PrintLine("{\"ready\":true}");
  Latencies lat;
  while (lat.size() < n) {
    if (MonoMicros() > deadline)
      Die("follow timed out after " + std::to_string(lat.size()));
    natsMsg* m = nullptr;
    natsStatus s = natsSubscription_NextMsg(&m, sub, 1000);
    if (s == NATS_TIMEOUT) continue;
    Check(s, "follow");
    const int64_t now = WallMicros();
    const int64_t sent =
        SentMicros({natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m))});
    if (sent >= 0) lat.Add(now - sent);
    natsMsg_Destroy(m);
  }
  natsSubscription_Destroy(sub);
  PrintLine(lat.Json());
  return 0;
}

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) {
  using namespace cairn::bench;
  const int rc = RunCommand(argc, argv, "nats_peer_bench",
                            {{"append", Append},
                             {"catchup", Catchup},
                             {"publish", Publish},
                             {"follow", Follow}});
  nats_Close();
  return rc;
}
