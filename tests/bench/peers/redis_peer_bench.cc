// redis_peer_bench: the Redis Streams side of tests/bench/peers, on hiredis. One
// stream, key "bench", one field "p" per entry.
//
//   append  --port P --events N --size S [--pipeline 1000]
//           pipelined XADD: a batch of `pipeline` commands is written while the
//           replies to the previous one are read (two batches in flight)
//   catchup --port P --events N [--count 10000]   XREAD COUNT pages from the start
//   publish --port P --events N --size S --rate R  one XADD at a time, at R/s
//   follow  --port P --events N [--timeout-s 120]
//           XREAD BLOCK from the start of an empty stream; prints {"ready":true},
//           then the latencies
//
// Every command prints one JSON line of results; errors end it with status 1.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <memory>
#include <string>

#include "peer_common.h"

namespace cairn::bench {
namespace {

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;
struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

Context Connect(uint64_t port) {
  Context c(redisConnect("127.0.0.1", static_cast<int>(port)));
  if (!c || c->err) Die("connect to redis on port " + std::to_string(port));
  return c;
}

// The next pipelined reply; ends the run on an error reply or a lost connection.
Reply Next(redisContext* c) {
  void* r = nullptr;
  if (redisGetReply(c, &r) != REDIS_OK || r == nullptr)
    Die(std::string("redis: ") + c->errstr);
  Reply reply(static_cast<redisReply*>(r));
  if (reply->type == REDIS_REPLY_ERROR) Die(std::string("redis: ") + reply->str);
  return reply;
}

void AppendXadd(redisContext* c, const std::string& payload) {
  if (redisAppendCommand(c, "XADD bench * p %b", payload.data(), payload.size()) !=
      REDIS_OK) {
    Die("redis: cannot queue XADD");
  }
}

int Append(const Flags& f) {
  const uint64_t port = f.Num("port", 0), n = f.Num("events", 0),
                 size = f.Num("size", 100);
  const uint64_t pipeline = std::max<uint64_t>(1, f.Num("pipeline", 1000));
  f.CheckAllUsed();
  Context c = Connect(port);
  const std::string payload = Payload(size, 0);
  const int64_t start = MonoMicros();
  uint64_t queued = 0, acked = 0;
  auto queue_batch = [&] {
    for (const uint64_t end = std::min(n, queued + pipeline); queued < end; ++queued) {
      AppendXadd(c.get(), payload);
    }
  };
  queue_batch();
  while (acked < n) {
    const uint64_t previous = queued;
    queue_batch();  // the next batch goes out with the first read below
    for (; acked < previous; ++acked) Next(c.get());
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  PrintLine("{\"events\":" + std::to_string(n) + ",\"bytes\":" +
            std::to_string(n * size) + ",\"seconds\":" + std::to_string(seconds) +
            ",\"pipeline\":" + std::to_string(pipeline) + "}");
  return 0;
}

// Entries in one XREAD reply for the one stream, and the id of the last.
uint64_t Entries(const redisReply* r, std::string* last_id) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) return 0;  // nil: nothing new
  const redisReply* entries = r->element[0]->element[1];
  if (entries->elements > 0)
    last_id->assign(entries->element[entries->elements - 1]->element[0]->str);
  return entries->elements;
}

int Catchup(const Flags& f) {
  const uint64_t port = f.Num("port", 0), n = f.Num("events", 0);
  const uint64_t count = f.Num("count", 10000);
  f.CheckAllUsed();
  Context c = Connect(port);
  const int64_t start = MonoMicros();
  std::string last_id = "0-0";
  uint64_t got = 0;
  while (got < n) {
    redisAppendCommand(c.get(), "XREAD COUNT %llu STREAMS bench %s",
                       static_cast<unsigned long long>(count), last_id.c_str());
    const uint64_t k = Entries(Next(c.get()).get(), &last_id);
    if (k == 0) Die("catch-up: the stream ended at " + std::to_string(got));
    got += k;
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  PrintLine("{\"events\":" + std::to_string(got) +
            ",\"seconds\":" + std::to_string(seconds) + "}");
  return 0;
}

int Publish(const Flags& f) {
  const uint64_t port = f.Num("port", 0), n = f.Num("events", 0),
                 size = f.Num("size", 100);
  const Pacer pacer(f.Num("rate", 1000));
  f.CheckAllUsed();
  Context c = Connect(port);
  const int64_t start = MonoMicros();
  for (uint64_t i = 0; i < n; ++i) {
    pacer.Wait(i);
    AppendXadd(c.get(), Payload(size, WallMicros()));
    Next(c.get());
  }
  const double seconds = static_cast<double>(MonoMicros() - start) / 1e6;
  PrintLine("{\"events\":" + std::to_string(n) +
            ",\"seconds\":" + std::to_string(seconds) + "}");
  return 0;
}

void Measure(const redisReply* r, Latencies* lat, std::string* last_id) {
  const int64_t now = WallMicros();
  if (Entries(r, last_id) == 0) return;
  const redisReply* entries = r->element[0]->element[1];
  for (size_t i = 0; i < entries->elements; ++i) {
    const redisReply* fields = entries->element[i]->element[1];
    if (fields->elements < 2) continue;
    const int64_t sent = SentMicros({fields->element[1]->str, fields->element[1]->len});
    if (sent >= 0) lat->Add(now - sent);
  }
}

int Follow(const Flags& f) {
  const uint64_t port = f.Num("port", 0), n = f.Num("events", 0);
  const int64_t deadline =
      MonoMicros() + static_cast<int64_t>(f.Num("timeout-s", 120)) * 1000000;
  f.CheckAllUsed();
  Context c = Connect(port);
  PrintLine("{\"ready\":true}");
  std::string last_id = "0-0";
  Latencies lat;
  while (lat.size() < n) {
    if (MonoMicros() > deadline)
      Die("follow timed out after " + std::to_string(lat.size()));
    redisAppendCommand(c.get(), "XREAD BLOCK 1000 STREAMS bench %s", last_id.c_str());
    Measure(Next(c.get()).get(), &lat, &last_id);
  }
  PrintLine(lat.Json());
  return 0;
}

}  // namespace
}  // namespace cairn::bench

int main(int argc, char** argv) {
  using namespace cairn::bench;
  return RunCommand(argc, argv, "redis_peer_bench",
                    {{"append", Append},
                     {"catchup", Catchup},
                     {"publish", Publish},
                     {"follow", Follow}});
}
