// The sync engine alone: events in, actions out, no sockets and no disk.
#include "sync/engine.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace cairn::sync {
namespace {

journal::StreamInfo Info(const std::string& device, uint64_t last, bool source = false) {
  journal::StreamInfo i;
  i.device = device;
  i.first = 1;
  i.last = last;
  i.source = source;
  return i;
}

wire::Envelope CatalogueOf(std::vector<std::pair<std::string, uint64_t>> entries,
                           bool source = false) {
  wire::Envelope e;
  e.mutable_catalogue()->set_full(true);
  for (const auto& [device, last] : entries) {
    auto* c = e.mutable_catalogue()->add_entries();
    c->set_device(device);
    c->set_last(last);
    c->set_source(source);
  }
  return e;
}

std::vector<Action> Of(std::vector<Action> actions, Action::Kind kind,
                       wire::Envelope::MsgCase msg = wire::Envelope::MSG_NOT_SET) {
  std::vector<Action> out;
  for (auto& a : actions) {
    if (a.kind != kind) continue;
    if (msg != wire::Envelope::MSG_NOT_SET && a.message.msg_case() != msg) continue;
    out.push_back(std::move(a));
  }
  return out;
}

TEST(EngineTest, ManyLocalChangesBecomeOneCatalogueDeltaPerPeer) {
  Engine e;
  e.OnPeerActive("p1");
  e.OnPeerActive("p2");
  (void)e.TakeActions();
  for (int i = 0; i < 1000; ++i) e.OnLocalChange(Info("d" + std::to_string(i), 5, true));
  e.Flush();
  auto sends = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue);
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0].message.catalogue().entries_size(), 1000);
  EXPECT_FALSE(sends[0].message.catalogue().full());
}

TEST(EngineTest, AnActivePeerGetsTheFullCatalogue) {
  Engine e;
  e.SetLocal({Info("mine", 3, true), Info("other", 9)});
  e.OnPeerActive("p");
  auto sends = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_TRUE(sends[0].message.catalogue().full());
  EXPECT_EQ(sends[0].message.catalogue().entries_size(), 2);
}

// 100,000 devices with 40-byte ids: about 6 MiB of catalogue, over the 4 MiB
// frame limit and the connection's 9 MiB write limit. It goes in parts, paced by
// the connection, and the receiver plans (and counts the peer as heard) once the
// last part is in.
TEST(EngineTest, AHugeCatalogueGoesInPartsPacedByTheConnection) {
  SyncOptions whole;  // no summary first (as for a subscriber): every entry goes
  whole.summary_min_entries = SIZE_MAX;
  Engine src(whole);
  std::vector<journal::StreamInfo> local;
  for (int i = 0; i < 100'000; ++i) {
    char id[48];
    std::snprintf(id, sizeof id, "device-%033d", i);
    local.push_back(Info(id, 1000 + i, true));
  }
  src.SetLocal(local);
  bool congested = false;
  src.set_high_water([&](const std::string&) { return congested; });
  Engine dst;
  dst.SetLocal({Info("mine", 5, true)});
  dst.Guard({"mine"}, 1);
  dst.OnPeerActive("src");
  (void)dst.TakeActions();
  src.OnPeerActive("dst");
  size_t parts = 0;
  for (int turn = 0; turn < 1000; ++turn) {
    auto sends = Of(src.TakeActions(), Action::Kind::kSend, wire::Envelope::kCatalogue);
    size_t burst = 0;
    for (const auto& a : sends) burst += a.message.ByteSizeLong();
    // What one turn queues stays well under the connection's 9 MiB write limit.
    ASSERT_LE(burst, Engine::kCatalogueBurstBytes + 2 * Engine::kCatalogueBytes);
    if (congested) {
      ASSERT_EQ(burst, 0u) << "sent while above the high-water mark";
    }
    for (auto& a : sends) {
      ++parts;
      ASSERT_LE(a.message.ByteSizeLong(), 2 * Engine::kCatalogueBytes);
      EXPECT_TRUE(dst.guarded().count("mine")) << "heard before the last part";
      dst.OnMessage("src", std::move(a.message));
    }
    congested = !congested;  // every other turn the connection is above high water
    src.OnDrained("dst");    // also while congested: it must not send then
  }
  EXPECT_GT(parts, 10u);
  EXPECT_EQ(dst.PeerLast(local.back().device), local.back().last);
  EXPECT_TRUE(Of(dst.TakeActions(), Action::Kind::kClose).empty());
  EXPECT_TRUE(dst.guarded().empty()) << "the whole catalogue arrived: heard";
}

TEST(EngineTest, ASubscribeForADeviceWeDoNotHoldClosesThePeerAndKeepsNothing) {
  Engine e;
  e.SetLocal({Info("d", 5, true)});
  e.OnPeerActive("p");
  (void)e.TakeActions();
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device("not-here");
  sub.mutable_subscribe()->set_from(1);
  sub.mutable_subscribe()->set_credit(1 << 20);
  e.OnMessage("p", sub);
  auto closes = Of(e.TakeActions(), Action::Kind::kClose);
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_NE(closes[0].reason.find("does not hold"), std::string::npos);
  EXPECT_FALSE(e.Serves("not-here"));
}

TEST(EngineTest, AFloodOfForkNoticesCostsOneCheckAndAForgedOneClosesThePeer) {
  Engine e;
  e.SetLocal({Info("mine", 5, true)});
  e.OnPeerActive("p");
  (void)e.TakeActions();
  wire::Envelope notice;
  notice.mutable_fork_notice()->set_device("mine");
  notice.mutable_fork_notice()->add_records()->set_seq(1);
  for (int i = 0; i < 1000; ++i) e.OnMessage("p", notice);
  auto checks = Of(e.TakeActions(), Action::Kind::kOwnFork);
  ASSERT_EQ(checks.size(), 1u) << "one check at a time per peer and device";
  e.OnOwnForkChecked("p", "mine", Status::Corruption("record 1 does not chain"));
  auto closes = Of(e.TakeActions(), Action::Kind::kClose);
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_NE(closes[0].reason.find("fork notice"), std::string::npos);
  e.OnPeerActive("q");  // p is gone; another peer sends an empty notice
  (void)e.TakeActions();
  wire::Envelope empty;
  empty.mutable_fork_notice()->set_device("mine");
  e.OnMessage("q", empty);
  EXPECT_EQ(Of(e.TakeActions(), Action::Kind::kClose).size(), 1u);
}

TEST(EngineTest, SubscribesThroughTheSourceFromAfterWhatItHolds) {
  Engine e;
  e.SetLocal({Info("d", 40)});
  e.OnPeerActive("src");
  (void)e.TakeActions();
  e.OnMessage("src", CatalogueOf({{"d", 100}}, true));
  auto subs = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe);
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].peer, "src");
  EXPECT_EQ(subs[0].message.subscribe().from(), 41u);
  EXPECT_EQ(e.Via("d"), "src");
}

// "sub" subscribes to "d" (held here up to `last`) from seq 1 with `credit`.
void SubscribeFrom1(Engine& e, uint64_t last, uint64_t credit) {
  e.SetLocal({Info("d", last, true)});
  e.OnPeerActive("sub");
  (void)e.TakeActions();
  wire::Envelope s;
  s.mutable_subscribe()->set_device("d");
  s.mutable_subscribe()->set_from(1);
  s.mutable_subscribe()->set_credit(credit);
  e.OnMessage("sub", s);
}

TEST(EngineTest, ServingStopsWhenCreditRunsOutAndResumesWithCredit) {
  Engine e;
  SubscribeFrom1(e, 1000, 100);
  auto reads = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].max_bytes, 100u);
  journal::Delivery d;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    wire::Record r;
    r.set_seq(seq);
    r.set_payload(std::string(50, 'x'));
    d.records.push_back(r);
  }
  e.OnReadDone("sub", "d", "cert", std::move(d), reads[0].generation);
  auto after = e.TakeActions();
  EXPECT_EQ(Of(after, Action::Kind::kSend, wire::Envelope::kEvents).size(), 1u);
  EXPECT_TRUE(Of(after, Action::Kind::kRead).empty()) << "read on without credit";
  wire::Envelope c;
  c.mutable_credit()->set_device("d");
  c.mutable_credit()->set_bytes(1000);
  e.OnMessage("sub", c);
  auto more = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].from, 4u);
}

TEST(EngineTest, AReadBeyondTheCreditIsADebtPaidBackBeforeServingMore) {
  Engine e;
  SubscribeFrom1(e, 1000, 100);
  auto reads = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(reads.size(), 1u);
  journal::Delivery d;  // about 170 bytes: the read ran on to a signed record
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    d.records.emplace_back();
    d.records.back().set_seq(seq);
    d.records.back().set_payload(std::string(50, 'x'));
  }
  e.OnReadDone("sub", "d", "cert", std::move(d), reads[0].generation);
  auto sent = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kEvents);
  ASSERT_EQ(sent.size(), 1u);
  const uint64_t bytes = sent[0].message.ByteSizeLong();
  ASSERT_GT(bytes, 100u);
  wire::Envelope c;
  c.mutable_credit()->set_device("d");
  c.mutable_credit()->set_bytes(bytes - 100);  // pays the debt back, no more
  e.OnMessage("sub", c);
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kRead).empty())
      << "the overshoot was written off: the window grows with every read";
  c.mutable_credit()->set_bytes(1);
  e.OnMessage("sub", c);
  auto more = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].from, 4u);
  EXPECT_EQ(more[0].max_bytes, 1u);
}

// Part of a snapshot of "d" at seq 100 in `chunks` chunks of one 1,000-byte entry.
journal::SnapshotData SnapshotPart(uint32_t chunks, uint32_t first, uint32_t n) {
  journal::SnapshotData part;
  part.header.set_device("d");
  part.header.set_seq(100);
  part.header.set_chunks(chunks);
  part.first_chunk = first;
  for (uint32_t i = 0; i < n; ++i) {
    auto* e = part.chunks.emplace_back().add_entries();
    e->set_store("s");
    e->set_key("k" + std::to_string(first + i));
    e->mutable_entry()->set_value(std::string(1000, 'v'));
  }
  return part;
}

journal::Delivery Part(uint32_t chunks, uint32_t first, uint32_t n) {
  journal::Delivery d;
  d.snapshot = SnapshotPart(chunks, first, n);
  return d;
}

TEST(EngineTest, ASnapshotIsServedAFewChunksAtATimeWithinTheCredit) {
  Engine e;
  journal::StreamInfo info = Info("d", 110, true);
  info.snapshot = 100;
  info.first = 101;
  e.SetLocal({info});
  e.OnPeerActive("sub");
  (void)e.TakeActions();
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device("d");
  sub.mutable_subscribe()->set_from(1);
  sub.mutable_subscribe()->set_credit(2500);
  e.OnMessage("sub", sub);
  auto reads = Of(e.TakeActions(), Action::Kind::kReadSnapshot);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].chunk, 1u);
  e.OnReadDone("sub", "d", "cert", Part(5, 1, 2), reads[0].generation);
  auto actions = e.TakeActions();
  EXPECT_EQ(Of(actions, Action::Kind::kSend, wire::Envelope::kStreamHeader).size(), 1u);
  ASSERT_EQ(Of(actions, Action::Kind::kSend, wire::Envelope::kSnapshot).size(), 2u);
  reads = Of(actions, Action::Kind::kReadSnapshot);  // 2,500 - 2 chunks > 0: on
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].chunk, 3u);
  EXPECT_EQ(reads[0].snapshot_seq, 100u);
  e.OnReadDone("sub", "d", "cert", Part(5, 3, 1), reads[0].generation);
  actions = e.TakeActions();
  EXPECT_EQ(Of(actions, Action::Kind::kSend, wire::Envelope::kSnapshot).size(), 1u);
  EXPECT_TRUE(Of(actions, Action::Kind::kReadSnapshot).empty())
      << "read on without credit";
  wire::Envelope c;
  c.mutable_credit()->set_device("d");
  c.mutable_credit()->set_bytes(1 << 20);
  e.OnMessage("sub", c);
  reads = Of(e.TakeActions(), Action::Kind::kReadSnapshot);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].chunk, 4u);
  e.OnReadDone("sub", "d", "cert", Part(5, 4, 2), reads[0].generation);
  actions = e.TakeActions();
  auto chunks = Of(actions, Action::Kind::kSend, wire::Envelope::kSnapshot);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[1].message.snapshot().index(), 5u);
  auto events = Of(actions, Action::Kind::kRead);  // then the events after it
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].from, 101u);
}

std::vector<wire::Record> Records(uint64_t from, uint64_t to) {
  std::vector<wire::Record> out;
  for (uint64_t seq = from; seq <= to; ++seq) {
    out.emplace_back().set_seq(seq);
    out.back().set_payload(std::string(50, 'x'));
  }
  return out;
}

// A subscriber served up to seq 3 of "d" (header sent, no read in flight).
void ServeThrough3(Engine& e, uint64_t credit) {
  SubscribeFrom1(e, 3, credit);
  auto reads = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(reads.size(), 1u);
  journal::Delivery d;
  d.records = Records(1, 3);
  e.OnReadDone("sub", "d", "cert", std::move(d), reads[0].generation);
  (void)e.TakeActions();
}

TEST(EngineTest, JustCommittedRecordsGoStraightToACaughtUpSubscriber) {
  Engine e;
  ServeThrough3(e, 1 << 20);
  ASSERT_TRUE(e.Serves("d"));
  e.OnLocalRecords("d", Records(4, 5));
  e.OnLocalChange(Info("d", 5, true));
  auto actions = e.TakeActions();
  auto sent = Of(actions, Action::Kind::kSend, wire::Envelope::kEvents);
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_EQ(sent[0].message.events().records_size(), 2);
  EXPECT_EQ(sent[0].message.events().records(0).seq(), 4u);
  EXPECT_TRUE(Of(actions, Action::Kind::kRead).empty()) << "read what it already had";
  EXPECT_EQ(e.records_served(), 5u);
}

TEST(EngineTest, JustCommittedRecordsThatDoNotFollowOnAreLeftToARead) {
  Engine e;
  ServeThrough3(e, 1 << 20);
  e.OnLocalRecords("d", Records(5, 6));  // 4 went past the tap
  e.OnLocalChange(Info("d", 6, true));
  auto actions = e.TakeActions();
  EXPECT_TRUE(Of(actions, Action::Kind::kSend, wire::Envelope::kEvents).empty());
  auto reads = Of(actions, Action::Kind::kRead);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].from, 4u);
}

TEST(EngineTest, JustCommittedRecordsBeyondTheCreditAreLeftToARead) {
  Engine e;
  ServeThrough3(e, 3 * 60);  // enough for the first three, not for ten more
  e.OnLocalRecords("d", Records(4, 13));
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kEvents).empty());
}

TEST(EngineTest, AReadForAReplacedSubscriptionIsDropped) {
  Engine e;
  SubscribeFrom1(e, 10, 1 << 20);
  auto old_reads = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(old_reads.size(), 1u);
  wire::Envelope again;  // the subscriber probes: the same device from 5
  again.mutable_subscribe()->set_device("d");
  again.mutable_subscribe()->set_from(5);
  again.mutable_subscribe()->set_credit(1000);
  e.OnMessage("sub", again);
  auto new_reads = Of(e.TakeActions(), Action::Kind::kRead);
  ASSERT_EQ(new_reads.size(), 1u);
  EXPECT_EQ(new_reads[0].from, 5u);
  EXPECT_NE(new_reads[0].generation, old_reads[0].generation);
  journal::Delivery old;
  old.records = Records(1, 10);
  e.OnReadDone("sub", "d", "cert", std::move(old), old_reads[0].generation);
  EXPECT_TRUE(e.TakeActions().empty()) << "sent the old read, or took its credit";
  journal::Delivery fresh;
  fresh.records = Records(5, 10);
  e.OnReadDone("sub", "d", "cert", std::move(fresh), new_reads[0].generation);
  auto sent = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kEvents);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].message.events().records(0).seq(), 5u);
}

TEST(EngineTest, JustCommittedRecordsWaitForAReadInFlight) {
  Engine e;
  SubscribeFrom1(e, 3, 1 << 20);
  ASSERT_EQ(Of(e.TakeActions(), Action::Kind::kRead).size(), 1u);
  e.OnLocalRecords("d", Records(1, 4));  // the read in flight owns what comes next
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kEvents).empty());
}

TEST(EngineTest, AppliesOneChunkAtATimeAndGrantsCreditAfterEach) {
  SyncOptions o;
  o.credit_batch_bytes = 1;  // grant after every write
  Engine e(o);
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 10}}, true));
  (void)e.TakeActions();
  for (uint64_t seq = 1; seq <= 2; ++seq) {
    wire::Envelope m;
    m.mutable_events()->set_device("d");
    m.mutable_events()->add_records()->set_seq(seq);
    e.OnMessage("src", m);
  }
  auto applies = Of(e.TakeActions(), Action::Kind::kApply);
  ASSERT_EQ(applies.size(), 1u) << "two journal writes in flight for one device";
  e.OnApplyDone("src", "d", Status::Ok(), applies[0].credit);
  auto next = e.TakeActions();
  EXPECT_EQ(Of(next, Action::Kind::kSend, wire::Envelope::kCredit).size(), 1u);
  EXPECT_EQ(Of(next, Action::Kind::kApply).size(), 1u);
}

// Follows "d" (100 events at its source "src") through "src".
void FollowDThroughSrc(Engine& e) {
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 100}}, true));
  (void)e.TakeActions();
}

TEST(EngineTest, SmallCreditsAreGrantedTogetherOnceTheBatchIsOwed) {
  SyncOptions o;
  o.credit_batch_bytes = 100;
  Engine e(o);
  FollowDThroughSrc(e);
  uint64_t owed = 0;
  size_t grants = 0;
  for (uint64_t seq = 1; seq <= 40; ++seq) {
    wire::Envelope m;
    m.mutable_events()->set_device("d");
    m.mutable_events()->add_records()->set_seq(seq);
    e.OnMessage("src", m);
    auto applies = Of(e.TakeActions(), Action::Kind::kApply);
    ASSERT_EQ(applies.size(), 1u);
    e.OnApplyDone("src", "d", Status::Ok(), applies[0].credit);
    owed += applies[0].credit;
    for (const auto& c :
         Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kCredit)) {
      ++grants;
      EXPECT_GE(c.message.credit().bytes(), 100u) << "granted before the batch was owed";
      EXPECT_EQ(c.message.credit().bytes(), owed) << "a grant covers all that is owed";
      owed = 0;
    }
  }
  EXPECT_GT(grants, 1u);
  EXPECT_LT(grants, 20u) << "one grant per write";
  EXPECT_LT(owed, 100u) << "held back a whole batch";
}

// Chunks held for a snapshot are owed at once: the server's credit may run out
// in the middle of a big snapshot, and only the grant for them resumes it.
TEST(EngineTest, SnapshotChunksHeldForTheInstallAreOwedCredit) {
  SyncOptions o;
  o.credit_batch_bytes = 100;
  Engine e(o);
  FollowDThroughSrc(e);
  uint64_t held = 0;
  for (uint32_t i = 1; i <= 3; ++i) {
    wire::Envelope m;
    m.mutable_snapshot()->mutable_header()->set_device("d");
    m.mutable_snapshot()->mutable_header()->set_seq(50);
    m.mutable_snapshot()->mutable_header()->set_chunks(4);
    m.mutable_snapshot()->set_index(i);
    m.mutable_snapshot()->mutable_chunk()->add_entries()->set_key(std::string(60, 'k'));
    held += m.ByteSizeLong();
    e.OnMessage("src", m);
  }
  auto actions = e.TakeActions();
  EXPECT_TRUE(Of(actions, Action::Kind::kInstall).empty()) << "installed 3 of 4 chunks";
  uint64_t granted = 0;
  for (const auto& c : Of(actions, Action::Kind::kSend, wire::Envelope::kCredit)) {
    granted += c.message.credit().bytes();
  }
  EXPECT_GE(granted, 100u);
  EXPECT_LE(granted, held);
}

wire::Envelope ChunkOf(uint64_t seq, uint32_t chunks, uint32_t index, size_t bytes,
                       const std::string& sig = "signed") {
  wire::Envelope m;
  auto* s = m.mutable_snapshot();
  s->mutable_header()->set_device("d");
  s->mutable_header()->set_seq(seq);
  s->mutable_header()->set_chunks(chunks);
  s->mutable_header()->set_sig(sig);
  s->set_index(index);
  s->mutable_chunk()->add_entries()->set_key(std::string(bytes, 'k'));
  return m;
}

std::string CloseReason(const std::vector<Action>& actions) {
  for (const auto& a : actions) {
    if (a.kind == Action::Kind::kClose) return a.reason;
  }
  return "";
}

// A header is checked once per snapshot, before any chunk is held: a peer that
// sends chunks under a header its device never signed is closed, holding nothing.
TEST(EngineTest, ASnapshotHeaderIsCheckedBeforeAnyChunkIsHeld) {
  Engine e;
  int checks = 0;
  e.set_snapshot_header_check([&](const std::string&, const wire::SnapshotHeader& h) {
    ++checks;
    return h.sig() == "signed" ? Status::Ok()
                               : Status::Corruption("signature does not verify");
  });
  FollowDThroughSrc(e);
  for (uint32_t i = 1; i <= 3; ++i) e.OnMessage("src", ChunkOf(50, 4, i, 100));
  EXPECT_EQ(checks, 1) << "one check per snapshot, not per chunk";
  EXPECT_GT(e.snapshot_memory_held(), 300u);
  EXPECT_EQ(CloseReason(e.TakeActions()), "");
  // Another snapshot under a forged header: refused at its first chunk.
  e.OnMessage("src", ChunkOf(60, 4, 1, 100, "forged"));
  EXPECT_EQ(CloseReason(e.TakeActions()),
            "refused a snapshot header: signature does not verify");
  e.OnPeerGone("src");
  EXPECT_EQ(e.snapshot_memory_held(), 0u) << "the assembly gave its bytes back";
}

// A peer alternating two signed headers (each a new snapshot) costs one check
// per header, not one per message.
TEST(EngineTest, AlternatingHeadersAreCheckedOnceEach) {
  Engine e;
  int checks = 0;
  e.set_snapshot_header_check([&](const std::string&, const wire::SnapshotHeader&) {
    ++checks;
    return Status::Ok();
  });
  FollowDThroughSrc(e);
  for (int i = 0; i < 20; ++i) e.OnMessage("src", ChunkOf(i % 2 ? 50 : 60, 4, 1, 10));
  EXPECT_EQ(checks, 2);
  EXPECT_EQ(CloseReason(e.TakeActions()), "");
}

// What snapshots in assembly hold is counted as the bytes kept, and bounded per
// snapshot, per peer and per node; whatever ends an assembly gives them back.
TEST(EngineTest, SnapshotAssemblyIsBoundedPerPeerAndPerNode) {
  SyncOptions o;
  o.stage_part_bytes = 1u << 30;  // nothing goes to disk: memory alone is bounded
  o.max_snapshot_bytes = 1u << 20;
  o.max_snapshot_memory_per_peer = 1u << 20;
  o.max_snapshot_memory_total = 1536u << 10;
  Engine e(o);
  e.SetLocal({});
  auto chunk = [](const std::string& device, uint32_t index) {
    wire::Envelope m = ChunkOf(50, 100, index, 300u << 10);
    m.mutable_snapshot()->mutable_header()->set_device(device);
    return m;
  };
  auto activate = [&](const std::string& peer,
                      std::vector<std::pair<std::string, uint64_t>> catalogue) {
    e.OnPeerActive(peer);
    e.OnMessage(peer, CatalogueOf(std::move(catalogue)));
    e.TakeActions();
  };
  // One snapshot over its limit.
  activate("p", {{"d", 100}, {"d3", 100}});
  for (uint32_t i = 1; i <= 3; ++i) e.OnMessage("p", chunk("d", i));
  EXPECT_EQ(CloseReason(e.TakeActions()), "");
  EXPECT_GE(e.snapshot_memory_held(), 900u << 10) << "counts what is held, not less";
  e.OnMessage("p", chunk("d", 4));
  EXPECT_NE(CloseReason(e.TakeActions()).find("for it, over the limit of 1048576"),
            std::string::npos);
  e.OnPeerGone("p");
  EXPECT_EQ(e.snapshot_memory_held(), 0u);
  // Two snapshots from one peer, each within its limit, over the peer's.
  activate("p", {{"d", 100}, {"d3", 100}});
  for (uint32_t i = 1; i <= 2; ++i) e.OnMessage("p", chunk("d", i));
  e.OnMessage("p", chunk("d3", 1));
  EXPECT_EQ(CloseReason(e.TakeActions()), "");
  e.OnMessage("p", chunk("d3", 2));
  EXPECT_NE(CloseReason(e.TakeActions()).find("for snapshots from p, over the limit"),
            std::string::npos);
  e.OnPeerGone("p");
  EXPECT_EQ(e.snapshot_memory_held(), 0u);
  // Two peers, each within its limit, over the node's: the one holding the most
  // goes (p, parked on a half-sent snapshot), not q, whose chunk came last.
  auto small = [](const std::string& device, uint32_t index) {
    wire::Envelope m = ChunkOf(50, 100, index, 200u << 10);
    m.mutable_snapshot()->mutable_header()->set_device(device);
    return m;
  };
  activate("p", {{"d", 100}});
  activate("q", {{"d2", 100}});
  for (uint32_t i = 1; i <= 5; ++i) e.OnMessage("p", small("d", i));
  for (uint32_t i = 1; i <= 2; ++i) e.OnMessage("q", small("d2", i));
  EXPECT_EQ(CloseReason(e.TakeActions()), "");
  e.OnMessage("q", small("d2", 3));
  auto over = e.TakeActions();
  std::string closed;
  for (const auto& a : over) {
    if (a.kind == Action::Kind::kClose) closed += a.peer + ": " + a.reason + "; ";
  }
  EXPECT_EQ(closed.rfind("p: snapshots from p hold ", 0), 0u) << closed;
  EXPECT_NE(closed.find("over its limit of 1572864"), std::string::npos) << closed;
  EXPECT_EQ(closed.find("q: "), std::string::npos) << closed;
  e.OnMessage("q", small("d2", 4));
  EXPECT_EQ(CloseReason(e.TakeActions()), "") << "q goes on";
}

// A snapshot is staged on disk in parts as it comes: memory holds the part in
// hand and the one on its way to disk, whatever the snapshot's size; the last
// part goes with the install, under the same staging id, chunks numbered on.
TEST(EngineTest, SnapshotsAreStagedInPartsAndInstalledFromDisk) {
  SyncOptions o;
  o.stage_part_bytes = 250u << 10;
  o.initial_credit_bytes = 64u << 20;
  Engine e(o);
  FollowDThroughSrc(e);
  std::vector<Action> parts;
  uint64_t peak = 0;
  uint32_t next_first = 1;
  for (uint32_t i = 1; i <= 20; ++i) {
    e.OnMessage("src", ChunkOf(50, 20, i, 100u << 10));
    peak = std::max(peak, e.snapshot_memory_held());
    for (auto& a : e.TakeActions()) {
      if (a.kind != Action::Kind::kStage && a.kind != Action::Kind::kInstall) continue;
      EXPECT_EQ(a.snapshot.first_chunk, next_first) << "parts follow each other";
      next_first += static_cast<uint32_t>(a.snapshot.encoded_chunks.size());
      parts.push_back(std::move(a));
      // The journal staged it: its memory is free, its credit comes back.
      e.OnApplyDone("src", "d", Status::Ok(), parts.back().credit);
    }
  }
  ASSERT_GE(parts.size(), 5u);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    EXPECT_EQ(parts[i].kind, Action::Kind::kStage);
    EXPECT_EQ(parts[i].stage_id, parts[0].stage_id);
    EXPECT_NE(parts[i].credit, 0u) << "credit is granted once a part is on disk";
  }
  EXPECT_EQ(parts.back().kind, Action::Kind::kInstall);
  EXPECT_EQ(parts.back().stage_id, parts[0].stage_id);
  EXPECT_EQ(next_first, 21u) << "every chunk went to the journal once";
  EXPECT_LT(peak, 500u << 10) << "memory held the part in hand, not the snapshot";
  EXPECT_EQ(e.snapshot_memory_held(), 0u);
  EXPECT_EQ(e.snapshot_bytes_staged(), 0u) << "the install took the staging over";
  for (const auto& a : e.TakeActions()) {
    EXPECT_NE(a.kind, Action::Kind::kDropStage) << "an installed staging is not dropped";
  }
}

// A chunk past the chunk limit is refused when it arrives, before it is held.
TEST(EngineTest, AChunkOverTheLimitClosesThePeerAtOnce) {
  Engine e;
  FollowDThroughSrc(e);
  e.OnMessage("src", ChunkOf(50, 4, 1, journal::kMaxChunkWireBytes + 1));
  EXPECT_NE(CloseReason(e.TakeActions()).find("over the limit of"), std::string::npos);
  EXPECT_EQ(e.snapshot_memory_held(), 0u);
}

// A transfer given up (the peer went away, the header changed) leaves its
// staging for the journal to delete; one that never staged a part leaves none.
TEST(EngineTest, AGivenUpStagingIsDropped) {
  SyncOptions o;
  o.stage_part_bytes = 150u << 10;
  Engine e(o);
  FollowDThroughSrc(e);
  e.OnMessage("src", ChunkOf(50, 10, 1, 100u << 10));
  e.OnMessage("src", ChunkOf(50, 10, 2, 100u << 10));
  auto staged = Of(e.TakeActions(), Action::Kind::kStage);
  ASSERT_EQ(staged.size(), 1u);
  e.OnApplyDone("src", "d", Status::Ok(), staged[0].credit);
  EXPECT_GT(e.snapshot_bytes_staged(), 200u << 10);
  // A newer snapshot replaces it before it is whole.
  e.OnMessage("src", ChunkOf(60, 10, 1, 10));
  auto drops = Of(e.TakeActions(), Action::Kind::kDropStage);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].stage_id, staged[0].stage_id);
  EXPECT_EQ(drops[0].device, "d");
  EXPECT_LT(e.snapshot_bytes_staged(), 1u << 10) << "the new one's chunk alone";
  // Nothing of the new one was staged: its end asks for no drop.
  e.OnPeerGone("src");
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kDropStage).empty());
  EXPECT_EQ(e.snapshot_bytes_staged(), 0u);
  EXPECT_EQ(e.snapshot_memory_held(), 0u);
}

// What all transfers may stage on disk is bounded for the node: past it, the
// peer staging the most is closed.
TEST(EngineTest, StagedBytesAreBoundedPerNode) {
  SyncOptions o;
  o.stage_part_bytes = 100u << 10;
  o.max_staged_bytes_total = 900u << 10;
  Engine e(o);
  e.SetLocal({});
  auto chunk = [](const std::string& device, uint32_t index) {
    wire::Envelope m = ChunkOf(50, 100, index, 200u << 10);
    m.mutable_snapshot()->mutable_header()->set_device(device);
    return m;
  };
  for (const auto& [peer, device] : {std::pair{"p", "d"}, std::pair{"q", "d2"}}) {
    e.OnPeerActive(peer);
    e.OnMessage(peer, CatalogueOf({{device, 100}}));
    e.TakeActions();
  }
  size_t drops = 0;
  auto feed = [&](const std::string& peer, const std::string& device, uint32_t i) {
    e.OnMessage(peer, chunk(device, i));
    std::string closed;
    for (const auto& a : e.TakeActions()) {
      if (a.kind == Action::Kind::kDropStage) ++drops;
      if (a.kind == Action::Kind::kStage) e.OnApplyDone(peer, device, Status::Ok(), 0);
      if (a.kind == Action::Kind::kClose) closed += a.peer + ": " + a.reason + "; ";
    }
    return closed;
  };
  for (uint32_t i = 1; i <= 3; ++i) EXPECT_EQ(feed("p", "d", i), "");
  EXPECT_EQ(feed("q", "d2", 1), "");
  const std::string closed = feed("q", "d2", 2);
  EXPECT_EQ(closed.rfind("p: snapshots from p hold ", 0), 0u) << closed;
  EXPECT_NE(closed.find("staged on disk"), std::string::npos) << closed;
  e.OnPeerGone("p");
  for (const auto& a : e.TakeActions()) drops += a.kind == Action::Kind::kDropStage;
  EXPECT_EQ(drops, 1u) << "p's staging is deleted";
  EXPECT_EQ(feed("q", "d2", 3), "") << "q goes on";
}

TEST(EngineTest, WhatArrivesForAReplacedSubscriptionIsDropped) {
  Engine e;
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 100000}}, true));
  uint64_t sub = 0;
  for (const auto& a :
       Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe)) {
    sub = a.message.subscribe().sub();
  }
  ASSERT_NE(sub, 0u);
  // 40 MiB stamped with an earlier subscription: more than any credit granted.
  for (int i = 0; i < 40; ++i) {
    wire::Envelope m;
    m.mutable_events()->set_device("d");
    m.mutable_events()->set_sub(sub + 1000);
    auto* r = m.mutable_events()->add_records();
    r->set_seq(static_cast<uint64_t>(i) + 1);
    r->set_payload(std::string(1 << 20, 'x'));
    e.OnMessage("src", m);
  }
  auto after_stale = e.TakeActions();
  EXPECT_EQ(CloseReason(after_stale), "") << "stale messages are not this subscription's";
  EXPECT_TRUE(Of(after_stale, Action::Kind::kApply).empty());
  wire::Envelope current;
  current.mutable_events()->set_device("d");
  current.mutable_events()->set_sub(sub);
  current.mutable_events()->add_records()->set_seq(1);
  e.OnMessage("src", current);
  EXPECT_EQ(Of(e.TakeActions(), Action::Kind::kApply).size(), 1u);
}

TEST(EngineTest, AGrantForAReplacedSubscriptionIsNotThisOnes) {
  Engine e;
  e.SetLocal({Info("d", 10, true)});
  e.OnPeerActive("p");
  e.TakeActions();
  wire::Envelope s;
  s.mutable_subscribe()->set_device("d");
  s.mutable_subscribe()->set_from(1);
  s.mutable_subscribe()->set_credit(0);
  s.mutable_subscribe()->set_sub(7);
  e.OnMessage("p", s);
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kRead).empty()) << "no credit yet";
  wire::Envelope stale;
  stale.mutable_credit()->set_device("d");
  stale.mutable_credit()->set_bytes(1 << 20);
  stale.mutable_credit()->set_sub(6);
  e.OnMessage("p", stale);
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kRead).empty()) << "a stale grant";
  wire::Envelope grant = stale;
  grant.mutable_credit()->set_sub(7);
  e.OnMessage("p", grant);
  EXPECT_EQ(Of(e.TakeActions(), Action::Kind::kRead).size(), 1u);
}

TEST(EngineTest, EventsQueuedBehindAWriteGoIntoTheNextOne) {
  Engine e;
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 10}}, true));
  (void)e.TakeActions();
  uint64_t queued_bytes = 0;
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    wire::Envelope m;
    m.mutable_events()->set_device("d");
    m.mutable_events()->add_records()->set_seq(seq);
    if (seq > 1) queued_bytes += m.ByteSizeLong();
    e.OnMessage("src", m);
  }
  auto first = Of(e.TakeActions(), Action::Kind::kApply);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].records.size(), 1u);
  e.OnApplyDone("src", "d", Status::Ok(), first[0].credit);
  auto next = Of(e.TakeActions(), Action::Kind::kApply);
  ASSERT_EQ(next.size(), 1u) << "one write for the three queued messages";
  ASSERT_EQ(next[0].records.size(), 3u);
  EXPECT_EQ(next[0].records[0].seq(), 2u);
  EXPECT_EQ(next[0].records[2].seq(), 4u);
  EXPECT_EQ(next[0].credit, queued_bytes);
}

// "d" followed through its source "src", whose record 1 is being applied.
void ApplyingOneRecordFromSrc(Engine& e) {
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 10}}, true));
  wire::Envelope m;
  m.mutable_events()->set_device("d");
  m.mutable_events()->add_records()->set_seq(1);
  e.OnMessage("src", m);
  (void)e.TakeActions();
}

TEST(EngineTest, RefusedRecordsCloseThePeer) {
  Engine e;
  ApplyingOneRecordFromSrc(e);
  e.OnApplyDone("src", "d", Status::Corruption("record 1 does not chain"), 10);
  auto closes = Of(e.TakeActions(), Action::Kind::kClose);
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_NE(closes[0].reason.find("does not chain"), std::string::npos);
  EXPECT_EQ(e.Via("d"), "");
}

TEST(EngineTest, OurOwnStorageFailureNeverBlamesThePeer) {
  Engine e;
  ApplyingOneRecordFromSrc(e);
  e.OnApplyDone("src", "d", Status::IOError("journal/000012.log: Too many open files"),
                10);
  auto actions = e.TakeActions();
  EXPECT_TRUE(Of(actions, Action::Kind::kClose).empty());
  EXPECT_EQ(Of(actions, Action::Kind::kSend, wire::Envelope::kUnsubscribe).size(), 1u);
  EXPECT_EQ(e.Via("d"), "");
  e.OnMessage("src", CatalogueOf({{"d", 11}}, true));  // not before the retry
  EXPECT_TRUE(
      Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).empty());
  e.RetryPaused();
  auto again = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].peer, "src");
  EXPECT_EQ(again[0].message.subscribe().from(), 1u);
}

TEST(EngineTest, AForkStopsFollowingThatPeerForTheDevice) {
  Engine e;
  e.OnPeerActive("p");
  e.OnMessage("p", CatalogueOf({{"d", 10}}));
  wire::Envelope m;
  m.mutable_events()->set_device("d");
  m.mutable_events()->add_records()->set_seq(1);
  e.OnMessage("p", m);
  (void)e.TakeActions();
  e.OnApplyDone("p", "d", Status::Fork("fork in d at 1"), 10);
  auto actions = e.TakeActions();
  EXPECT_EQ(Of(actions, Action::Kind::kSend, wire::Envelope::kUnsubscribe).size(), 1u);
  EXPECT_TRUE(Of(actions, Action::Kind::kClose).empty());
  EXPECT_EQ(e.Via("d"), "");
}

// One Events message of "d" holding record `seq`.
wire::Envelope EventOf(uint64_t seq) {
  wire::Envelope m;
  m.mutable_events()->set_device("d");
  m.mutable_events()->add_records()->set_seq(seq);
  return m;
}

// "d" (10 at its source "src") followed through "src" and seq 1 received:
// returns the journal write that started, still in flight.
Action ApplyOfSeq1InFlight(Engine& e) {
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 10}}, true));
  e.OnMessage("src", EventOf(1));
  auto applies = Of(e.TakeActions(), Action::Kind::kApply);
  EXPECT_EQ(applies.size(), 1u);
  return applies.empty() ? Action() : std::move(applies[0]);
}

// Discovery replaces a connection to the same peer with OnPeerGone then
// OnPeerActive. A device whose apply was still running when the old connection
// went must be subscribed again on the new one (the fault harness found a
// subscriber stuck 64 events behind its relay for good after such a swap).
TEST(EngineTest, AReplacedConnectionSubscribesAgainWhileAnApplyRuns) {
  Engine e;
  const Action apply = ApplyOfSeq1InFlight(e);
  e.OnPeerGone("src");
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 10}}, true));
  auto subs = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe);
  ASSERT_EQ(subs.size(), 1u) << "not subscribed on the new connection";
  EXPECT_EQ(subs[0].peer, "src");
  EXPECT_EQ(e.Via("d"), "src");
  e.OnMessage("src", EventOf(2));
  EXPECT_TRUE(Of(e.TakeActions(), Action::Kind::kApply).empty())
      << "two journal writes in flight for one device";
  e.OnApplyDone("src", "d", Status::Ok(), apply.credit);
  auto next = e.TakeActions();
  EXPECT_TRUE(Of(next, Action::Kind::kSend, wire::Envelope::kCredit).empty())
      << "credit for what the old connection delivered";
  EXPECT_EQ(Of(next, Action::Kind::kApply).size(), 1u);
}

TEST(EngineTest, AnApplyOutlivingItsPeerLeavesTheDeviceToBeFollowedAgain) {
  Engine e;
  const Action apply = ApplyOfSeq1InFlight(e);
  e.OnPeerGone("src");
  e.OnApplyDone("src", "d", Status::Ok(), apply.credit);
  EXPECT_TRUE(e.TakeActions().empty());
  e.OnPeerActive("src");
  e.OnMessage("src", CatalogueOf({{"d", 10}}, true));
  EXPECT_EQ(Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).size(),
            1u);
}

// A peer that stores events only after our head would send a snapshot beyond it
// that the journal cannot check against our events (issue 13, defect 4): the
// device is not followed through it, status says why, and the operator's resync
// lets it be; a Gap from the journal (a catalogue that did not say so) leaves
// that peer for the device without blaming it.
TEST(EngineTest, ASnapshotBeyondOurHeadIsNotFollowedUnlessTheOperatorAcceptsIt) {
  Engine e;
  e.SetLocal({Info("d", 10)});
  e.OnPeerActive("p");
  (void)e.TakeActions();
  wire::Envelope c = CatalogueOf({{"d", 600}});
  c.mutable_catalogue()->mutable_entries(0)->set_first(500);
  c.mutable_catalogue()->mutable_entries(0)->set_snapshot(499);
  e.OnMessage("p", c);
  EXPECT_TRUE(
      Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).empty());
  EXPECT_NE(e.Stalled("d").find("cairn resync d"), std::string::npos) << e.Stalled("d");
  EXPECT_EQ(e.FollowerHeads()["d"]["p"], 600u);
  e.AcceptGap("d");
  auto subs = Of(e.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe);
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].message.subscribe().from(), 11u);
  EXPECT_EQ(e.Stalled("d"), "");
  // The snapshot is installed: the acceptance is used up.
  journal::StreamInfo after = Info("d", 499);
  after.first = 500;
  after.snapshot = 499;
  e.OnLocalChange(after);

  // A peer whose catalogue looked fine but whose snapshot the journal refused.
  Engine g;
  g.SetLocal({Info("d", 10)});
  g.OnPeerActive("q");
  g.OnMessage("q", CatalogueOf({{"d", 600}}));
  ASSERT_EQ(Of(g.TakeActions(), Action::Kind::kSend, wire::Envelope::kSubscribe).size(),
            1u);
  g.OnApplyDone("q", "d", Status::Gap("beyond our head"), 0);
  auto acts = g.TakeActions();
  EXPECT_TRUE(Of(acts, Action::Kind::kClose).empty());
  EXPECT_EQ(Of(acts, Action::Kind::kSend, wire::Envelope::kUnsubscribe).size(), 1u);
  EXPECT_EQ(g.Via("d"), "");
  EXPECT_NE(g.Stalled("d"), "");
}

// Issue 14, item 1: a catalogue is a claim. Only the node named like a device is
// its source; a peer that claims to be far ahead but sends nothing is passed
// over after stall_demote_ticks seconds, its claim no longer counts, and it gets
// another chance after demote_for_ticks.
TEST(EngineTest, AFalseSourceIsNotBelievedAndAStalledClaimIsDemoted) {
  SyncOptions o;
  o.stall_demote_ticks = 3;
  o.demote_for_ticks = 5;
  o.forget_demotion_ticks = 8;
  Engine e(o);
  e.SetLocal({Info("d", 10)});
  e.OnPeerActive("liar");
  e.OnPeerActive("h");
  (void)e.TakeActions();
  e.OnMessage("liar", CatalogueOf({{"d", uint64_t{1} << 62}}, /*source=*/true));
  e.OnMessage("h", CatalogueOf({{"d", 20}}));
  EXPECT_EQ(e.SourcePeer("d"), "");  // "liar" is not named d
  EXPECT_EQ(e.Via("d"), "liar");     // but it claims the most
  (void)e.TakeActions();
  for (int i = 0; i < 2; ++i) e.CheckProgress();
  EXPECT_EQ(e.Via("d"), "liar");  // not yet
  e.CheckProgress();
  auto acts = e.TakeActions();
  EXPECT_EQ(e.Via("d"), "h");
  auto logs = Of(acts, Action::Kind::kLog);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].reason.find("peer liar claims 'd'"), std::string::npos)
      << logs[0].reason;
  EXPECT_EQ(Of(acts, Action::Kind::kSend, wire::Envelope::kUnsubscribe).size(), 1u);
  EXPECT_EQ(e.PeerLast("d"), 20u);                      // its claim no longer counts
  EXPECT_TRUE(Of(acts, Action::Kind::kClose).empty());  // not closed: maybe only slow

  // h delivers: never demoted, however long it takes.
  auto h_delivers = [&] {
    wire::Envelope ev;
    ev.mutable_events()->set_device("d");
    e.OnMessage("h", ev);
    e.OnApplyDone("h", "d", Status::Ok(), 0);
  };
  for (int i = 0; i < 4; ++i) {
    h_delivers();
    e.CheckProgress();
    EXPECT_EQ(e.Via("d"), "h");
  }
  // After 5 s the liar is back on trial (its claim counts, it is followed again)
  // and, stalling again, is passed over twice as long.
  h_delivers();
  e.CheckProgress();
  EXPECT_EQ(e.PeerLast("d"), uint64_t{1} << 62);
  EXPECT_EQ(e.Via("d"), "liar");
  (void)e.TakeActions();
  for (int i = 0; i < 3; ++i) e.CheckProgress();
  EXPECT_EQ(e.Via("d"), "h");
  logs = Of(e.TakeActions(), Action::Kind::kLog);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].reason.find("for 10 s"), std::string::npos) << logs[0].reason;

  // It stops claiming more; once its demotion has been over for
  // forget_demotion_ticks (8 here), it is forgotten: a new stall starts again at 5 s.
  e.OnMessage("liar", CatalogueOf({{"d", 20}}));
  for (int i = 0; i < 10 + 8; ++i) {
    h_delivers();
    e.CheckProgress();
  }
  e.OnMessage("liar", CatalogueOf({{"d", uint64_t{1} << 62}}));
  (void)e.TakeActions();
  EXPECT_EQ(e.Via("d"), "liar");
  for (int i = 0; i < 3; ++i) e.CheckProgress();
  logs = Of(e.TakeActions(), Action::Kind::kLog);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].reason.find("for 5 s"), std::string::npos) << logs[0].reason;
}

TEST(EngineTest, TheRealSourceIsPreferredOverAnyClaim) {
  Engine e;
  e.SetLocal({Info("d", 10)});
  e.OnPeerActive("liar");
  e.OnPeerActive("d");
  e.OnMessage("liar", CatalogueOf({{"d", uint64_t{1} << 62}}, /*source=*/true));
  e.OnMessage("d", CatalogueOf({{"d", 20}}, /*source=*/true));
  EXPECT_EQ(e.SourcePeer("d"), "d");
  EXPECT_EQ(e.Via("d"), "d");
}

// A first round-trip time ranks a peer at once; later swings (a loaded machine's
// times move by half or more all the time) replan at most every 10 seconds, so an
// idle node does not replan every device on every probe.
TEST(EngineTest, RoundTripTimesReplanAtOnceFirstAndThenAtMostEveryTenSeconds) {
  Engine e;
  e.OnPeerActive("p1");
  e.OnPeerActive("p2");
  e.OnMessage("p1", CatalogueOf({{"d", 10}}));
  e.OnMessage("p2", CatalogueOf({{"d", 10}}));
  (void)e.TakeActions();
  ASSERT_EQ(e.Via("d"), "p1");  // equal: the smaller node id
  e.OnPeerRtt("p1", 20'000);
  e.OnPeerRtt("p2", 2'000);  // its first sample: ten times faster
  EXPECT_EQ(e.Via("d"), "p2");
  e.OnPeerRtt("p2", 40'000);
  e.OnPeerRtt("p1", 1'000);
  EXPECT_EQ(e.Via("d"), "p2") << "a swing replanned at once";
  e.RetryPaused();  // the next second: planned
  EXPECT_EQ(e.Via("d"), "p1");
  // Another swing right after waits until ten seconds have passed since.
  e.OnPeerRtt("p1", 40'000);
  e.OnPeerRtt("p2", 1'000);
  for (int tick = 1; tick < 10; ++tick) {
    e.RetryPaused();
    ASSERT_EQ(e.Via("d"), "p1") << "replanned after " << tick << " s";
  }
  e.RetryPaused();
  EXPECT_EQ(e.Via("d"), "p2") << "the pending swing was never planned";
}

}  // namespace
}  // namespace cairn::sync
