// Journal append and read throughput, with raw LevelDB of the same keys and value
// sizes measured in the same run as the reference (these machines are shared and
// noisy: compare ratios, not absolute figures).
//
//   bin/bench journal           (a Release build; see tests/bench/README.md)
//
// Append/<payload>/<batch>/<sync>: one caller appending batches and waiting for
// each ack — hashing, signing (one Ed25519 signature per group) and the fsync
// (sync=1) included. AppendConcurrent runs 4 callers, so group commit merges
// their batches. RawLevelDB/<payload>/<batch>/<sync> writes WriteBatches of the
// same keys and serialized record sizes with nothing else.
#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>

#include "journal/chain.h"
#include "journal/journal.h"
#include "journal/layout.h"
#include "testutil/pki.h"

namespace cairn::journal {
namespace {

struct Bench {
  testutil::TestPki pki;
  testutil::TempDir dir;
  std::shared_ptr<const CertAuthority> ca;
  std::shared_ptr<DeviceSigner> signer;

  Bench() {
    ca = *CertAuthority::FromPem(pki.ca_cert_pem(), "bench CA");
    auto d = pki.Issue("bench-device");
    signer = *DeviceSigner::FromPem(d.cert_pem, d.key_pem, *ca);
  }

  std::unique_ptr<Journal> Open(bool sync) {
    JournalOptions o;
    o.store.path = dir.File("journal");
    o.ca = ca;
    o.sources.push_back(signer);
    o.sync_writes = sync;
    return std::move(*Journal::Open(std::move(o)));
  }
};

std::vector<NewEvent> Batch(size_t n, size_t payload) {
  return std::vector<NewEvent>(n, NewEvent{"bench", std::string(payload, 'p')});
}

// The size Cairn stores for one record with this payload (signature excluded:
// one per batch at most).
size_t StoredRecordBytes(size_t payload) {
  wire::Record r;
  r.set_seq(123456);
  r.set_time_us(1'700'000'000'000'000);
  r.set_type("bench");
  r.set_payload(std::string(payload, 'p'));
  r.set_hash(std::string(32, 'h'));
  return r.ByteSizeLong();
}

void SetCounters(benchmark::State& state, size_t batch, size_t payload) {
  const auto events = static_cast<double>(state.iterations() * batch);
  state.counters["events/s"] = benchmark::Counter(events, benchmark::Counter::kIsRate);
  state.counters["MB/s"] = benchmark::Counter(events * static_cast<double>(payload) / 1e6,
                                              benchmark::Counter::kIsRate);
}

void BM_Append(benchmark::State& state) {
  const auto payload = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<size_t>(state.range(1));
  Bench b;
  auto j = b.Open(state.range(2) != 0);
  const auto events = Batch(batch, payload);
  for (auto _ : state) {
    auto r = j->Append("bench-device", events);
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
  }
  SetCounters(state, batch, payload);
}

void BM_RawLevelDB(benchmark::State& state) {
  const auto payload = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<size_t>(state.range(1));
  testutil::TempDir dir;
  leveldb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = 16u << 20;  // as the journal's store
  leveldb::DB* raw = nullptr;
  if (!leveldb::DB::Open(o, dir.File("raw"), &raw).ok()) state.SkipWithError("open");
  std::unique_ptr<leveldb::DB> db(raw);
  leveldb::WriteOptions wo;
  wo.sync = state.range(2) != 0;
  const std::string value(StoredRecordBytes(payload), 'v');
  uint64_t seq = 0;
  for (auto _ : state) {
    leveldb::WriteBatch wb;
    for (size_t i = 0; i < batch; ++i)
      wb.Put(layout::EventKey("bench-device", ++seq), value);
    if (!db->Write(wo, &wb).ok()) state.SkipWithError("write");
  }
  SetCounters(state, batch, payload);
}

// One caller that keeps up to 8 appends in flight (AppendAsync with a window),
// as a pipelining client does: it prepares the next batch (validation, content
// digests, encoding) while the writer links and writes the previous one.
void BM_AppendPipelined(benchmark::State& state) {
  const auto payload = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<size_t>(state.range(1));
  constexpr int kWindow = 8;
  Bench b;
  auto j = b.Open(state.range(2) != 0);
  const auto events = Batch(batch, payload);
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  bool failed = false;
  for (auto _ : state) {
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return in_flight < kWindow; });
      ++in_flight;
    }
    j->AppendAsync("bench-device", events, [&](Result<SeqRange> r) {
      std::lock_guard<std::mutex> l(mu);
      --in_flight;
      failed |= !r.ok();
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return in_flight == 0; });
  if (failed) state.SkipWithError("append failed");
  SetCounters(state, batch, payload);
}

// Shared by the threads of one AppendConcurrent run; the last one out closes it.
std::shared_ptr<std::pair<Bench, std::unique_ptr<Journal>>> SharedJournal(bool sync) {
  static std::mutex mu;
  static std::weak_ptr<std::pair<Bench, std::unique_ptr<Journal>>> weak;
  std::lock_guard<std::mutex> l(mu);
  auto s = weak.lock();
  if (!s) {
    s = std::make_shared<std::pair<Bench, std::unique_ptr<Journal>>>();
    s->second = s->first.Open(sync);
    weak = s;
  }
  return s;
}

void BM_AppendConcurrent(benchmark::State& state) {
  const auto payload = static_cast<size_t>(state.range(0));
  const auto batch = static_cast<size_t>(state.range(1));
  auto shared = SharedJournal(state.range(2) != 0);
  const auto events = Batch(batch, payload);
  for (auto _ : state) {
    auto r = shared->second->Append("bench-device", events);
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
  }
  SetCounters(state, batch, payload);
}

void BM_ReadSequential(benchmark::State& state) {
  constexpr size_t kEvents = 100'000;
  Bench b;
  auto j = b.Open(false);
  for (size_t i = 0; i < kEvents; i += 1000)
    (void)j->Append("bench-device", Batch(1000, 100));
  for (auto _ : state) {
    for (uint64_t from = 1; from <= kEvents; from += 1000) {
      auto r = j->Read("bench-device", from, 1000);
      benchmark::DoNotOptimize(r);
    }
  }
  SetCounters(state, kEvents, 100);
}

void BM_RawLevelDBScan(benchmark::State& state) {
  constexpr size_t kEvents = 100'000;
  testutil::TempDir dir;
  leveldb::Options o;
  o.create_if_missing = true;
  leveldb::DB* raw = nullptr;
  if (!leveldb::DB::Open(o, dir.File("raw"), &raw).ok()) state.SkipWithError("open");
  std::unique_ptr<leveldb::DB> db(raw);
  const std::string value(StoredRecordBytes(100), 'v');
  for (size_t i = 0; i < kEvents; i += 1000) {
    leveldb::WriteBatch wb;
    for (size_t k = 1; k <= 1000; ++k)
      wb.Put(layout::EventKey("bench-device", i + k), value);
    (void)db->Write(leveldb::WriteOptions(), &wb);
  }
  for (auto _ : state) {
    leveldb::ReadOptions ro;
    ro.verify_checksums = true;
    std::unique_ptr<leveldb::Iterator> it(db->NewIterator(ro));
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      benchmark::DoNotOptimize(it->value().data());
      ++n;
    }
    if (n != kEvents) state.SkipWithError("short scan");
  }
  SetCounters(state, kEvents, 100);
}

// The pieces of an append, for profiles: one chain hash, one signature, one verify.
void BM_ChainHash100(benchmark::State& state) {
  const std::string prev(32, 'h'), payload(100, 'p');
  uint64_t seq = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ChainHash(prev, "bench-device", ++seq, 1, "bench", payload));
  }
}

void BM_Sign(benchmark::State& state) {
  Bench b;
  const std::string m = EventSigMessage("bench-device", 1, std::string(32, 'h'));
  for (auto _ : state) benchmark::DoNotOptimize(b.signer->Sign(m));
}

void BM_Verify(benchmark::State& state) {
  Bench b;
  const std::string m = EventSigMessage("bench-device", 1, std::string(32, 'h'));
  const std::string sig = b.signer->Sign(m);
  for (auto _ : state) benchmark::DoNotOptimize(b.signer->public_key()->Verify(m, sig));
}

BENCHMARK(BM_ChainHash100);
BENCHMARK(BM_Sign);
BENCHMARK(BM_Verify);

void AppendArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"payload", "batch", "sync"});
  for (int sync : {0, 1}) {
    for (int payload : {100, 1024}) {
      for (int batch : {1, 64, 1024}) b->Args({payload, batch, sync});
    }
  }
}

BENCHMARK(BM_Append)->Apply(AppendArgs)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_AppendPipelined)->Apply(AppendArgs)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_RawLevelDB)->Apply(AppendArgs)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_AppendConcurrent)
    ->ArgNames({"payload", "batch", "sync"})
    ->Args({100, 1, 0})
    ->Args({100, 64, 0})
    ->Args({100, 1, 1})
    ->Args({100, 64, 1})
    ->Threads(4)
    ->MinTime(0.5)
    ->UseRealTime();
BENCHMARK(BM_ReadSequential)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_RawLevelDBScan)->MinTime(0.5)->UseRealTime();

}  // namespace
}  // namespace cairn::journal

BENCHMARK_MAIN();
