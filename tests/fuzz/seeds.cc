// cairn_fuzz_seeds OUT_DIR: writes the seed corpus of every fuzz target to
// OUT_DIR/<target>/<name>. The committed corpus (tests/fuzz/corpus) was made by
//   build/.../tests/hostile/cairn_fuzz_seeds tests/fuzz/corpus
// Records, snapshots and certificates come from the fixed fixture (fuzz_fixture.h),
// so the seeds are the same bytes in every run except the channel's ClientHello.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "discovery/options.h"
#include "fuzz_fixture.h"
#include "journal/chain.h"
#include "testutil/pki.h"
#include "tls/channel.h"
#include "tls/context.h"
#include "wire/frame.h"

namespace cairn::fuzz {
namespace {

namespace fs = std::filesystem;

// A byte string built of a mode prefix and frames.
class Seed {
 public:
  explicit Seed(std::string prefix = "") : bytes_(std::move(prefix)) {}
  template <typename Proto>
  Seed& Add(const Proto& m) {
    Status s = wire::EncodeFrame(m.SerializeAsString(), &bytes_);
    if (!s.ok()) std::abort();
    return *this;
  }
  Seed& Raw(std::string_view b) {
    bytes_ += b;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

class Writer {
 public:
  explicit Writer(fs::path root) : root_(std::move(root)) {}
  void Put(const std::string& target, const std::string& name, const Seed& seed) {
    fs::create_directories(root_ / target);
    std::ofstream(root_ / target / name, std::ios::binary) << seed.bytes();
    ++count_;
  }
  int count() const { return count_; }

 private:
  fs::path root_;
  int count_ = 0;
};

std::string Mode(uint8_t a, uint8_t b) { return std::string{char(a), char(b)}; }

wire::Events EventsOf(size_t from, size_t to, const std::string& device = kFuzzDevice) {
  const Fixture& f = Fixture::Get();
  wire::Events e;
  e.set_device(device);
  for (size_t s = from; s <= to; ++s) *e.add_records() = f.records[s - 1];
  return e;
}

wire::Envelope Env(const wire::Events& e) {
  wire::Envelope m;
  *m.mutable_events() = e;
  return m;
}

std::vector<wire::Snapshot> Messages(const journal::SnapshotData& d) {
  std::vector<wire::Snapshot> out;
  for (uint32_t i = d.header.chunks() == 0 ? 0 : 1; i <= d.header.chunks(); ++i) {
    wire::Snapshot s;
    *s.mutable_header() = d.header;
    s.set_index(i);
    if (i > 0) *s.mutable_chunk() = d.chunks[i - 1];
    out.push_back(std::move(s));
  }
  return out;
}

Seed SnapshotSeed(std::string mode, const std::vector<wire::Snapshot>& messages) {
  Seed s(std::move(mode));
  for (const auto& m : messages) s.Add(m);
  return s;
}

void RecordSeeds(Writer& w) {
  w.Put("records", "whole-stream", Seed(Mode(0, 0)).Add(EventsOf(1, 25)));
  w.Put("records", "chunks-in-order",
        Seed(Mode(0, 0)).Add(EventsOf(1, 5)).Add(EventsOf(6, 15)).Add(EventsOf(16, 25)));
  w.Put("records", "replay-old-then-new",
        Seed(Mode(15, 1)).Add(EventsOf(1, 5)).Add(EventsOf(6, 20)).Add(EventsOf(6, 15)));
  wire::Events swapped = EventsOf(16, 20);
  std::swap(*swapped.mutable_records(1), *swapped.mutable_records(2));
  w.Put("records", "swapped", Seed(Mode(15, 1)).Add(swapped));
  w.Put("records", "gap", Seed(Mode(15, 1)).Add(EventsOf(21, 25)));
  wire::Events forged = EventsOf(16, 20);
  forged.mutable_records(0)->set_payload("{\"forged\":1}");
  w.Put("records", "forged-payload", Seed(Mode(15, 1)).Add(forged));
  wire::Events rehashed = forged;  // forged and re-chained: the signature fails
  std::string prev = Fixture::Get().records[14].hash();
  for (auto& r : *rehashed.mutable_records()) {
    r.set_hash(journal::ChainHashOf(prev, kFuzzDevice, r));
    prev = r.hash();
  }
  w.Put("records", "forged-rehashed", Seed(Mode(15, 1)).Add(rehashed));
  w.Put("records", "other-device-name", Seed(Mode(0, 2)).Add(EventsOf(1, 5, "fz-other")));
  w.Put("records", "stranger-cert", Seed(Mode(0, 3)).Add(EventsOf(1, 5)));
  w.Put("records", "no-cert-yet", Seed(Mode(0, 1)).Add(EventsOf(1, 5)));
  w.Put("records", "garbage-cert", Seed(Mode(0, 4)).Add(EventsOf(1, 5)));
}

void SnapshotSeeds(Writer& w) {
  const Fixture& f = Fixture::Get();
  w.Put("snapshot", "genuine-a", SnapshotSeed(Mode(0, 0), Messages(f.snapshot_a)));
  w.Put("snapshot", "genuine-b-over-events",
        SnapshotSeed(Mode(12, 1), Messages(f.snapshot_b)));
  w.Put("snapshot", "a-then-b",
        Seed(SnapshotSeed(Mode(3, 0), Messages(f.snapshot_a)))
            .Raw(SnapshotSeed("", Messages(f.snapshot_b)).bytes()));
  auto kv = Messages(f.snapshot_a);
  if (kv.back().chunk().entries_size() > 0) {
    kv.back().mutable_chunk()->mutable_entries(0)->mutable_entry()->set_value("666");
  }
  w.Put("snapshot", "tampered-kv", SnapshotSeed(Mode(0, 0), kv));
  auto seq = Messages(f.snapshot_a);
  for (auto& m : seq) m.mutable_header()->set_seq(25);
  w.Put("snapshot", "tampered-seq", SnapshotSeed(Mode(22, 1), seq));
  auto resigned = Messages(f.snapshot_a);
  wire::SnapshotHeader h = f.snapshot_a.header;
  h.set_sig(f.other_signer->Sign(journal::SnapshotSigMessage(h)));
  for (auto& m : resigned) *m.mutable_header() = h;
  w.Put("snapshot", "resigned-by-another-device", SnapshotSeed(Mode(0, 0), resigned));
  w.Put("snapshot", "stranger-cert", SnapshotSeed(Mode(0, 3), Messages(f.snapshot_a)));
  auto reordered = Messages(f.snapshot_b);
  for (auto& m : reordered) m.set_index(m.index() + 1);
  w.Put("snapshot", "chunk-index-off", SnapshotSeed(Mode(0, 0), reordered));
}

wire::Envelope Hello(const std::string& id) {
  wire::Envelope m;
  m.mutable_hello()->set_node_id(id);
  m.mutable_hello()->set_protocol_version(discovery::kProtocolVersion);
  m.mutable_hello()->set_advertise("127.0.0.1:7412");
  return m;
}

void MessageSeeds(Writer& w) {
  const Fixture& f = Fixture::Get();
  wire::Envelope cat;
  cat.mutable_catalogue()->set_full(true);
  auto* e = cat.mutable_catalogue()->add_entries();
  e->set_device(kFuzzDevice);
  e->set_first(1);
  e->set_last(25);
  e->set_source(true);
  wire::Envelope header;
  header.mutable_stream_header()->set_device(kFuzzDevice);
  header.mutable_stream_header()->set_device_cert(f.cert_der);
  wire::Envelope sub, credit, ping, pong, px, bye, unsub;
  sub.mutable_subscribe()->set_device("self");
  sub.mutable_subscribe()->set_from(1);
  sub.mutable_subscribe()->set_credit(1 << 20);
  credit.mutable_credit()->set_device("self");
  credit.mutable_credit()->set_bytes(4096);
  ping.mutable_ping()->set_nonce(7);
  pong.mutable_pong()->set_nonce(7);
  auto* peer = px.mutable_peer_exchange()->add_peers();
  peer->set_node_id("q");
  peer->set_address("127.0.0.1:7413");
  bye.mutable_goodbye()->set_reason("bye");
  unsub.mutable_unsubscribe()->set_device("self");
  w.Put("messages", "serve",
        Seed(std::string(1, char(3)))
            .Add(Hello("p"))
            .Add(cat)
            .Add(sub)
            .Add(credit)
            .Add(ping));
  Seed follow(std::string(1, char(5)));
  follow.Add(Hello("p")).Add(cat).Add(header).Add(Env(EventsOf(6, 15)));
  for (const auto& m : Messages(f.snapshot_a)) {
    wire::Envelope s;
    *s.mutable_snapshot() = m;
    follow.Add(s);
  }
  w.Put("messages", "follow", follow);
  w.Put("messages", "before-hello", Seed(std::string(1, '\0')).Add(cat).Add(Hello("p")));
  w.Put("messages", "wrong-id", Seed(std::string(1, '\0')).Add(Hello("mallory")));
  w.Put("messages", "exchange-and-leave",
        Seed(std::string(1, '\0')).Add(Hello("p")).Add(px).Add(pong).Add(unsub).Add(bye));
}

void ControlSeeds(Writer& w) {
  auto req = [](uint64_t id) {
    wire::ControlRequest r;
    r.set_id(id);
    return r;
  };
  wire::ControlRequest status = req(1), append = req(2), get = req(3), list = req(4),
                       snap = req(5), verify = req(6), tail = req(7), follow = req(8);
  status.mutable_status();
  append.mutable_append()->set_device("fz-other");
  auto* ev = append.mutable_append()->add_events();
  ev->set_type("kv.put");
  ev->set_payload(R"({"store":"s","key":"k","value":1})");
  get.mutable_kv_get()->set_device(kFuzzDevice);
  get.mutable_kv_get()->set_store("s");
  get.mutable_kv_get()->set_key("k1");
  list.mutable_kv_list()->set_device(kFuzzDevice);
  list.mutable_kv_list()->set_store("s");
  snap.mutable_snapshot()->set_device("fz-other");
  verify.mutable_verify()->set_device(kFuzzDevice);
  tail.mutable_tail()->set_device(kFuzzDevice);
  tail.mutable_tail()->set_from(1);
  follow.mutable_tail()->set_device(kFuzzDevice);
  follow.mutable_tail()->set_from(3);
  follow.mutable_tail()->set_follow(true);
  const std::string mode(1, char(10));
  w.Put("control", "status", Seed(mode).Add(status));
  w.Put("control", "append-snapshot-verify",
        Seed(mode).Add(append).Add(snap).Add(verify).Add(append));
  w.Put("control", "kv", Seed(mode).Add(get).Add(list));
  w.Put("control", "tails", Seed(mode).Add(tail).Add(follow));
  w.Put("control", "unknown-then-garbage",
        Seed(mode).Add(req(9)).Raw(std::string("\x00\x00\x00\x03\xff\xff\xff", 7)));
}

void WireSeeds(Writer& w) {
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(1);
  w.Put("frames", "hello-ping-events",
        Seed(std::string(1, char(9))).Add(Hello("a")).Add(ping).Add(Env(EventsOf(1, 3))));
  w.Put("frames", "over-limit", Seed(std::string(1, '\0')).Raw("\x00\x10\x00\x01xyz"));
  testutil::TestPki pki("seed-ca");
  testutil::Issued id = pki.Issue("seed-client");
  auto ctx = tls::Context::FromPem({pki.ca_cert_pem(), id.cert_pem, id.key_pem});
  if (!ctx.ok()) std::abort();
  tls::Channel client(**ctx, tls::Channel::Role::kClient);
  if (!client.Start().ok()) std::abort();
  w.Put("channel", "client-hello", Seed(client.TakeCiphertext()));
}

}  // namespace
}  // namespace cairn::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: cairn_fuzz_seeds OUT_DIR\n";
    return 2;
  }
  cairn::fuzz::Writer w{std::filesystem::path(argv[1])};
  cairn::fuzz::RecordSeeds(w);
  cairn::fuzz::SnapshotSeeds(w);
  cairn::fuzz::MessageSeeds(w);
  cairn::fuzz::ControlSeeds(w);
  cairn::fuzz::WireSeeds(w);
  std::cout << "wrote " << w.count() << " seeds under " << argv[1] << "\n";
  return 0;
}
