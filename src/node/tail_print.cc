#include "node/tail_print.h"

#include <cstdio>

#include "node/cli_internal.h"

namespace cairn::node::cli {

using nlohmann::json;

void TailPrinter::Begin(const std::string& device, uint64_t from, uint64_t head) {
  Stream& s = streams_[device];
  if (bar_ && head > from + kProgressAbove) s.target = head;
}

void TailPrinter::SnapshotChunk(const std::string& device,
                                const wire::SnapshotChunk& chunk) {
  Stream& s = streams_[device];
  for (const auto& e : chunk.entries()) {
    s.kv[e.store()][e.key()] = PayloadJson(e.entry().value());
  }
}

void TailPrinter::SnapshotEnd(const std::string& device, uint64_t seq) {
  Stream& s = streams_[device];
  if (json_) {
    std::printf("%s\n",
                Dump({{"device", device}, {"snapshot", seq}, {"kv", s.kv}}).c_str());
  } else {
    std::printf("%s snapshot %llu %s\n", device.c_str(),
                static_cast<unsigned long long>(seq), Dump(s.kv).c_str());
  }
  s.kv = json::object();
}

void TailPrinter::Record(const std::string& device, const wire::Record& r) {
  if (json_) {
    std::printf("%s\n", Dump(EventJson(device, r)).c_str());
  } else {
    std::printf("%s %llu %s %s\n", device.c_str(),
                static_cast<unsigned long long>(r.seq()), r.type().c_str(),
                Dump(PayloadJson(r.payload())).c_str());
  }
}

void TailPrinter::Truncated(const std::string& device, uint64_t from, uint64_t to,
                            uint64_t snapshot) {
  if (json_) {
    std::printf("%s\n", Dump({{"device", device},
                              {"truncated", {{"from", from}, {"to", to}}},
                              {"snapshot", snapshot}})
                            .c_str());
  } else {
    std::printf(
        "%s truncated %llu..%llu by retention; the snapshot at %llu stands for "
        "%llu..%llu\n",
        device.c_str(), static_cast<unsigned long long>(from),
        static_cast<unsigned long long>(to), static_cast<unsigned long long>(snapshot),
        static_cast<unsigned long long>(from), static_cast<unsigned long long>(snapshot));
  }
  std::fflush(stdout);
}

void TailPrinter::Progress(const std::string& device, uint64_t seq) {
  std::fflush(stdout);
  Stream& s = streams_[device];
  if (s.target == 0 || seq == 0) return;
  if (seq >= s.target) {
    std::fprintf(stderr, "\r\033[K");
    s.target = 0;
    return;
  }
  int filled = static_cast<int>(40 * seq / s.target);
  std::fprintf(stderr, "\r%s [%-40s] %llu/%llu", device.c_str(),
               std::string(static_cast<size_t>(filled), '#').c_str(),
               static_cast<unsigned long long>(seq),
               static_cast<unsigned long long>(s.target));
}

}  // namespace cairn::node::cli
