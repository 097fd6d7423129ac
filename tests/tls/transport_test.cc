// Real TLS on loopback: handshake, messages of every size class up to the limit,
// orderly and abortive close, many connections, back-pressure.
#include <gtest/gtest.h>

#include "tls/loop_fixture.h"

namespace cairn::tls::testing {
namespace {

class TransportTest : public LoopTest {
 protected:
  // A server "srv" that echoes, and a client "cli" connected to it.
  void Connect(Options server_options = FastOptions(),
               Options client_options = FastOptions()) {
    server_rec_.echo = true;
    server_ = MakeEndpoint(NodeContext("srv"), server_options);
    port_ = Listen(server_, server_rec_.Callbacks());
    client_ = MakeEndpoint(NodeContext("cli"), client_options);
    Result<Connection*> c = client_->Connect("127.0.0.1", port_, client_rec_.Callbacks());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    conn_ = *c;
    ASSERT_TRUE(RunUntil([&] {
      return !client_rec_.opened.empty() && !server_rec_.opened.empty();
    })) << client_rec_.FirstClose()
        << " / " << server_rec_.FirstClose();
  }

  bool WaitForClientMessages(size_t n) {
    return RunUntil([&] {
             return client_rec_.messages.size() >= n || !client_rec_.closes.empty();
           }) &&
           client_rec_.messages.size() >= n;
  }

  Endpoint* server_ = nullptr;
  Endpoint* client_ = nullptr;
  Connection* conn_ = nullptr;
  int port_ = 0;
  Recorder server_rec_, client_rec_;
};

TEST_F(TransportTest, HandshakeExposesVerifiedPeerIds) {
  Connect();
  EXPECT_EQ(client_rec_.peer_ids, std::vector<std::string>{"srv"});
  EXPECT_EQ(server_rec_.peer_ids, std::vector<std::string>{"cli"});
  EXPECT_TRUE(conn_->open());
  EXPECT_EQ(conn_->role(), Connection::Role::kClient);
  EXPECT_EQ(conn_->remote_address(), "127.0.0.1:" + std::to_string(port_));
}

TEST_F(TransportTest, MessagesOfEverySizeClassRoundTripUpToTheLimit) {
  const size_t max = 1 << 20;
  Options o = FastOptions();
  o.max_frame_bytes = max;
  o.write_high_water_bytes = 8 << 20;
  Connect(o, o);
  // Empty, tiny, around one TLS record (16 KiB of plaintext holds a 4-byte header),
  // around the read buffer (64 KiB), and up to the limit itself.
  std::vector<size_t> sizes = {0,     2,     4,     5,       127,     128,   129,
                               16379, 16380, 16381, 16384,   32760,   65531, 65532,
                               65536, 65537, 99999, max / 2, max - 1, max};
  for (size_t size : sizes) {
    ASSERT_TRUE(conn_->Send(EnvelopeOfSize(size)).ok()) << size;
  }
  ASSERT_TRUE(WaitForClientMessages(sizes.size())) << client_rec_.FirstClose();
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(client_rec_.messages[i].SerializeAsString(),
              EnvelopeOfSize(sizes[i]).SerializeAsString())
        << sizes[i];
  }
}

TEST_F(TransportTest, OversizedSendIsRefusedAndTheConnectionStaysUp) {
  Options o = FastOptions();
  o.max_frame_bytes = 4096;
  Connect(o, o);
  Status s = conn_->Send(EnvelopeOfSize(4097));
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  ASSERT_TRUE(conn_->Send(EnvelopeOfSize(4096)).ok());
  ASSERT_TRUE(WaitForClientMessages(1));
  EXPECT_TRUE(conn_->open());
}

TEST_F(TransportTest, OrderlyCloseFlushesQueuedMessagesThenTellsThePeer) {
  Connect();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(conn_->Send(EnvelopeOfSize(1000)).ok());
  conn_->Close("done here");
  EXPECT_FALSE(conn_->open());
  EXPECT_EQ(conn_->Send(EnvelopeOfSize(10)).code(), Status::Code::kFailedPrecondition);
  ASSERT_TRUE(RunUntil([&] { return !server_rec_.closes.empty(); }));
  EXPECT_EQ(server_rec_.messages.size(), 10u);
  EXPECT_EQ(server_rec_.closes[0].kind, CloseReason::Kind::kPeerClosed);
  EXPECT_NE(server_rec_.closes[0].message.find("close_notify"), std::string::npos);
  ASSERT_EQ(client_rec_.closes.size(), 1u);
  EXPECT_EQ(client_rec_.closes[0].kind, CloseReason::Kind::kLocal);
  EXPECT_EQ(client_rec_.closes[0].message, "done here");
  ASSERT_TRUE(RunUntil([&] {
    return client_->connection_count() == 0 && server_->connection_count() == 0;
  }));
}

TEST_F(TransportTest, AbortResetsThePeer) {
  Connect();
  conn_->Abort("giving up");
  ASSERT_TRUE(RunUntil([&] { return !server_rec_.closes.empty(); }));
  EXPECT_EQ(server_rec_.closes[0].kind, CloseReason::Kind::kNetwork)
      << server_rec_.FirstClose();
  EXPECT_EQ(client_rec_.closes.size(), 1u);
}

TEST_F(TransportTest, ConnectToAClosedPortFailsWithAReason) {
  Endpoint* gone = MakeEndpoint(NodeContext("gone"), FastOptions());
  int port = Listen(gone, {});
  bool closed = false;
  gone->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed; }));
  client_ = MakeEndpoint(NodeContext("cli"), FastOptions());
  ASSERT_TRUE(client_->Connect("127.0.0.1", port, client_rec_.Callbacks()).ok());
  ASSERT_TRUE(RunUntil([&] { return !client_rec_.closes.empty(); }));
  EXPECT_EQ(client_rec_.closes[0].kind, CloseReason::Kind::kNetwork);
  EXPECT_NE(client_rec_.closes[0].message.find("refused"), std::string::npos)
      << client_rec_.FirstClose();
}

TEST_F(TransportTest, BadAddressIsRefusedAtOnce) {
  client_ = MakeEndpoint(NodeContext("cli"), FastOptions());
  Result<Connection*> c = client_->Connect("not-an-ip", 1, {});
  EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(client_->connection_count(), 0u);
}

TEST_F(TransportTest, FiftyConnectionsAtOnceAllRoundTrip) {
  Options o = FastOptions();
  o.handshake_timeout_ms = 10'000;  // 50 handshakes share one loop under sanitizers
  server_rec_.echo = true;
  server_ = MakeEndpoint(NodeContext("srv"), o);
  port_ = Listen(server_, server_rec_.Callbacks());
  client_ = MakeEndpoint(NodeContext("cli"), o);
  constexpr int kClients = 50;
  for (int i = 0; i < kClients; ++i) {
    ConnectionCallbacks cb = client_rec_.Callbacks();
    cb.on_open = [&, i](Connection& c) {
      client_rec_.opened.push_back(&c);
      wire::Envelope m;
      m.mutable_ping()->set_nonce(i);
      EXPECT_TRUE(c.Send(m).ok());
    };
    ASSERT_TRUE(client_->Connect("127.0.0.1", port_, cb).ok());
  }
  ASSERT_TRUE(WaitForClientMessages(kClients))
      << client_rec_.FirstClose() << " / " << server_rec_.FirstClose();
  std::vector<bool> seen(kClients);
  for (const wire::Envelope& m : client_rec_.messages) seen.at(m.ping().nonce()) = true;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), kClients);
  EXPECT_EQ(server_->connection_count(), static_cast<size_t>(kClients));
  EXPECT_TRUE(client_rec_.closes.empty()) << client_rec_.FirstClose();
}

TEST_F(TransportTest, BackPressureFiresAtHighWaterAndResumesWhenDrained) {
  Options o = FastOptions();
  o.max_frame_bytes = 64 << 10;
  o.write_high_water_bytes = 256 << 10;
  o.write_low_water_bytes = 64 << 10;
  o.write_limit_bytes = 512 << 10;
  Connect(o, o);
  // Everything sent within one loop turn is still queued: no write callback has run.
  size_t sent = 0;
  while (client_rec_.high_water == 0 && sent < 100) {
    ASSERT_TRUE(conn_->Send(EnvelopeOfSize(60'000)).ok()) << sent;
    ++sent;
  }
  EXPECT_EQ(client_rec_.high_water, 1);
  EXPECT_TRUE(conn_->above_high_water());
  // Past the hard limit, Send refuses instead of buffering without bound.
  Status s;
  while (s.ok() && sent < 100) {
    s = conn_->Send(EnvelopeOfSize(60'000));
    if (s.ok()) ++sent;
  }
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  EXPECT_LE(conn_->queued_write_bytes(), o.write_limit_bytes);
  ASSERT_TRUE(RunUntil([&] { return client_rec_.drained == 1; }));
  EXPECT_FALSE(conn_->above_high_water());
  EXPECT_TRUE(conn_->Send(EnvelopeOfSize(60'000)).ok());
  ++sent;
  ASSERT_TRUE(RunUntil([&] { return server_rec_.messages.size() == sent; }));
}

TEST_F(TransportTest, EndpointCloseEndsEveryConnectionWithAReason) {
  Connect();
  bool closed = false;
  server_->Close([&] { closed = true; });
  ASSERT_TRUE(RunUntil([&] { return closed && !client_rec_.closes.empty(); }));
  EXPECT_EQ(server_rec_.closes[0].message, "endpoint closing");
  EXPECT_EQ(client_rec_.closes[0].kind, CloseReason::Kind::kPeerClosed);
}

}  // namespace
}  // namespace cairn::tls::testing
