// forge_source: writes into a stopped cairnd's journal, signed with its own
// device key, events that today's source refuses but a hostile device (a stolen
// key) or an older build could have signed. Replicas must store and serve them
// without crashing.
//
//   forge_source DATA_DIR CA CERT KEY
//
// Appends to the device named by CERT: kv.put s/before, a kv.put whose value
// nests 200,000 levels deep, and kv.put s/after. Prints the three seqs.
#include <cstdio>
#include <string>

#include "journal/journal.h"

namespace {

std::string Put(const std::string& key, const std::string& value) {
  return R"({"store":"s","key":")" + key + R"(","value":)" + value + "}";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cairn;
  if (argc != 5) {
    std::fprintf(stderr, "usage: forge_source DATA_DIR CA CERT KEY\n");
    return 2;
  }
  auto ca = journal::CertAuthority::FromFile(argv[2]);
  if (!ca.ok()) return std::fprintf(stderr, "%s\n", ca.status().message().c_str()), 1;
  auto signer = journal::DeviceSigner::FromFiles(argv[3], argv[4], **ca);
  if (!signer.ok())
    return std::fprintf(stderr, "%s\n", signer.status().message().c_str()), 1;
  const std::string device = (*signer)->device();
  journal::JournalOptions o;
  o.store.path = std::string(argv[1]) + "/journal";
  o.ca = *ca;
  o.sources = {*signer};
  o.refuse_bad_kv = false;
  auto j = journal::Journal::Open(std::move(o));
  if (!j.ok()) return std::fprintf(stderr, "%s\n", j.status().message().c_str()), 1;
  const size_t depth = 200'000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  for (const auto& payload : {Put("before", "1"), Put("deep", deep), Put("after", "2")}) {
    auto r = (*j)->Append(device, {{"kv.put", payload}});
    if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().message().c_str()), 1;
    std::printf("%llu\n", static_cast<unsigned long long>(r->first));
  }
  return 0;
}
