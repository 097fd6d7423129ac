// sync::Subscriber, the core of `cairn tail --peer`, alone: a ManualClock, a
// source journal that makes real signed streams, messages in, outputs out.
#include "sync/subscriber.h"

#include <gtest/gtest.h>

#include <functional>

#include "testutil/manual_clock.h"
#include "testutil/pki.h"
#include "testutil/status_matchers.h"
#include "wire/protocol.h"

namespace cairn::sync {
namespace {

using K = SubscriberOutput::Kind;

class SubscriberTest : public ::testing::Test {
 protected:
  SubscriberTest() {
    auto ca = journal::CertAuthority::FromPem(pki_.ca_cert_pem(), "test CA");
    CHECK(ca.ok());
    ca_ = *ca;
    testutil::Issued issued = pki_.Issue("d");
    auto signer = journal::DeviceSigner::FromPem(issued.cert_pem, issued.key_pem, *ca_);
    CHECK(signer.ok());
    signer_ = *signer;
    journal::JournalOptions o;
    o.store.path = dir_.File("source");
    o.ca = ca_;
    o.clock = &clock_;
    o.sources = {signer_};
    auto j = journal::Journal::Open(std::move(o));
    CHECK(j.ok());
    source_ = std::move(*j);
  }

  void Make(SubscriberOptions o) {
    o.self_id = "cli";
    o.ping_interval_ms = 100;
    o.dead_interval_ms = 300;
    sub_ = std::make_unique<Subscriber>(o, ca_, &clock_);
    sub_->OnOpen("node");
    Take();
  }
  const std::vector<SubscriberOutput>& Take() { return last_ = sub_->TakeOutputs(); }
  std::vector<SubscriberOutput> Of(
      K kind, wire::Envelope::MsgCase msg = wire::Envelope::MSG_NOT_SET) const {
    std::vector<SubscriberOutput> out;
    for (const auto& o : last_) {
      if (o.kind == kind &&
          (msg == wire::Envelope::MSG_NOT_SET || o.message.msg_case() == msg)) {
        out.push_back(o);
      }
    }
    return out;
  }

  void NodeHello(const std::string& id = "node") {
    wire::Envelope m;
    m.mutable_hello()->set_node_id(id);
    m.mutable_hello()->set_protocol_version(cairn::wire::kProtocolVersion);
    sub_->OnMessage(m);
  }
  void Catalogue(const std::string& device, uint64_t last, bool full = true) {
    wire::Envelope m;
    m.mutable_catalogue()->set_full(full);
    auto* e = m.mutable_catalogue()->add_entries();
    e->set_device(device);
    e->set_last(last);
    sub_->OnMessage(m);
  }
  // What the node sends for a subscription of "d" from `from`; `tamper` may
  // change the events on the way.
  void Serve(uint64_t from, std::function<void(wire::Events*)> tamper = nullptr) {
    wire::Envelope h;
    h.mutable_stream_header()->set_device("d");
    h.mutable_stream_header()->set_device_cert(signer_->public_key()->cert_der());
    sub_->OnMessage(h);
    wire::Envelope ev;
    ev.mutable_events()->set_device("d");
    auto records = source_->Read("d", from, 1000);
    CHECK(records.ok());
    for (auto& r : *records) *ev.mutable_events()->add_records() = r;
    if (tamper) tamper(ev.mutable_events());
    sub_->OnMessage(ev);
  }
  std::vector<uint64_t> Printed() const {
    std::vector<uint64_t> out;
    for (const auto& o : Of(K::kRecords)) {
      for (const auto& r : o.records) out.push_back(r.seq());
    }
    return out;
  }

  testutil::TestPki pki_;
  testutil::TempDir dir_;
  testutil::ManualClock clock_;
  std::shared_ptr<const journal::CertAuthority> ca_;
  std::shared_ptr<journal::DeviceSigner> signer_;
  std::unique_ptr<journal::Journal> source_;
  std::unique_ptr<Subscriber> sub_;
  std::vector<SubscriberOutput> last_;
};

TEST_F(SubscriberTest, HelloSaysWeAreASubscriber) {
  SubscriberOptions o;
  o.device = "d";
  sub_ = std::make_unique<Subscriber>(o, ca_, &clock_);
  sub_->OnOpen("node");
  Take();
  ASSERT_EQ(Of(K::kSend, wire::Envelope::kHello).size(), 1u);
  const wire::Hello& h = last_[0].message.hello();
  EXPECT_TRUE(h.subscriber());
  EXPECT_TRUE(h.advertise().empty());
}

TEST_F(SubscriberTest, PlainTailFromTheMiddleEndsAtTheNodesHead) {
  ASSERT_OK(source_->Append("d", {{"note", "1"}, {"note", "2"}, {"note", "3"}}));
  ASSERT_OK(source_->Append("d", {{"note", "4"}}));
  SubscriberOptions o;
  o.device = "d";
  o.from = 3;
  Make(o);
  NodeHello();
  Catalogue("d", 4);
  Take();
  ASSERT_EQ(Of(K::kSend, wire::Envelope::kSubscribe).size(), 1u);
  EXPECT_EQ(Of(K::kSend, wire::Envelope::kSubscribe)[0].message.subscribe().from(), 2u);
  Serve(2);
  Take();
  EXPECT_EQ(Printed(), (std::vector<uint64_t>{3, 4}));
  ASSERT_EQ(Of(K::kEnd).size(), 1u);
  EXPECT_OK(Of(K::kEnd)[0].status);
  EXPECT_EQ(Of(K::kSend, wire::Envelope::kUnsubscribe).size(), 1u);
}

TEST_F(SubscriberTest, UnknownDeviceWithoutFollowIsNamed) {
  SubscriberOptions o;
  o.device = "nobody";
  Make(o);
  NodeHello();
  Catalogue("d", 4);
  Take();
  ASSERT_EQ(Of(K::kEnd).size(), 1u);
  EXPECT_EQ(
      Of(K::kEnd)[0].status.message(),
      "node 'node' does not store device 'nobody' (or this certificate may not read it)");
}

TEST_F(SubscriberTest, ForgedEventsEndTheTailAndNothingIsPrinted) {
  ASSERT_OK(source_->Append("d", {{"note", "1"}, {"note", "2"}}));
  SubscriberOptions o;
  o.device = "d";
  Make(o);
  NodeHello();
  Catalogue("d", 2);
  Serve(1, [](wire::Events* e) { e->mutable_records(0)->set_payload("forged"); });
  Take();
  EXPECT_TRUE(Printed().empty());
  ASSERT_EQ(Of(K::kEnd).size(), 1u);
  EXPECT_NE(Of(K::kEnd)[0].status.message().find("fails verification: record 1 of 'd'"),
            std::string::npos)
      << Of(K::kEnd)[0].status.message();
  EXPECT_EQ(Of(K::kSend, wire::Envelope::kGoodbye).size(), 1u);
}

TEST_F(SubscriberTest, HelloNamingAnotherNodeThanItsCertificateIsRefused) {
  SubscriberOptions o;
  o.device = "d";
  Make(o);
  NodeHello("mallory");
  Take();
  ASSERT_EQ(Of(K::kEnd).size(), 1u);
  EXPECT_NE(Of(K::kEnd)[0].status.message().find("certificate says 'node'"),
            std::string::npos);
}

TEST_F(SubscriberTest, FollowAllTakesDevicesThatAppearLater) {
  SubscriberOptions o;
  o.all = true;
  o.follow = true;
  Make(o);
  NodeHello();
  wire::Envelope empty;
  empty.mutable_catalogue()->set_full(true);
  sub_->OnMessage(empty);
  Take();
  EXPECT_TRUE(Of(K::kEnd).empty());
  ASSERT_OK(source_->Append("d", {{"note", "1"}}));
  Catalogue("d", 1, /*full=*/false);
  Take();
  ASSERT_EQ(Of(K::kSend, wire::Envelope::kSubscribe).size(), 1u);
  Serve(1);
  Take();
  EXPECT_EQ(Printed(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Of(K::kSend, wire::Envelope::kCredit).size(), 1u);  // headers cost none
  EXPECT_TRUE(Of(K::kEnd).empty());
}

TEST_F(SubscriberTest, ASilentNodeIsPingedThenGivenUp) {
  SubscriberOptions o;
  o.device = "d";
  o.follow = true;
  Make(o);
  NodeHello();
  ASSERT_EQ(sub_->NextDeadline(), clock_.MonotonicMicros() + 100'000);
  clock_.Advance(100'000);
  sub_->OnTimer();
  Take();
  EXPECT_EQ(Of(K::kSend, wire::Envelope::kPing).size(), 1u);
  clock_.Advance(200'000);
  sub_->OnTimer();
  Take();
  ASSERT_EQ(Of(K::kEnd).size(), 1u);
  EXPECT_EQ(Of(K::kEnd)[0].status.code(), Status::Code::kUnavailable);
}

}  // namespace
}  // namespace cairn::sync
