// mesh_bench: time from start to a full mesh of N local nodes given one seed each,
// and the connection attempts it took. All nodes run in this one process on one
// libuv loop (one thread), each with its own TLS Endpoint on 127.0.0.1; node i is
// seeded with node i-1, node 0 with nothing. Certificates and TLS contexts are made
// before the clock starts. Not a ctest: run it by hand.
//
//   mesh_bench [N...] [--runs R]      (default: 5 20, 5 runs each)
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/check.h"
#include "discovery/discovery_uv.h"
#include "testutil/pki.h"

namespace cairn::discovery {
namespace {

struct RunResult {
  double ms = 0;
  uint64_t attempts = 0;
};

DiscoveryConfig BenchConfig(uint64_t seed) {
  DiscoveryConfig c;
  c.listen_host = "127.0.0.1";
  c.listen_port = 0;
  c.rng_seed = seed;  // production intervals otherwise (ping 10 s, backoff 1 s..5 min)
  c.log = [](const std::string&) {};
  return c;
}

bool FullMesh(const std::vector<std::unique_ptr<Discovery>>& nodes) {
  for (const auto& d : nodes) {
    if (d->ActivePeers().size() != nodes.size() - 1) return false;
  }
  return true;
}

RunResult RunOnce(int n, const testutil::TestPki& pki, uint64_t seed) {
  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  std::vector<std::shared_ptr<const tls::Context>> contexts;
  for (int i = 0; i < n; ++i) {
    testutil::Issued id = pki.Issue("node" + std::to_string(i));
    auto ctx = tls::Context::FromPem({pki.ca_cert_pem(), id.cert_pem, id.key_pem});
    CHECK(ctx.ok()) << ctx.status().ToString();
    contexts.push_back(*ctx);
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Discovery>> nodes;
  std::string previous;
  for (int i = 0; i < n; ++i) {
    DiscoveryConfig c = BenchConfig(seed + i);
    if (!previous.empty()) c.seeds = {previous};
    nodes.push_back(
        std::make_unique<Discovery>(&loop, contexts[i], c, nullptr, SystemClock()));
    Result<int> port = nodes.back()->Start();
    CHECK(port.ok()) << port.status().ToString();
    previous = nodes.back()->advertise();
  }
  bool timed_out = false;
  uv_timer_t watchdog;
  uv_timer_init(&loop, &watchdog);
  watchdog.data = &timed_out;
  uv_timer_start(
      &watchdog, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 60'000, 0);
  while (!FullMesh(nodes) && !timed_out) uv_run(&loop, UV_RUN_ONCE);
  RunResult r;
  r.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
          .count();
  CHECK(!timed_out) << "no full mesh of " << n << " within 60 s";
  for (const auto& d : nodes) r.attempts += d->connect_attempts();
  uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
  int pending = n;
  for (auto& d : nodes) d->Stop([&pending] { --pending; });
  while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
  nodes.clear();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  return r;
}

}  // namespace
}  // namespace cairn::discovery

int main(int argc, char** argv) {
  std::vector<int> sizes;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else {
      sizes.push_back(std::atoi(a.c_str()));
    }
  }
  if (sizes.empty()) sizes = {5, 20};
  cairn::testutil::TestPki pki;
  std::printf("nodes  run  ms_to_full_mesh  connect_attempts  (one process, one loop)\n");
  for (int n : sizes) {
    std::vector<double> ms;
    for (int run = 0; run < runs; ++run) {
      cairn::discovery::RunResult r = cairn::discovery::RunOnce(n, pki, 1000 * run + 1);
      ms.push_back(r.ms);
      std::printf("%5d  %3d  %15.1f  %16llu\n", n, run, r.ms,
                  static_cast<unsigned long long>(r.attempts));
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%5d  median %.1f ms (min %.1f, max %.1f)\n", n, ms[ms.size() / 2],
                ms.front(), ms.back());
  }
  return 0;
}
