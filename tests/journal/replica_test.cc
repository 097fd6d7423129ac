// Replication input: a source journal "a" and a replica "b" that only ever sees
// records through Apply().
#include <future>
#include <map>
#include <string_view>
#include <vector>

#include "journal/chain.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

class ReplicaTest : public JournalTest {
 protected:
  void SetUp() override {
    a_ = Open("a", {"d1"});
    b_ = Open("b", {});
  }
  std::unique_ptr<Journal> a_, b_;
};

TEST_F(ReplicaTest, AppliedStreamMatchesTheSourceAndVerifies) {
  ASSERT_OK(a_->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a_->Append("d1", Events(4)));
  auto out = b_->Apply("d1", CertOf("d1"), All(*a_, "d1"));
  ASSERT_OK(out);
  EXPECT_EQ(out->applied, 5u);
  EXPECT_EQ(out->last, 5u);
  EXPECT_EQ(b_->Stream("d1")->head_hash, a_->Stream("d1")->head_hash);
  EXPECT_FALSE(b_->Stream("d1")->source);
  EXPECT_EQ((*b_->KvGet("d1", "s", "k"))->value, "1");
  EXPECT_OK(b_->Verify("d1"));
}

// The commit tap hands over exactly the records a cursor would read back: on the
// source for appends, on the replica for what Apply committed (duplicates and
// records past the last signature are not committed, so not tapped either).
TEST_F(ReplicaTest, CommitTapSeesWhatIsStoredAndNothingElse) {
  std::map<std::string, std::vector<wire::Record>> tapped_a, tapped_b;
  std::vector<uint64_t> commits_b;
  auto tap_into = [](std::map<std::string, std::vector<wire::Record>>* out,
                     std::vector<uint64_t>* sizes) {
    return [out, sizes](const std::string& device,
                        const std::vector<std::string_view>& values) {
      if (sizes) sizes->push_back(values.size());
      for (auto v : values) {
        wire::Record r;
        ASSERT_TRUE(r.ParseFromArray(v.data(), static_cast<int>(v.size())));
        (*out)[device].push_back(std::move(r));
      }
    };
  };
  a_->SetCommitTap(tap_into(&tapped_a, nullptr));
  b_->SetCommitTap(tap_into(&tapped_b, &commits_b));
  ASSERT_OK(a_->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a_->Append("d1", Events(4)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  const auto stored = All(*a_, "d1");
  ASSERT_EQ(stored.size(), 7u);
  ASSERT_EQ(tapped_a["d1"].size(), 7u);
  for (size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(tapped_a["d1"][i].SerializeAsString(), stored[i].SerializeAsString()) << i;
  }
  EXPECT_FALSE(tapped_a["d1"][4].sig().empty()) << "a commit's last record is signed";

  auto first = stored;
  first.resize(6);  // 6 is unsigned: only 1..5 are covered
  ASSERT_OK(b_->Apply("d1", CertOf("d1"), first));
  ASSERT_OK(b_->Apply("d1", "", stored));  // 1..5 again, then 6 and 7
  const auto replica = All(*b_, "d1");
  ASSERT_EQ(tapped_b["d1"].size(), replica.size());
  for (size_t i = 0; i < replica.size(); ++i) {
    EXPECT_EQ(tapped_b["d1"][i].SerializeAsString(), replica[i].SerializeAsString()) << i;
  }
  EXPECT_EQ(commits_b, (std::vector<uint64_t>{5, 2}));
}

TEST_F(ReplicaTest, ApplyingTheSameRecordsTwiceAppliesThemOnce) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  ASSERT_OK(b_->Apply("d1", CertOf("d1"), All(*a_, "d1")));
  auto again = b_->Apply("d1", "", All(*a_, "d1"));
  ASSERT_OK(again);
  EXPECT_EQ(again->applied, 0u);
  EXPECT_EQ(again->duplicates, 3u);
  EXPECT_EQ(All(*b_, "d1").size(), 3u);
}

TEST_F(ReplicaTest, OverlappingChunkAppliesOnlyTheNewTail) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  ASSERT_OK(b_->Apply("d1", CertOf("d1"), All(*a_, "d1")));
  ASSERT_OK(a_->Append("d1", Events(2)));
  auto out = b_->Apply("d1", "", All(*a_, "d1", 2));
  ASSERT_OK(out);
  EXPECT_EQ(out->duplicates, 2u);
  EXPECT_EQ(out->applied, 2u);
  EXPECT_EQ(out->last, 5u);
}

TEST_F(ReplicaTest, OnlyRecordsCoveredByAVerifiedSignatureAreCommitted) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  ASSERT_OK(a_->Append("d1", Events(3)));  // signed at 3 and at 6
  auto records = All(*a_, "d1");
  records.pop_back();  // 4, 5 unsigned: not covered
  auto out = b_->Apply("d1", CertOf("d1"), records);
  ASSERT_OK(out);
  EXPECT_EQ(out->applied, 3u);
  EXPECT_EQ(out->pending, 2u);
  EXPECT_EQ(b_->Stream("d1")->last, 3u);
}

TEST_F(ReplicaTest, GapIsRefused) {
  ASSERT_OK(a_->Append("d1", Events(2)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  auto out = b_->Apply("d1", CertOf("d1"), All(*a_, "d1", 3));
  EXPECT_EQ(out.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(out.status().message().find("gap"), std::string::npos);
  EXPECT_FALSE(b_->Stream("d1").ok() && b_->Stream("d1")->last > 0);
}

TEST_F(ReplicaTest, ReorderedRecordsAreRefused) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  auto records = All(*a_, "d1");
  std::swap(records[0], records[1]);
  auto out = b_->Apply("d1", CertOf("d1"), records);
  EXPECT_EQ(out.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(out.status().message().find("out of order"), std::string::npos);
}

TEST_F(ReplicaTest, ForgedPayloadDoesNotChain) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  auto records = All(*a_, "d1");
  records[1].set_payload("forged");
  auto out = b_->Apply("d1", CertOf("d1"), records);
  EXPECT_TRUE(out.status().IsCorruption());
  EXPECT_NE(out.status().message().find("does not chain"), std::string::npos);
  EXPECT_FALSE(b_->Stream("d1").ok() && b_->Stream("d1")->last > 0);
}

TEST_F(ReplicaTest, ForgedAndRehashedRecordsFailTheSignature) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  auto records = All(*a_, "d1");
  records[1].set_payload("forged");
  std::string prev = records[0].hash();
  for (size_t i = 1; i < records.size(); ++i) {
    records[i].set_hash(ChainHashOf(prev, "d1", records[i]));
    prev = records[i].hash();
  }
  auto out = b_->Apply("d1", CertOf("d1"), records);
  EXPECT_TRUE(out.status().IsCorruption());
  EXPECT_NE(out.status().message().find("signature"), std::string::npos);
}

TEST_F(ReplicaTest, RecordsResignedByAnotherKeyAreRefused) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  auto records = All(*a_, "d1");
  auto other = Signer("other");  // a valid device of the same network, wrong key
  records.back().set_sig(other->Sign(EventSigMessage("d1", 3, records.back().hash())));
  auto out = b_->Apply("d1", CertOf("d1"), records);
  EXPECT_TRUE(out.status().IsCorruption());
  // And the other device's certificate does not pass for d1.
  auto wrong_cert = b_->Apply("d1", CertOf("other"), All(*a_, "d1"));
  EXPECT_EQ(wrong_cert.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(wrong_cert.status().message().find("CN"), std::string::npos);
}

TEST_F(ReplicaTest, CertificateFromAnotherCaIsRefused) {
  ASSERT_OK(a_->Append("d1", Events(2)));
  testutil::TestPki rogue("rogue-ca");
  testutil::Issued fake = rogue.Issue("d1");
  auto rogue_ca = CertAuthority::FromPem(rogue.ca_cert_pem(), "rogue");
  ASSERT_OK(rogue_ca);
  auto fake_signer = DeviceSigner::FromPem(fake.cert_pem, fake.key_pem, **rogue_ca);
  ASSERT_OK(fake_signer);
  auto out = b_->Apply("d1", (*fake_signer)->public_key()->cert_der(), All(*a_, "d1"));
  EXPECT_EQ(out.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(out.status().message().find("network CA"), std::string::npos);
  EXPECT_TRUE(b_->Catalogue().empty());
}

TEST_F(ReplicaTest, TheSourceRefusesItsOwnDeviceFromPeers) {
  ASSERT_OK(a_->Append("d1", Events(1)));
  auto out = a_->Apply("d1", CertOf("d1"), All(*a_, "d1"));
  EXPECT_EQ(out.status().code(), Status::Code::kPermissionDenied);
}

TEST_F(ReplicaTest, ARestoredSourceRefusesAppendsAndCatchesUpItsOwnStreamFirst) {
  ASSERT_OK(a_->Append("d1", Events(5)));
  auto restored = Open("restored", {"d1"});  // the same key, an empty store
  restored->HoldAppends("d1");
  auto refused = restored->Append("d1", Events(1));
  EXPECT_EQ(refused.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("waiting for peers to report the head"),
            std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(restored->Stream("d1")->last, 0u);  // nothing was written
  auto caught_up = restored->Apply("d1", CertOf("d1"), All(*a_, "d1"));
  ASSERT_OK(caught_up);
  EXPECT_EQ(caught_up->last, 5u);
  restored->ReleaseAppends("d1");
  auto r = restored->Append("d1", Events(1));
  ASSERT_OK(r);
  EXPECT_EQ(r->first, 6u);  // never seq 1 again
  EXPECT_OK(restored->Verify("d1"));
  EXPECT_EQ(restored->Apply("d1", "", All(*a_, "d1")).status().code(),
            Status::Code::kPermissionDenied);  // the guard is over
}

TEST_F(ReplicaTest, ForkIsDetectedKeptAndProven) {
  // A second source with the same key (a restored backup) writes another history.
  auto twin = Open("twin", {"d1"});
  ASSERT_OK(a_->Append("d1", Events(3, "note", "a")));
  ASSERT_OK(twin->Append("d1", Events(3, "note", "twin")));
  ASSERT_OK(b_->Apply("d1", CertOf("d1"), All(*a_, "d1")));
  auto out = b_->Apply("d1", "", All(*twin, "d1"));
  EXPECT_EQ(out.status().code(), Status::Code::kFork);
  EXPECT_EQ(All(*b_, "d1")[0].payload(), "a0");  // kept ours
  auto forks = b_->Forks();
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_EQ(b_->ForkCount(), 1u);
  EXPECT_EQ(forks[0].seq(), 1u);
  EXPECT_EQ(forks[0].theirs_size(), 3);
  EXPECT_OK(b_->Verify("d1"));
}

TEST_F(ReplicaTest, ARelayServesWhatItVerifiedToTheNextHop) {
  auto c = Open("c", {});
  ASSERT_OK(a_->Append("d1", Events(2)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  ASSERT_OK(b_->Apply("d1", CertOf("d1"), All(*a_, "d1")));
  // c never meets a: it takes the stream and certificate from b.
  auto out = c->Apply("d1", *b_->DeviceCert("d1"), All(*b_, "d1"));
  ASSERT_OK(out);
  EXPECT_EQ(out->last, 4u);
  EXPECT_OK(c->Verify("d1"));
}

}  // namespace
}  // namespace cairn::journal
