// A journal writer that a test kills with SIGKILL at a random moment. It appends
// from several threads (so group commits are in flight) and prints "FIRST LAST"
// for every acknowledged append, flushed, so the parent knows exactly what was
// acknowledged before the kill.
//   crash_child DIR CA_PEM CERT_PEM KEY_PEM
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "journal/journal.h"

using namespace cairn;
using namespace cairn::journal;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: crash_child DIR CA CERT KEY\n");
    return 2;
  }
  auto ca = CertAuthority::FromFile(argv[2]);
  if (!ca.ok()) return 3;
  auto signer = DeviceSigner::FromFiles(argv[3], argv[4], **ca);
  if (!signer.ok()) return 4;
  JournalOptions o;
  o.store.path = argv[1];
  o.ca = *ca;
  o.sources.push_back(*signer);
  auto j = Journal::Open(std::move(o));
  if (!j.ok()) {
    std::fprintf(stderr, "%s\n", j.status().ToString().c_str());
    return 5;
  }
  std::mutex out_mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100000; ++i) {  // bounded; the parent kills us long before
        std::vector<NewEvent> events;
        for (int k = 0; k <= (i + t) % 8; ++k) {
          events.push_back({"crash", "t" + std::to_string(t) + "-" + std::to_string(i)});
        }
        auto r = (*j)->Append((*signer)->device(), std::move(events));
        if (!r.ok()) std::_Exit(6);
        std::lock_guard<std::mutex> l(out_mu);
        std::printf("%llu %llu\n", static_cast<unsigned long long>(r->first),
                    static_cast<unsigned long long>(r->last));
        std::fflush(stdout);
      }
    });
  }
  for (auto& t : threads) t.join();
  return 0;
}
