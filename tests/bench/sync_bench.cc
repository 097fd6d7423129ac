// Sync end to end over TLS on loopback, every node in this one process on one
// libuv loop (one thread runs both ends of every connection: a conservative
// set-up for throughput, and honest about it).
//
//   sync_bench [--events N] [--live M] [--rate R]
//
// 1. Catch-up: node a holds N events of 100-byte payloads; a new node b joins
//    and we time until b's last equals a's (records verified and committed).
// 2. Live: a line a - b - c (peer exchange off, so c follows a through b); an
//    appender thread appends M single events at R per second to a; latency is
//    the delivery time at b (one hop) and c (two hops) minus the event's append
//    time, taken from a journal subscription on each node.
// 3. The same live run while a fresh node d catches up the N events from a.
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "base/check.h"
#include "node_harness.h"

namespace cairn::sync::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct Latencies {
  std::mutex mu;
  std::vector<int64_t> us;
  void Record(const journal::Delivery& d) {
    const int64_t now = SystemClock()->NowMicros();
    std::lock_guard<std::mutex> l(mu);
    for (const auto& r : d.records) us.push_back(now - r.time_us());
  }
  size_t count() {
    std::lock_guard<std::mutex> l(mu);
    return us.size();
  }
  std::string Summary() {
    std::lock_guard<std::mutex> l(mu);
    if (us.empty()) return "no deliveries";
    std::sort(us.begin(), us.end());
    auto at = [&](double q) { return us[static_cast<size_t>(q * (us.size() - 1))]; };
    char buf[160];
    std::snprintf(buf, sizeof buf, "n=%zu p50=%.3f ms p99=%.3f ms max=%.3f ms", us.size(),
                  at(0.5) / 1e3, at(0.99) / 1e3, us.back() / 1e3);
    return buf;
  }
};

class Bench {
 public:
  Bench() {
    uv_loop_init(&loop_);
    ca_ = *journal::CertAuthority::FromPem(pki_.ca_cert_pem(), "bench CA");
  }
  ~Bench() {
    for (auto& [id, n] : nodes_) {
      if (n->sync) n->BeginStop();
    }
    RunUntil(
        [&] {
          for (auto& [id, n] : nodes_) {
            if (n->sync && !n->Stopped()) return false;
          }
          return true;
        },
        30.0);
    for (auto& [id, n] : nodes_) {
      if (n->sync) n->Release();
    }
    uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }

  HarnessNode& Start(const std::string& id, std::vector<std::string> seeds,
                     bool exchange) {
    auto& n = nodes_[id];
    n = std::make_unique<HarnessNode>();
    n->id = id;
    HarnessConfig c;
    c.peer_exchange = exchange;
    for (const auto& s : seeds)
      c.seeds.push_back("127.0.0.1:" + std::to_string(nodes_[s]->port));
    n->Start(&loop_, pki_, ca_, dir_.path(), c);
    return *n;
  }

  HarnessNode& nodes(const std::string& id) { return *nodes_.at(id); }

  uint64_t Last(const std::string& at, const std::string& device) {
    auto s = nodes_[at]->journal->Stream(device);
    return s.ok() ? s->last : 0;
  }

  // Runs the loop until done() or the deadline (seconds); returns done().
  bool RunUntil(const std::function<bool()>& done, double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    uv_timer_t tick;
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 5, 5);  // bounds each wait
    while (!done() && Clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return done();
  }

  void Fill(const std::string& id, uint64_t n) {
    for (uint64_t done = 0; done < n;) {
      const uint64_t batch = std::min<uint64_t>(1000, n - done);
      std::vector<journal::NewEvent> events(batch, {"bench", std::string(100, 'x')});
      CHECK(nodes_[id]->journal->Append(id, std::move(events)).ok());
      done += batch;
    }
  }

 private:
  uv_loop_t loop_;
  testutil::TestPki pki_;
  testutil::TempDir dir_;
  std::shared_ptr<const journal::CertAuthority> ca_;
  std::map<std::string, std::unique_ptr<HarnessNode>> nodes_;
};

void CatchUp(uint64_t events) {
  Bench b;
  b.Start("a", {}, true);
  b.Fill("a", events);
  const auto t0 = Clock::now();
  b.Start("b", {"a"}, true);
  const bool ok = b.RunUntil([&] { return b.Last("b", "a") == events; }, 600);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "catch-up: %s %llu events of 100 B in %.2f s: %.0f events/s, %.1f MB/s (payload)\n",
      ok ? "done" : "TIMED OUT", static_cast<unsigned long long>(b.Last("b", "a")), s,
      b.Last("b", "a") / s, b.Last("b", "a") * 100 / s / 1e6);
}

void Live(uint64_t count, int rate, uint64_t catchup_events) {
  Bench b;
  b.Start("a", {}, false);
  b.Start("b", {"a"}, false);
  b.Start("c", {"b"}, false);
  b.Fill("a", 1);
  CHECK(b.RunUntil([&] { return b.Last("c", "a") == 1; }, 30));
  if (catchup_events > 0) b.Fill("a", catchup_events);
  CHECK(b.RunUntil([&] { return b.Last("c", "a") == 1 + catchup_events; }, 600));
  const uint64_t base = b.Last("a", "a");
  Latencies one, two;
  auto sub_b = b.nodes("b").journal->Subscribe(
      "a", base + 1, [&](const journal::Delivery& d) { one.Record(d); });
  auto sub_c = b.nodes("c").journal->Subscribe(
      "a", base + 1, [&](const journal::Delivery& d) { two.Record(d); });
  if (catchup_events > 0) b.Start("d", {"a"}, false);
  std::atomic<bool> done{false};
  std::thread appender([&] {
    const auto start = Clock::now();
    for (uint64_t i = 0; i < count; ++i) {
      std::this_thread::sleep_until(start +
                                    std::chrono::microseconds(1'000'000 * i / rate));
      CHECK(b.nodes("a").journal->Append("a", {{"live", std::string(100, 'x')}}).ok());
    }
    done = true;
  });
  // Committed at C is not yet delivered to the subscription's callback (the
  // journal's delivery thread): wait for both counts too.
  b.RunUntil(
      [&] {
        return done && b.Last("c", "a") == base + count && one.count() == count &&
               two.count() == count;
      },
      count / rate + 60.0);
  appender.join();
  std::printf("live%s: %llu events at %d/s: one hop %s; two hops %s\n",
              catchup_events ? " while d catches up" : "",
              static_cast<unsigned long long>(count), rate, one.Summary().c_str(),
              two.Summary().c_str());
  sub_b->reset();
  sub_c->reset();
}

}  // namespace
}  // namespace cairn::sync::testing

int main(int argc, char** argv) {
  uint64_t events = 1'000'000, live = 10'000;
  int rate = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--events")) events = std::stoull(argv[i + 1]);
    if (!std::strcmp(argv[i], "--live")) live = std::stoull(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rate")) rate = std::stoi(argv[i + 1]);
  }
  cairn::sync::testing::CatchUp(events);
  cairn::sync::testing::Live(live, rate, 0);
  cairn::sync::testing::Live(live, rate, events);
  return 0;
}
