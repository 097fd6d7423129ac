// StreamVerifier: the journal's checks without a journal. A source journal "a"
// makes real streams; the verifier must accept exactly what Apply would.
#include "journal/stream_verifier.h"
#include "journal_fixture.h"

namespace cairn::journal {
namespace {

class VerifierTest : public JournalTest {
 protected:
  void SetUp() override { a_ = Open("a", {"d1"}); }

  StreamVerifier Make(uint64_t from) {
    StreamVerifier v(ca_, "d1", from);
    EXPECT_OK(v.SetCert(CertOf("d1")));
    return v;
  }

  static std::vector<uint64_t> Seqs(const std::vector<wire::Record>& records) {
    std::vector<uint64_t> out;
    for (const auto& r : records) out.push_back(r.seq());
    return out;
  }

  std::unique_ptr<Journal> a_;
};

TEST_F(VerifierTest, WholeStreamFromGenesisIsHandedOut) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  StreamVerifier v = Make(1);
  EXPECT_EQ(v.subscribe_from(), 1u);
  auto out = v.Accept(All(*a_, "d1"));
  ASSERT_OK(out);
  EXPECT_EQ(Seqs(*out), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(v.last(), 5u);
}

TEST_F(VerifierTest, FromTheMiddleTheRecordBeforeIsTheAnchorAndNotHandedOut) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  ASSERT_OK(a_->Append("d1", Events(3)));
  StreamVerifier v = Make(4);
  EXPECT_EQ(v.subscribe_from(), 3u);
  auto out = v.Accept(All(*a_, "d1", 3));
  ASSERT_OK(out);
  EXPECT_EQ(Seqs(*out), (std::vector<uint64_t>{4, 5, 6}));
}

TEST_F(VerifierTest, ASignedAnchorAloneIsAccepted) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  StreamVerifier v = Make(4);
  auto anchor = v.Accept(All(*a_, "d1", 3));  // 3 (signed), 4, 5 (signed)
  ASSERT_OK(anchor);
  EXPECT_EQ(Seqs(*anchor), (std::vector<uint64_t>{4, 5}));
  StreamVerifier w = Make(4);
  auto only = w.Accept({All(*a_, "d1", 3)[0]});
  ASSERT_OK(only);
  EXPECT_TRUE(only->empty());
  EXPECT_EQ(w.last(), 3u);
  auto rest = w.Accept(All(*a_, "d1", 4));
  ASSERT_OK(rest);
  EXPECT_EQ(Seqs(*rest), (std::vector<uint64_t>{4, 5}));
}

TEST_F(VerifierTest, RecordsWaitForTheSignatureThatClosesTheirChunk) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  auto records = All(*a_, "d1");
  StreamVerifier v = Make(1);
  auto first = v.Accept({records[0], records[1]});
  ASSERT_OK(first);
  EXPECT_TRUE(first->empty());
  auto second = v.Accept({records[2]});
  ASSERT_OK(second);
  EXPECT_EQ(Seqs(*second), (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(VerifierTest, ForgedPayloadIsRefusedAndNamed) {
  ASSERT_OK(a_->Append("d1", Events(3)));
  auto records = All(*a_, "d1");
  records[1].set_payload("forged");
  StreamVerifier v = Make(1);
  auto out = v.Accept(records);
  EXPECT_EQ(out.status().code(), Status::Code::kCorruption);
  EXPECT_NE(out.status().message().find("record 2 of 'd1'"), std::string::npos)
      << out.status().ToString();
}

TEST_F(VerifierTest, ForgedAnchorIsRefusedThroughTheChain) {
  ASSERT_OK(a_->Append("d1", Events(4)));
  auto records = All(*a_, "d1", 2);
  records[0].set_hash(std::string(32, 'x'));  // 2: the anchor of a read from 3
  StreamVerifier v = Make(3);
  EXPECT_EQ(v.Accept(records).status().code(), Status::Code::kCorruption);
}

TEST_F(VerifierTest, ResignedRecordIsRefused) {
  ASSERT_OK(a_->Append("d1", Events(2)));
  auto records = All(*a_, "d1");
  std::string sig = records[1].sig();
  sig[0] = static_cast<char>(sig[0] ^ 1);
  records[1].set_sig(sig);
  StreamVerifier v = Make(1);
  auto out = v.Accept(records);
  EXPECT_EQ(out.status().code(), Status::Code::kCorruption);
  EXPECT_NE(out.status().message().find("signature"), std::string::npos);
}

TEST_F(VerifierTest, GapAfterTheHeadIsRefused) {
  ASSERT_OK(a_->Append("d1", Events(2)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  StreamVerifier v = Make(1);
  ASSERT_OK(v.Accept(All(*a_, "d1", 1)));
  ASSERT_OK(a_->Append("d1", Events(2)));
  EXPECT_FALSE(v.Accept(All(*a_, "d1", 6)).ok());
}

TEST_F(VerifierTest, CertificateOfAnotherCaOrAnotherDeviceIsRefused) {
  ASSERT_OK(a_->Append("d1", Events(1)));
  testutil::TestPki other("other-ca");
  auto foreign = other.Issue("d1");
  auto ca2 = CertAuthority::FromPem(other.ca_cert_pem(), "other");
  ASSERT_OK(ca2);
  auto signer = DeviceSigner::FromPem(foreign.cert_pem, foreign.key_pem, **ca2);
  ASSERT_OK(signer);
  StreamVerifier v(ca_, "d1", 1);
  EXPECT_FALSE(v.SetCert((*signer)->public_key()->cert_der()).ok());
  EXPECT_FALSE(v.SetCert(CertOf("d2")).ok());  // CN is not the device
  EXPECT_EQ(v.Accept(All(*a_, "d1")).status().code(),
            Status::Code::kFailedPrecondition);  // nothing before a certificate
}

TEST_F(VerifierTest, SnapshotAnchorsTheStreamAndNewerSnapshotsAreNotNew) {
  ASSERT_OK(a_->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a_->Append("d1", Events(2)));
  ASSERT_OK(a_->Snapshot("d1"));  // at 3
  ASSERT_OK(a_->Append("d1", Events(2)));
  StreamVerifier v = Make(2);
  auto snap = a_->ReadSnapshot("d1");
  ASSERT_OK(snap);
  auto fresh = v.AcceptSnapshot(*snap);
  ASSERT_OK(fresh);
  EXPECT_TRUE(*fresh);
  auto out = v.Accept(All(*a_, "d1", 4));
  ASSERT_OK(out);
  EXPECT_EQ(Seqs(*out), (std::vector<uint64_t>{4, 5}));
  ASSERT_OK(a_->Snapshot("d1"));  // at 5: covers what we hold
  auto again = v.AcceptSnapshot(*a_->ReadSnapshot("d1"));
  ASSERT_OK(again);
  EXPECT_FALSE(*again);
}

TEST_F(VerifierTest, TamperedSnapshotIsRefused) {
  ASSERT_OK(a_->Append("d1", {Put("s", "k", "1")}));
  ASSERT_OK(a_->Snapshot("d1"));
  auto snap = a_->ReadSnapshot("d1");
  ASSERT_OK(snap);
  snap->chunks[0].mutable_entries(0)->mutable_entry()->set_value("2");
  StreamVerifier v = Make(1);
  EXPECT_EQ(v.AcceptSnapshot(*snap).status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace cairn::journal
