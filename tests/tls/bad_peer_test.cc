// Misbehaving peers on real loopback TLS: each is refused or timed out with a reason
// the server reports, and the server keeps serving a good client afterwards.
#include <gtest/gtest.h>

#include <iostream>

#include "base/rng.h"
#include "tls/context_internal.h"
#include "tls/loop_fixture.h"

namespace cairn::tls::testing {
namespace {

using Kind = CloseReason::Kind;

class BadPeerTest : public LoopTest {
 protected:
  void SetUp() override {
    server_rec_.echo = true;
    server_ = MakeEndpoint(NodeContext("srv"), FastOptions());
    port_ = Listen(server_, server_rec_.Callbacks());
  }

  std::shared_ptr<const Context> Unchecked(const testutil::Issued& id) {
    Result<std::shared_ptr<const Context>> ctx =
        internal::UncheckedContext(pki_.ca_cert_pem(), id.cert_pem, id.key_pem);
    CHECK(ctx.ok()) << ctx.status().ToString();
    return *ctx;
  }

  // Connects a TLS client with `context`, waits until the server gives up on it, and
  // returns the server's reason.
  CloseReason ServerRefuses(std::shared_ptr<const Context> context) {
    Endpoint* bad = MakeEndpoint(std::move(context), FastOptions());
    EXPECT_TRUE(bad->Connect("127.0.0.1", port_, bad_rec_.Callbacks()).ok());
    EXPECT_TRUE(RunUntil(
        [&] { return !server_rec_.closes.empty() && !bad_rec_.closes.empty(); }));
    EXPECT_TRUE(server_rec_.opened.empty()) << "server accepted a bad peer";
    return Logged();
  }

  // Waits until the server gives up on a raw TCP client, and returns its reason.
  CloseReason ServerDropsRaw(RawClient* raw) {
    EXPECT_TRUE(RunUntil([&] { return !server_rec_.closes.empty() && raw->ended(); }));
    EXPECT_TRUE(server_rec_.opened.empty());
    return Logged();
  }

  // The server's reason for its first close, printed as the server would log it.
  CloseReason Logged() {
    if (server_rec_.closes.empty()) return CloseReason{};
    std::cout << "server closed a connection: " << server_rec_.FirstClose() << "\n";
    if (!bad_rec_.closes.empty())
      std::cout << "  bad peer saw: " << bad_rec_.FirstClose() << "\n";
    return server_rec_.closes[0];
  }

  Endpoint* server_ = nullptr;
  int port_ = 0;
  Recorder server_rec_, bad_rec_;
  std::vector<std::string> refusals_;
};

TEST_F(BadPeerTest, ClientWithoutCertificateIsRefused) {
  Result<std::shared_ptr<const Context>> anonymous =
      internal::UncheckedContext(pki_.ca_cert_pem(), "", "");
  ASSERT_TRUE(anonymous.ok());
  CloseReason r = ServerRefuses(*anonymous);
  EXPECT_EQ(r.kind, Kind::kTls);
  EXPECT_NE(r.message.find("did not return a certificate"), std::string::npos)
      << r.ToString();
  EXPECT_EQ(bad_rec_.closes[0].kind, Kind::kTls) << bad_rec_.FirstClose();
  ExpectServesGoodClient(port_);
}

TEST_F(BadPeerTest, ClientFromAnotherCaIsRefused) {
  testutil::TestPki other("other-ca");
  CloseReason r = ServerRefuses(Unchecked(other.Issue("intruder")));
  EXPECT_EQ(r.kind, Kind::kTls);
  EXPECT_NE(r.message.find("peer certificate rejected (unable to get local issuer"),
            std::string::npos)
      << r.ToString();
  ExpectServesGoodClient(port_);
}

TEST_F(BadPeerTest, ExpiredClientCertificateIsRefused) {
  CloseReason r = ServerRefuses(Unchecked(pki_.Issue("old", /*valid_days=*/1, -10)));
  EXPECT_EQ(r.kind, Kind::kTls);
  EXPECT_NE(r.message.find("certificate has expired"), std::string::npos) << r.ToString();
  ExpectServesGoodClient(port_);
}

TEST_F(BadPeerTest, ServerFromAnotherCaIsRefusedByTheClient) {
  testutil::TestPki other("other-ca");
  Endpoint* fake = MakeEndpoint(Unchecked(other.Issue("fake-srv")), FastOptions());
  int port = Listen(fake, bad_rec_.Callbacks());
  Endpoint* client = MakeEndpoint(NodeContext("cli"), FastOptions());
  Recorder& rec = NewRecorder();
  ASSERT_TRUE(client->Connect("127.0.0.1", port, rec.Callbacks()).ok());
  ASSERT_TRUE(RunUntil([&] { return !rec.closes.empty(); }));
  EXPECT_TRUE(rec.opened.empty());
  EXPECT_EQ(rec.closes[0].kind, Kind::kTls);
  EXPECT_NE(rec.closes[0].message.find("peer certificate rejected"), std::string::npos)
      << rec.FirstClose();
}

TEST_F(BadPeerTest, PlainTcpClientIsRefused) {
  RawClient* raw = MakeRawClient(port_);
  raw->Write("GET / HTTP/1.0\r\n\r\n");
  CloseReason r = ServerDropsRaw(raw);
  EXPECT_EQ(r.kind, Kind::kTls) << r.ToString();
  EXPECT_NE(r.message.find("TLS handshake failed"), std::string::npos) << r.ToString();
  ExpectServesGoodClient(port_);
}

TEST_F(BadPeerTest, SilentClientTimesOut) {
  RawClient* raw = MakeRawClient(port_);
  CloseReason r = ServerDropsRaw(raw);
  EXPECT_EQ(r.kind, Kind::kTimeout);
  EXPECT_EQ(r.message, "TLS handshake not complete after 200 ms");
  ExpectServesGoodClient(port_);
}

// One address may hold only so many handshakes at a time: more connections from
// it are reset at accept, and the endpoint says why (the node logs it).
TEST_F(BadPeerTest, HandshakesFromOneAddressAreCapped) {
  Options o = FastOptions();
  o.max_handshakes_per_ip = 3;
  Endpoint* capped = MakeEndpoint(NodeContext("capped"), o);
  capped->set_on_refused([this](const std::string& why) { refusals_.push_back(why); });
  const int port = Listen(capped, bad_rec_.Callbacks());  // outlives the endpoint
  std::vector<std::string>& refusals = refusals_;
  std::vector<RawClient*> silent;
  for (int i = 0; i < 5; ++i) silent.push_back(MakeRawClient(port));
  ASSERT_TRUE(RunUntil([&] { return refusals.size() == 2; }));
  ASSERT_TRUE(RunUntil([&] {
    size_t ended = 0;
    for (RawClient* r : silent) ended += r->ended();
    return ended == 2;
  }));
  EXPECT_EQ(refusals[0],
            "refused a connection from 127.0.0.1: 3 TLS handshakes from that address in "
            "progress (limit 3)");
  EXPECT_EQ(capped->connection_count(), 3u);
}

TEST_F(BadPeerTest, RandomBytesAreRefusedOrTimedOut) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    Rng rng(seed);
    std::string junk(1 + rng.Uniform(4096), '\0');
    for (char& c : junk) c = static_cast<char>(rng.Next());
    server_rec_.closes.clear();
    RawClient* raw = MakeRawClient(port_);
    raw->Write(junk);
    CloseReason r = ServerDropsRaw(raw);
    EXPECT_TRUE(r.kind == Kind::kTls || r.kind == Kind::kTimeout) << r.ToString();
  }
  ExpectServesGoodClient(port_);
}

class FramingPeerTest : public BadPeerTest {
 protected:
  // The server accepts frames of up to 4 KiB; the bad client sends up to 1 MiB. A good
  // client is connected first and must stay connected throughout.
  void SetUp() override {
    Options small = FastOptions();
    small.max_frame_bytes = 4096;
    server_rec_.echo = true;
    server_ = MakeEndpoint(NodeContext("srv"), small);
    port_ = Listen(server_, server_rec_.Callbacks());
    good_ = Open(MakeEndpoint(NodeContext("good"), small), &good_rec_);
    Options big = FastOptions();
    big.max_frame_bytes = 1 << 20;
    bad_ = Open(MakeEndpoint(NodeContext("bad"), big), &bad_rec_);
  }

  Connection* Open(Endpoint* ep, Recorder* rec) {
    Result<Connection*> c = ep->Connect("127.0.0.1", port_, rec->Callbacks());
    CHECK(c.ok());
    CHECK(RunUntil([&] { return !rec->opened.empty(); })) << rec->FirstClose();
    return *c;
  }

  void ExpectGoodStillServed() {
    ASSERT_TRUE(good_->Send(EnvelopeOfSize(100)).ok());
    ASSERT_TRUE(RunUntil([&] { return !good_rec_.messages.empty(); }));
    EXPECT_TRUE(good_rec_.closes.empty()) << good_rec_.FirstClose();
  }

  Recorder good_rec_;
  Connection* good_ = nullptr;
  Connection* bad_ = nullptr;
};

TEST_F(FramingPeerTest, FrameOverTheLimitClosesOnlyThatConnection) {
  ASSERT_TRUE(bad_->Send(EnvelopeOfSize(4097)).ok());
  ASSERT_TRUE(
      RunUntil([&] { return !server_rec_.closes.empty() && !bad_rec_.closes.empty(); }));
  EXPECT_EQ(server_rec_.closes[0].kind, Kind::kProtocol);
  EXPECT_EQ(server_rec_.closes[0].message,
            "frame of 4097 bytes exceeds the limit of 4096");
  EXPECT_EQ(bad_rec_.closes[0].kind, Kind::kPeerClosed) << bad_rec_.FirstClose();
  ExpectGoodStillServed();
}

TEST_F(FramingPeerTest, UndecodableBytesCloseOnlyThatConnection) {
  ASSERT_TRUE(bad_->SendSerialized("\xff\xff\xff\xff").ok());
  ASSERT_TRUE(RunUntil([&] { return !server_rec_.closes.empty(); }));
  EXPECT_EQ(server_rec_.closes[0].kind, Kind::kProtocol);
  EXPECT_NE(server_rec_.closes[0].message.find("undecodable message"), std::string::npos)
      << server_rec_.FirstClose();
  ExpectGoodStillServed();
}

TEST_F(BadPeerTest, ConnectionsBeyondTheLimitAreRefusedAtAccept) {
  Options one = FastOptions();
  one.max_connections = 1;
  Recorder& rec = NewRecorder();
  Endpoint* small = MakeEndpoint(NodeContext("small"), one);
  int port = Listen(small, rec.Callbacks());
  Endpoint* clients = MakeEndpoint(NodeContext("cli"), FastOptions());
  Recorder& first = NewRecorder();
  Recorder& second = NewRecorder();
  ASSERT_TRUE(clients->Connect("127.0.0.1", port, first.Callbacks()).ok());
  ASSERT_TRUE(RunUntil([&] { return !first.opened.empty(); }));
  ASSERT_TRUE(clients->Connect("127.0.0.1", port, second.Callbacks()).ok());
  ASSERT_TRUE(RunUntil([&] { return !second.closes.empty(); }));
  EXPECT_TRUE(second.opened.empty());
  EXPECT_TRUE(first.closes.empty());
  EXPECT_EQ(small->connection_count(), 1u);
}

}  // namespace
}  // namespace cairn::tls::testing
