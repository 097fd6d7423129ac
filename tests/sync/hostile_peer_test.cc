// A trusted peer turned hostile: m holds a valid certificate of the network and
// relays a's device to the victim v, but tampers with what it sends (through
// SyncNode's outbound filter). Every attack must be refused with a reason that
// shows in v's peer status, leave v's copy exactly as it was, and not stop v from
// converging once an honest relay h is up. The topology, peer exchange off:
//
//   a ── m ── v ── h ── a        (h is up only for the healing step)
//
// Complements sync_test.cc (a relay that changes a payload) and the journal's
// replica tests (the same checks without a network).
#include "journal/chain.h"
#include "sync_fixture.h"

namespace cairn::sync::testing {
namespace {

// What v holds of a device: compared before and after an attack.
struct Held {
  uint64_t first = 0, last = 0, snapshot = 0;
  std::string head;
  std::vector<journal::KvItem> view;
  size_t records = 0;
  bool operator==(const Held&) const = default;
};

class HostilePeerTest : public SyncTest {
 protected:
  // a with `events` notes (and a few KV puts first), m caught up with it, h
  // made (so its port is known) but stopped.
  void SetUpLine(int events, bool snapshot = false) {
    Start("a", Seeded({}, false));
    Start("h", Seeded({"a"}, false));
    Stop("h");
    Start("m", Seeded({"a"}, false));
    Node("m").sync->set_log([](const std::string&) {});
    Node("m").sync->set_outbound_filter_for_test(
        [this](const std::string& peer, wire::Envelope& e) {
          if (peer == "v" && tamper_) tamper_(e);
        });
    for (int i = 0; i < 5; ++i) {
      ASSERT_OK(J("a").Append(
          "a", {{"kv.put",
                 R"({"store":"s","key":"k)" + std::to_string(i) + R"(","value":1})"}}));
    }
    if (snapshot) ASSERT_OK(J("a").Snapshot("a"));
    Append("a", events);
    ASSERT_TRUE(RunUntilConverged({"a", "m"}, {"a"}));
    if (snapshot) {
      // a and m hold the snapshot beside the events; as retention would once
      // their followers hold them, they delete the events, so v is served the
      // snapshot.
      ASSERT_TRUE(RunUntil([&] { return J("m").Stream("a")->snapshot == 5u; }));
      ASSERT_OK(J("m").Trim("a", 5));
      ASSERT_OK(J("a").Trim("a", 5));
    }
  }

  void StartVictim() {
    Start("v", Seeded({"m", "h"}, false));
    Node("v").sync->set_log([](const std::string&) {});
  }

  // Runs until v's status row of m carries a reason containing `what`.
  bool Refused(const std::string& what) {
    return RunUntil([&] {
      for (const auto& p : Node("v").discovery->Snapshot()) {
        if (p.node_id == "m" && p.reason.find(what) != std::string::npos) {
          reason_ = p.reason;
          return true;
        }
      }
      return false;
    });
  }

  Held HeldAt(const std::string& node, const std::string& device) {
    Held h;
    auto s = J(node).Stream(device);
    if (!s.ok()) return h;
    h.first = s->first;
    h.last = s->last;
    h.snapshot = s->snapshot;
    h.head = s->head_hash;
    h.view = *J(node).KeptView(device);
    if (s->last >= s->first) h.records = J(node).Read(device, s->first, 1u << 30)->size();
    return h;
  }

  // h comes up; v converges with a through it, and verifies.
  void HealsThroughAnHonestPeer() {
    Start("h", Seeded({"a"}, false));
    ASSERT_TRUE(RunUntilConverged({"a", "h", "v"}, {"a"}, 30'000));
    EXPECT_OK(J("v").Verify("a"));
    EXPECT_EQ(HeldAt("v", "a").records, HeldAt("a", "a").records);
  }

  // Waits for v to hold a's stream up to `last` (honestly, through m).
  void VictimCaughtUpTo(uint64_t last) {
    ASSERT_TRUE(RunUntil([&] { return Last("v", "a") == last; })) << Last("v", "a");
  }

  // v holds 1..105 through m; m tampers with the next live chunk of 30.
  void RefusesTheNextChunk(std::function<void(wire::Events&)> tamper,
                           const std::string& reason) {
    SetUpLine(100);
    StartVictim();
    VictimCaughtUpTo(105);
    const Held before = HeldAt("v", "a");
    tamper_ = [tamper](wire::Envelope& e) {
      if (e.has_events() && e.events().records_size() >= 2) tamper(*e.mutable_events());
    };
    Append("a", 30);
    ASSERT_TRUE(Refused(reason)) << reason_;
    EXPECT_EQ(HeldAt("v", "a"), before) << "something of the chunk was stored";
    HealsThroughAnHonestPeer();
  }

  std::shared_ptr<journal::DeviceSigner> SignerOf(const std::string& id) {
    auto s = journal::DeviceSigner::FromPem(Node(id).device.cert_pem,
                                            Node(id).device.key_pem, *ca_);
    CHECK(s.ok()) << s.status().ToString();
    return *s;
  }

  std::function<void(wire::Envelope&)> tamper_;
  std::string reason_;
};

// ---------------------------------------------------------------- forged events

// Issue 14, item 1: m, a peer with a valid certificate, claims to be the source of
// a and to hold 2^62 of it, and sends nothing of it. v used to follow a through
// m first (a source is always preferred) and received nothing for as long as m
// stayed connected. Now only the node named a is believed as a's source, and a
// followed peer that claims more than it sends is passed over within
// stall_demote_ticks seconds: v replicates a through h.
TEST_F(HostilePeerTest, AFalseClaimDoesNotHaltReplication) {
  SetUpLine(50);
  Start("h", Seeded({"a"}, false));
  ASSERT_TRUE(RunUntilConverged({"a", "h", "m"}, {"a"}));
  tamper_ = [](wire::Envelope& e) {
    if (e.has_catalogue()) {
      for (auto& entry : *e.mutable_catalogue()->mutable_entries()) {
        if (entry.device() != "a") continue;
        entry.set_source(true);
        entry.set_last(uint64_t{1} << 62);
      }
    } else if (e.has_stream_header() || e.has_events() || e.has_snapshot()) {
      e.Clear();
      e.mutable_ping()->set_nonce(1);  // what it sends instead of a's records
    }
  };
  NodeConfig v = Seeded({"m", "h"}, false);
  v.sync.stall_demote_ticks = 3;
  Start("v", v);
  std::vector<std::string> log;
  Node("v").sync->set_log([&](const std::string& line) { log.push_back(line); });
  ASSERT_TRUE(RunUntil([&] { return Last("v", "a") == Last("a", "a"); }, 30'000))
      << "v holds " << Last("v", "a") << " of " << Last("a", "a");
  EXPECT_EQ(Node("v").sync->engine().Via("a"), "h");
  bool named = false;
  for (const auto& line : log)
    named |= line.find("peer m claims 'a'") != std::string::npos;
  EXPECT_TRUE(named) << "the log names neither the offender nor its claim";
  EXPECT_OK(J("v").Verify("a"));
}

TEST_F(HostilePeerTest, EventsForgedAndSignedWithTheRelaysOwnKeyAreRefused) {
  SetUpLine(40);
  // m re-chains a's events from the genesis of its own key, signs them with its
  // own device key and sends its own certificate: a perfect forgery but the key.
  auto m_key = SignerOf("m");
  tamper_ = [&, m_key](wire::Envelope& e) {
    if (e.has_stream_header() && e.stream_header().device() == "a") {
      e.mutable_stream_header()->set_device_cert(m_key->public_key()->cert_der());
    }
    if (!e.has_events() || e.events().device() != "a") return;
    std::string prev = journal::GenesisHash("a", m_key->public_key()->raw());
    for (auto& r : *e.mutable_events()->mutable_records()) {
      r.set_payload("{\"forged\":true}");
      r.set_hash(journal::ChainHashOf(prev, "a", r));
      if (!r.sig().empty())
        r.set_sig(m_key->Sign(journal::EventSigMessage("a", r.seq(), r.hash())));
      prev = r.hash();
    }
  };
  StartVictim();
  ASSERT_TRUE(Refused("device certificate has CN 'm', expected 'a'")) << reason_;
  EXPECT_EQ(HeldAt("v", "a"), Held{}) << "something of the forged stream was stored";
  HealsThroughAnHonestPeer();
}

// ---------------------------------------------------------------- replays

TEST_F(HostilePeerTest, ReplayedRecordsBeforeNewOnesAreSkippedNeverStoredTwice) {
  SetUpLine(100);
  StartVictim();
  VictimCaughtUpTo(105);
  // The next live chunk arrives with every record v already holds in front.
  const auto old = *J("m").Read("a", 1, 1000);
  tamper_ = [&](wire::Envelope& e) {
    if (!e.has_events() || e.events().records_size() == 0 ||
        e.events().records(0).seq() != 106) {
      return;
    }
    wire::Events replayed;
    replayed.set_device("a");
    for (const auto& r : old) *replayed.add_records() = r;
    for (const auto& r : e.events().records()) *replayed.add_records() = r;
    *e.mutable_events() = replayed;
  };
  Append("a", 50);
  ASSERT_TRUE(RunUntilConverged({"a", "m", "v"}, {"a"}));
  EXPECT_EQ(HeldAt("v", "a"), HeldAt("a", "a")) << "a replayed record was stored twice";
  EXPECT_OK(J("v").Verify("a"));
}

TEST_F(HostilePeerTest, AnOldChunkAfterNewerOnesChangesNothing) {
  SetUpLine(100);
  StartVictim();
  VictimCaughtUpTo(105);
  const auto old = *J("m").Read("a", 1, 50);
  // m replaces the next chunk it relays by the first 50 records, already held.
  tamper_ = [&](wire::Envelope& e) {
    if (!e.has_events()) return;
    e.mutable_events()->clear_records();
    for (const auto& r : old) *e.mutable_events()->add_records() = r;
  };
  const Held before = HeldAt("v", "a");
  Append("a", 20);
  ASSERT_TRUE(RunUntil([&] { return Last("m", "a") == 125u; }));
  ASSERT_FALSE(RunUntil([&] { return !(HeldAt("v", "a") == before); }, 1'000))
      << "the replayed chunk changed v's copy";
  // Not refused: identical records are duplicates, and a relay that withholds
  // what comes next cannot be told from a slow one: v waits on m until m goes.
  Stop("m");
  HealsThroughAnHonestPeer();
}

// ---------------------------------------------------------------- reordering

TEST_F(HostilePeerTest, AChunkWithSwappedRecordsIsRefusedAndNothingOfItStored) {
  RefusesTheNextChunk([](wire::Events& e) { e.mutable_records()->SwapElements(0, 1); },
                      "out of order or have a gap");
}

TEST_F(HostilePeerTest, AChunkThatSkipsARecordIsRefusedAsAGap) {
  RefusesTheNextChunk([](wire::Events& e) { e.mutable_records()->DeleteSubrange(0, 1); },
                      "gap in 'a': we hold up to 105, got 107");
}

// ---------------------------------------------------------------- snapshots

class HostileSnapshotTest : public HostilePeerTest {
 protected:
  // a: 5 KV puts, a snapshot at 5, 30 notes; v fresh, served the snapshot first.
  void Attack(std::function<void(wire::Snapshot&)> tamper, const std::string& reason) {
    SetUpLine(30, /*snapshot=*/true);
    ASSERT_EQ(J("m").Stream("a")->snapshot, 5u);
    tamper_ = [tamper](wire::Envelope& e) {
      if (e.has_snapshot()) tamper(*e.mutable_snapshot());
    };
    StartVictim();
    ASSERT_TRUE(Refused(reason)) << reason_;
    EXPECT_EQ(HeldAt("v", "a"), Held{}) << "something of the snapshot was stored";
    EXPECT_FALSE(J("v").KvGet("a", "s", "k1").ok() &&
                 J("v").KvGet("a", "s", "k1")->has_value());
    tamper_ = nullptr;
    HealsThroughAnHonestPeer();
    EXPECT_EQ(J("v").Stream("a")->snapshot, 5u);
  }

  static void SetFirstValue(wire::Snapshot& s, const std::string& json) {
    if (s.chunk().entries_size() > 0) {
      s.mutable_chunk()->mutable_entries(0)->mutable_entry()->set_value(json);
    }
  }
};

TEST_F(HostileSnapshotTest, ATamperedKvEntryIsRefused) {
  Attack([](wire::Snapshot& s) { SetFirstValue(s, "666"); },
         "entries do not match the signed digest");
}

TEST_F(HostileSnapshotTest, ATamperedSeqIsRefused) {
  Attack([](wire::Snapshot& s) { s.mutable_header()->set_seq(s.header().seq() + 3); },
         "signature does not verify with the device key");
}

TEST_F(HostileSnapshotTest, ASnapshotReSignedByAnotherDeviceKeyIsRefused) {
  // The relay changes a value, recomputes the digest honestly and signs the
  // header with its own device key.
  std::shared_ptr<journal::DeviceSigner> m_key;
  Attack(
      [&](wire::Snapshot& s) {
        if (!m_key) m_key = SignerOf("m");
        SetFirstValue(s, "666");
        journal::SnapshotDigester digest;
        for (const auto& entry : s.chunk().entries()) digest.Add(entry);
        s.mutable_header()->set_digest(digest.Final());
        s.mutable_header()->set_sig(m_key->Sign(journal::SnapshotSigMessage(s.header())));
      },
      "signature does not verify with the device key");
}

}  // namespace
}  // namespace cairn::sync::testing
